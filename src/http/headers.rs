//! Request and response header handling on the way through (httpd-semantics §8):
//! hop-by-hop headers and every header named in `Connection` are removed *before*
//! `X-Forwarded-*` are appended (so a client cannot strip them: CVE-2022-31813).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`, `-Host` and `-Server`, named once.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that never cross the proxy towards a member (besides those named in
/// `Connection`); `Host` is replaced, and `Content-Length`/`Transfer-Encoding` are set by the
/// upstream connection from the body it actually sends.
fn is_request_hop(k: &HeaderName) -> bool {
    *k == header::CONNECTION
        || *k == header::TE
        || *k == header::TRAILER
        || *k == header::UPGRADE
        || *k == header::TRANSFER_ENCODING
        || *k == header::CONTENT_LENGTH
        || *k == header::HOST
        || *k == KEEP_ALIVE
        || *k == PROXY_CONNECTION
}

/// The extra header names listed in `Connection` (the usual `keep-alive`/`close`/`upgrade`
/// tokens are hop-by-hop anyway and skipped); allocates only when there are some.
fn connection_named(h: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        for t in v.as_bytes().split(|b| *b == b',') {
            let t = t.trim_ascii();
            if t.is_empty()
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"upgrade")
            {
                continue;
            }
            // from_bytes lower-cases.
            if let Ok(n) = HeaderName::from_bytes(t) {
                out.push(n);
            }
        }
    }
    out
}

/// What the request to a member needs besides the client's headers. Values are prepared
/// `HeaderValue`s (per member, per connection, per snapshot) so that building the member's
/// head copies no bytes.
pub struct UpstreamHead<'a> {
    /// The `Host` to send.
    pub host: Option<&'a HeaderValue>,
    /// Append X-Forwarded-For/-Host/-Server.
    pub add_forwarded: bool,
    /// Client address for X-Forwarded-For.
    pub client_ip: &'a HeaderValue,
    /// The client's Host, for X-Forwarded-Host.
    pub client_host: Option<&'a HeaderValue>,
    /// ServerName, for X-Forwarded-Server.
    pub server_name: &'a HeaderValue,
    /// `disablereuse=On`: send `Connection: close`.
    pub close: bool,
    /// A WebSocket upgrade is allowed and requested.
    pub upgrade: Option<&'a HeaderValue>,
}

/// Builds the member-bound headers from the client's: names and values are shared with the
/// client's request (reference-counted), never re-parsed or copied.
pub fn upstream_headers(client: &HeaderMap, u: &UpstreamHead<'_>) -> HeaderMap {
    let named = if client.contains_key(header::CONNECTION) {
        connection_named(client)
    } else {
        Vec::new()
    };
    let mut h = HeaderMap::with_capacity(client.len() + 4);
    for (k, v) in client {
        if is_request_hop(k) || (!named.is_empty() && named.contains(k)) {
            continue;
        }
        if *k == header::EXPECT && !v.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            continue;
        }
        h.append(k.clone(), v.clone());
    }
    if let Some(host) = u.host {
        h.insert(header::HOST, host.clone());
    }
    if u.add_forwarded {
        append_comma(&mut h, X_FORWARDED_FOR, u.client_ip);
        if let Some(ch) = u.client_host {
            append_comma(&mut h, X_FORWARDED_HOST, ch);
        }
        append_comma(&mut h, X_FORWARDED_SERVER, u.server_name);
    }
    if let Some(up) = u.upgrade {
        h.insert(header::UPGRADE, up.clone());
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else if u.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h
}

