//! The forwarding policy for request header fields (httpd-semantics §8): which of the
//! client's fields cross to the member, and what balancerd adds. Hop-by-hop fields and every
//! field named in `Connection` are left out *before* `X-Forwarded-*` are appended (so a
//! client cannot strip them: CVE-2022-31813); `Host` is the member's unless
//! `ProxyPreserveHost`; `Max-Forwards` is decremented.

use crate::h1::fields::{
    ConnectionToken, FieldRole, FieldsView, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_SERVER,
    connection_tokens,
};
use crate::h1::writer::HeadWriter;
use http::header::{self, HeaderMap, HeaderValue};

/// Never crosses the proxy towards a member as the client sent it (besides the fields
/// named in `Connection`): `Host` is replaced, and `Content-Length`/`Transfer-Encoding`
/// are set by the upstream connection from the body it actually sends.
fn is_hop(role: FieldRole) -> bool {
    matches!(
        role,
        FieldRole::Connection
            | FieldRole::Upgrade
            | FieldRole::ContentLength
            | FieldRole::TransferEncoding
            | FieldRole::Host
            | FieldRole::Hop
    )
}

/// What the request to a member needs besides the client's headers, as ready-made bytes
/// (per member, per connection, per snapshot) so that writing the member's head formats
/// nothing.
pub struct UpstreamHead<'a> {
    /// The `Host` to send.
    pub host: Option<&'a [u8]>,
    /// Append X-Forwarded-For/-Host/-Server.
    pub add_forwarded: bool,
    /// Client address for X-Forwarded-For.
    pub client_ip: &'a [u8],
    /// The client's Host, for X-Forwarded-Host.
    pub client_host: Option<&'a [u8]>,
    /// ServerName, for X-Forwarded-Server.
    pub server_name: &'a [u8],
    /// `disablereuse=On`: send `Connection: close`.
    pub close: bool,
    /// A WebSocket upgrade is allowed and requested: the protocol asked for.
    pub upgrade: Option<&'a [u8]>,
    /// A header (lower-case name) whose client value is replaced (the mapped WebDAV
    /// `Destination`).
    pub replace: Option<(&'a str, &'a [u8])>,
    /// `ProxyVia`: the client's `Via` passed, dropped (`Block`) or merged with ours.
    pub via: ViaAction<'a>,
    /// `UnderscoresInHeaders On`: fields named with `_` pass (left out otherwise).
    pub underscores: bool,
}

/// What a request's `Via` fields get (`ProxyVia`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViaAction<'a> {
    /// Passed unchanged (`Off`).
    Pass,
    /// Removed (`Block`).
    Block,
    /// The client's values and this one, on one line (`On`, `Full`).
    Merge(&'a [u8]),
}

