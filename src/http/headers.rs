//! Request and response header handling on the way through (httpd-semantics §8):
//! hop-by-hop headers and every header named in `Connection` are removed *before*
//! `X-Forwarded-*` are appended (so a client cannot strip them: CVE-2022-31813).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that never cross the proxy (besides those named in `Connection`).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "content-length",
];

fn connection_named(h: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        if let Ok(s) = v.to_str() {
            for t in s.split(',') {
                let t = t.trim();
                if t.is_empty() {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(t.to_ascii_lowercase().as_bytes()) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// What the request to a member needs besides the client's headers.
pub struct UpstreamHead<'a> {
    /// The `Host` to send.
    pub host: &'a str,
    /// Append X-Forwarded-For/-Host/-Server.
    pub add_forwarded: bool,
    /// Client address for X-Forwarded-For.
    pub client_ip: &'a str,
    /// The client's Host, for X-Forwarded-Host.
    pub client_host: Option<&'a HeaderValue>,
    /// ServerName, for X-Forwarded-Server.
    pub server_name: &'a str,
    /// `disablereuse=On`: send `Connection: close`.
    pub close: bool,
    /// A WebSocket upgrade is allowed and requested.
    pub upgrade: Option<&'a HeaderValue>,
}

/// Builds the member-bound headers from the client's.
pub fn upstream_headers(client: &HeaderMap, u: &UpstreamHead<'_>) -> HeaderMap {
    let named = connection_named(client);
    let mut h = HeaderMap::with_capacity(client.len() + 4);
    for (k, v) in client {
        let n = k.as_str();
        if HOP_BY_HOP.contains(&n) || named.iter().any(|x| x == k) || k == header::HOST {
            continue;
        }
        if k == header::EXPECT && !v.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            continue;
        }
        h.append(k.clone(), v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(u.host) {
        h.insert(header::HOST, v);
    }
    if u.add_forwarded {
        append_comma(&mut h, "x-forwarded-for", u.client_ip);
        if let Some(ch) = u.client_host.and_then(|v| v.to_str().ok()) {
            append_comma(&mut h, "x-forwarded-host", ch);
        }
        append_comma(&mut h, "x-forwarded-server", u.server_name);
    }
    if let Some(up) = u.upgrade {
        h.insert(header::UPGRADE, up.clone());
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    } else if u.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h
}

fn append_comma(h: &mut HeaderMap, name: &'static str, v: &str) {
    let n = HeaderName::from_static(name);
    let old: Vec<&str> = h
        .get_all(&n)
        .iter()
        .filter_map(|x| x.to_str().ok())
        .collect();
    let joined = if old.is_empty() {
        v.to_string()
    } else {
        format!("{}, {v}", old.join(", "))
    };
    if let Ok(val) = HeaderValue::from_str(&joined) {
        h.insert(n, val);
    }
}

/// Removes hop-by-hop headers from a member's response (keeping `Content-Length`, and the
/// `Upgrade`/`Connection` pair of a 101).
pub fn clean_response(h: &mut HeaderMap, switching: bool) {
    for n in connection_named(h) {
        if switching && (n == header::UPGRADE) {
            continue;
        }
        h.remove(n);
    }
    for n in [
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "proxy-connection",
        "transfer-encoding",
    ] {
        h.remove(n);
    }
    if !switching {
        h.remove(header::UPGRADE);
        h.remove(header::CONNECTION);
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
                host: "127.0.0.1:18102",
                add_forwarded: true,
                client_ip: "127.0.0.1",
                client_host: Some(&host),
                server_name: "lb",
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
    }
}