/// Appends `v` to a list header as one comma-joined line (httpd's apr_table_mergen): no
/// copy when the client sent none.
fn append_comma(h: &mut HeaderMap, name: HeaderName, v: &HeaderValue) {
    match h.entry(name) {
        header::Entry::Vacant(e) => {
            e.insert(v.clone());
        }
        header::Entry::Occupied(mut e) => {
            let mut joined = Vec::with_capacity(64);
            for o in e.iter() {
                joined.extend_from_slice(o.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(v.as_bytes());
            if let Ok(val) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
                e.insert(val);
            }
        }
    }
}

/// Removes hop-by-hop headers from a member's response (keeping `Content-Length`, and the
/// `Upgrade`/`Connection` pair of a 101).
pub fn clean_response(h: &mut HeaderMap, switching: bool) {
    // One pass over the names (no hashing) finds the few that must go.
    let mut hop: [Option<HeaderName>; 8] = Default::default();
    let mut n = 0;
    let mut has_connection = false;
    for k in h.keys() {
        let is_hop = if *k == header::CONNECTION || *k == header::UPGRADE {
            has_connection |= *k == header::CONNECTION;
            !switching
        } else {
            *k == KEEP_ALIVE
                || *k == header::PROXY_AUTHENTICATE
                || *k == header::TE
                || *k == header::TRAILER
                || *k == PROXY_CONNECTION
                || *k == header::TRANSFER_ENCODING
        };
        if is_hop && n < hop.len() {
            hop[n] = Some(k.clone());
            n += 1;
        }
    }
    if has_connection {
        for name in connection_named(h) {
            h.remove(name);
        }
    }
    for name in hop.into_iter().flatten() {
        h.remove(name);
    }
}

/// `Max-Forwards`: decremented; `0` (or garbage) refuses the request (400), except for
/// TRACE/OPTIONS. Returns false when refused.
pub fn max_forwards(h: &mut HeaderMap, method: &http::Method) -> bool {
    let Some(v) = h.get(header::MAX_FORWARDS) else {
        return true;
    };
    let Some(n) = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) else {
        return false;
    };
    if n == 0 {
        return method == http::Method::TRACE || method == http::Method::OPTIONS;
    }
    h.insert(header::MAX_FORWARDS, HeaderValue::from(n - 1));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_connection_named_before_forwarded() {
        let mut c = HeaderMap::new();
        c.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Foo, X-Forwarded-For"),
        );
        c.insert("x-foo", HeaderValue::from_static("1"));
        c.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        c.insert("te", HeaderValue::from_static("trailers"));
        c.insert("upgrade", HeaderValue::from_static("h2c"));
        c.insert("keep-alive", HeaderValue::from_static("5"));
        c.insert("proxy-connection", HeaderValue::from_static("x"));
        c.insert("host", HeaderValue::from_static("front"));
        let host = HeaderValue::from_static("front");
        let h = upstream_headers(
            &c,
            &UpstreamHead {
                host: Some(&HeaderValue::from_static("127.0.0.1:18102")),
                add_forwarded: true,
                client_ip: &HeaderValue::from_static("127.0.0.1"),
                client_host: Some(&host),
                server_name: &HeaderValue::from_static("lb"),
                close: false,
                upgrade: None,
            },
        );
        for n in [
            "x-foo",
            "te",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "connection",
        ] {
            assert!(h.get(n).is_none(), "{n}");
        }
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["host"], "127.0.0.1:18102");
        assert_eq!(h["x-forwarded-host"], "front");
        assert_eq!(h["x-forwarded-server"], "lb");
    }

    #[test]
    fn forwarded_lists_are_joined_on_one_line() {
        let mut c = HeaderMap::new();
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let ip = HeaderValue::from_static("127.0.0.1");
        let h = upstream_headers(
            &c,
            &UpstreamHead {
                host: None,
                add_forwarded: true,
                client_ip: &ip,
                client_host: None,
                server_name: &HeaderValue::from_static("lb"),
                close: false,
                upgrade: None,
            },
        );
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 127.0.0.1"]);
        assert!(h.get("x-forwarded-host").is_none());
    }

    #[test]
    fn response_loses_hop_by_hop_but_keeps_upgrade_pair_of_101() {
        let mut r = HeaderMap::new();
        r.insert(
            "connection",
            HeaderValue::from_static("Keep-Alive, X-Secret"),
        );
        r.insert("x-secret", HeaderValue::from_static("1"));
        r.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        r.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        r.insert("content-length", HeaderValue::from_static("3"));
        let mut s = r.clone();
        clean_response(&mut r, false);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r["content-length"], "3");
        s.insert("upgrade", HeaderValue::from_static("websocket"));
        s.insert("connection", HeaderValue::from_static("Upgrade"));
        clean_response(&mut s, true);
        assert_eq!(s["upgrade"], "websocket");
        assert_eq!(s["connection"], "Upgrade");
    }
}