/// Writes the member-bound header fields straight from the client's into the request head
/// (no intermediate header map): hop-by-hop fields and those named in `Connection` are
/// left out, `Host` is the member's (or the client's with `ProxyPreserveHost`), and the
/// X-Forwarded-* lists get the client's address, host and this server appended on one line.
pub fn write_upstream_headers(client: FieldsView<'_>, u: &UpstreamHead<'_>, w: &mut HeadWriter) {
    // Extra names listed in Connection (rare): left out as hop-by-hop.
    let mut named: Vec<&[u8]> = Vec::new();
    for v in client.role_values(FieldRole::Connection) {
        for t in connection_tokens(v) {
            if let ConnectionToken::Named(n) = t {
                named.push(n);
            }
        }
    }
    if let Some(host) = u.host {
        w.header(b"host", host);
    }
    let mut forwarded_seen = false;
    for (k, v, role) in client.iter() {
        if is_hop(role) || (!named.is_empty() && named.iter().any(|n| n.eq_ignore_ascii_case(k))) {
            continue;
        }
        match role {
            FieldRole::Expect if !v.eq_ignore_ascii_case(b"100-continue") => continue,
            FieldRole::Underscored if !u.underscores => continue,
            FieldRole::ForwardedFor | FieldRole::ForwardedHost | FieldRole::ForwardedServer
                if u.add_forwarded =>
            {
                forwarded_seen = true;
                continue;
            }
            _ => {}
        }
        if let Some((rk, _)) = u.replace
            && k.eq_ignore_ascii_case(rk.as_bytes())
        {
            continue;
        }
        if u.via != ViaAction::Pass && k.eq_ignore_ascii_case(b"via") {
            continue;
        }
        w.header(k, v);
    }
    if let ViaAction::Merge(ours) = u.via {
        let theirs = client
            .iter()
            .filter(|(k, _, _)| k.eq_ignore_ascii_case(b"via"))
            .map(|(_, v, _)| v);
        w.list_header(b"via", theirs, Some(ours));
    }
    if let Some((rk, rv)) = u.replace {
        w.header(rk.as_bytes(), rv);
    }
    if u.add_forwarded {
        let forwarded = [
            (X_FORWARDED_FOR, FieldRole::ForwardedFor, Some(u.client_ip)),
            (X_FORWARDED_HOST, FieldRole::ForwardedHost, u.client_host),
            (
                X_FORWARDED_SERVER,
                FieldRole::ForwardedServer,
                Some(u.server_name),
            ),
        ];
        for (name, role, ours) in forwarded {
            w.list_header(
                name.as_str().as_bytes(),
                forwarded_seen
                    .then(|| client.role_values(role))
                    .into_iter()
                    .flatten(),
                ours,
            );
        }
    }
    if let Some(up) = u.upgrade {
        w.header(b"upgrade", up);
        w.header(b"connection", b"Upgrade");
    } else if u.close {
        w.header(b"connection", b"close");
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
    use crate::h1::fields::{Fields, field_span, request_field_role};
    use crate::h1::framing::BodyFraming;

    /// The member-bound head for `c`, parsed back into (name, value) lines.
    fn member_head(c: &HeaderMap, u: &UpstreamHead<'_>) -> Vec<(String, String)> {
        member_head_of(FieldsView::Map(c), u)
    }

    fn member_head_of(c: FieldsView<'_>, u: &UpstreamHead<'_>) -> Vec<(String, String)> {
        let mut w = HeadWriter::new(&http::Method::GET, "/x", HeadWriter::room_for(c));
        write_upstream_headers(c, u, &mut w);
        let head = w.finish(BodyFraming::None);
        let text = String::from_utf8(head.to_vec()).unwrap();
        assert!(text.starts_with("GET /x HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        text.lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn one<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        let mut it = h.iter().filter(|(k, _)| k == name);
        let v = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "{name} more than once");
        v
    }

    /// The fields of a raw request head, as the plain HTTP/1.1 server parses them.
    fn raw_fields(head: &'static str) -> Fields {
        let raw = bytes::Bytes::from_static(head.as_bytes());
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Request::new(&mut slots);
        assert!(r.parse(&raw).unwrap().is_complete());
        let base = raw.as_ptr() as usize;
        let fields = r
            .headers
            .iter()
            .map(|h| (field_span(h, base), request_field_role(h.name.as_bytes())))
            .collect();
        Fields::new(raw.clone(), fields)
    }

    fn head<'a>(ip: &'a [u8], lb: &'a [u8]) -> UpstreamHead<'a> {
        UpstreamHead {
            host: None,
            add_forwarded: true,
            client_ip: ip,
            client_host: None,
            server_name: lb,
            close: false,
            upgrade: None,
            replace: None,
            via: ViaAction::Pass,
            underscores: false,
        }
    }

    /// `Proxy` (httpoxy) never crosses; names with `_` cross only when allowed.
    #[test]
    fn proxy_and_underscored_fields() {
        let f = raw_fields(
            "GET /x HTTP/1.1\r\nHost: front\r\nProxy: http://evil:1\r\n\
             Transfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\n\r\n",
        );
        let c = FieldsView::Raw(&f);
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head_of(c, &head(ip, lb));
        for n in ["Proxy", "Transfer_Encoding", "X_Forwarded_For"] {
            assert!(one(&h, n).is_none(), "{n}: {h:?}");
        }
        assert_eq!(one(&h, "X-Ok"), Some("1"));
        assert_eq!(one(&h, "x-forwarded-for"), Some("127.0.0.1"));
        let h = member_head_of(
            c,
            &UpstreamHead {
                underscores: true,
                ..head(ip, lb)
            },
        );
        assert!(one(&h, "Proxy").is_none());
        assert_eq!(one(&h, "Transfer_Encoding"), Some("chunked"));
        assert_eq!(one(&h, "X_Forwarded_For"), Some("6.6.6.6"));
    }

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
        c.insert("content-length", HeaderValue::from_static("12"));
        c.insert("x-keep", HeaderValue::from_static("yes"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(
            &c,
            &UpstreamHead {
                host: Some(b"127.0.0.1:18102"),
                client_host: Some(b"front"),
                ..head(ip, lb)
            },
        );
        for n in [
            "x-foo",
            "te",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "connection",
            "content-length",
        ] {
            assert!(one(&h, n).is_none(), "{n}");
        }
        assert_eq!(one(&h, "x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(one(&h, "host"), Some("127.0.0.1:18102"));
        assert_eq!(one(&h, "x-forwarded-host"), Some("front"));
        assert_eq!(one(&h, "x-forwarded-server"), Some("lb"));
        assert_eq!(one(&h, "x-keep"), Some("yes"));
    }

    /// Raw fields (the plain server's) get the same treatment as a map's, in any case
    /// spelling, and keep the client's spelling of the names they pass on.
    #[test]
    fn raw_fields_are_forwarded_like_a_map() {
        let f = raw_fields(
            "GET /x HTTP/1.1\r\nHost: front\r\nConnection: Keep-Alive, X-Foo\r\n\
             X-Foo: 1\r\nX-Forwarded-For: 10.0.0.1\r\nTE: trailers\r\nUpgrade: h2c\r\n\
             Keep-Alive: 5\r\nContent-Length: 12\r\nX-Keep: yes\r\nexpect: 100-continue\r\n\
             Cookie: a=1\r\ncookie: ROUTEID=.r2\r\nX-FORWARDED-for: 10.0.0.2\r\n\r\n",
        );
        let c = FieldsView::Raw(&f);
        assert_eq!(c.len(), 13);
        assert_eq!(c.role_value(FieldRole::Host), Some(b"front".as_slice()));
        assert_eq!(
            c.role_values(FieldRole::Cookie).collect::<Vec<_>>(),
            [b"a=1".as_slice(), b"ROUTEID=.r2"]
        );
        assert_eq!(c.value("x-keep"), Some(b"yes".as_slice()));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head_of(
            c,
            &UpstreamHead {
                host: Some(b"member:80"),
                client_host: c.role_value(FieldRole::Host),
                ..head(ip, lb)
            },
        );
        for n in [
            "X-Foo",
            "TE",
            "Upgrade",
            "Keep-Alive",
            "Connection",
            "Content-Length",
        ] {
            assert!(
                !h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n)),
                "{n} passed: {h:?}"
            );
        }
        assert_eq!(one(&h, "host"), Some("member:80"));
        assert_eq!(one(&h, "X-Keep"), Some("yes"));
        assert_eq!(one(&h, "expect"), Some("100-continue"));
        assert_eq!(
            one(&h, "x-forwarded-for"),
            Some("10.0.0.1, 10.0.0.2, 127.0.0.1")
        );
        assert_eq!(one(&h, "x-forwarded-host"), Some("front"));
        // The map built for rules holds the same fields.
        let m = f.to_header_map();
        assert_eq!(m.len(), 13);
        assert_eq!(m.get_all("cookie").iter().count(), 2);
    }

    #[test]
    fn forwarded_lists_are_joined_on_one_line() {
        let mut c = HeaderMap::new();
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        c.append("x-forwarded-server", HeaderValue::from_static("edge"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(&c, &head(ip, lb));
        assert_eq!(
            one(&h, "x-forwarded-for"),
            Some("10.0.0.1, 10.0.0.2, 127.0.0.1")
        );
        assert_eq!(one(&h, "x-forwarded-server"), Some("edge, lb"));
        assert!(one(&h, "x-forwarded-host").is_none());
        assert!(one(&h, "host").is_none(), "no Host when none is given");
    }

    #[test]
    fn replaced_header_and_upgrade_and_close() {
        let mut c = HeaderMap::new();
        c.insert("destination", HeaderValue::from_static("http://front/a"));
        c.insert("expect", HeaderValue::from_static("100-continue"));
        let (ip, lb) = (b"127.0.0.1".as_slice(), b"lb".as_slice());
        let h = member_head(
            &c,
            &UpstreamHead {
                add_forwarded: false,
                replace: Some(("destination", b"http://member/a")),
                upgrade: Some(b"websocket"),
                ..head(ip, lb)
            },
        );
        assert_eq!(one(&h, "destination"), Some("http://member/a"));
        assert_eq!(one(&h, "expect"), Some("100-continue"));
        assert_eq!(one(&h, "upgrade"), Some("websocket"));
        assert_eq!(one(&h, "connection"), Some("Upgrade"));
        assert!(one(&h, "x-forwarded-for").is_none());
        let h = member_head(
            &c,
            &UpstreamHead {
                close: true,
                ..head(ip, lb)
            },
        );
        assert_eq!(one(&h, "connection"), Some("close"));
    }
}
