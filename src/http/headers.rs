//! Request and response header handling on the way through (httpd-semantics §8):
//! hop-by-hop headers and every header named in `Connection` are removed *before*
//! `X-Forwarded-*` are appended (so a client cannot strip them: CVE-2022-31813).

use crate::upstream::h1::RequestFraming;
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

/// A header field name from the wire, with the fields nearly every request or response
/// carries recognised without the general lower-casing parse (~150 instructions each).
/// Shared by the client-side and member-side HTTP/1.1 parsers.
pub fn wire_header_name(raw: &[u8]) -> Option<HeaderName> {
    let known = match raw.len() {
        4 if raw.eq_ignore_ascii_case(b"host") => Some(header::HOST),
        4 if raw.eq_ignore_ascii_case(b"date") => Some(header::DATE),
        4 if raw.eq_ignore_ascii_case(b"etag") => Some(header::ETAG),
        4 if raw.eq_ignore_ascii_case(b"vary") => Some(header::VARY),
        6 if raw.eq_ignore_ascii_case(b"accept") => Some(header::ACCEPT),
        6 if raw.eq_ignore_ascii_case(b"cookie") => Some(header::COOKIE),
        6 if raw.eq_ignore_ascii_case(b"expect") => Some(header::EXPECT),
        6 if raw.eq_ignore_ascii_case(b"server") => Some(header::SERVER),
        7 if raw.eq_ignore_ascii_case(b"upgrade") => Some(header::UPGRADE),
        7 if raw.eq_ignore_ascii_case(b"expires") => Some(header::EXPIRES),
        8 if raw.eq_ignore_ascii_case(b"location") => Some(header::LOCATION),
        10 if raw.eq_ignore_ascii_case(b"user-agent") => Some(header::USER_AGENT),
        10 if raw.eq_ignore_ascii_case(b"connection") => Some(header::CONNECTION),
        10 if raw.eq_ignore_ascii_case(b"set-cookie") => Some(header::SET_COOKIE),
        12 if raw.eq_ignore_ascii_case(b"content-type") => Some(header::CONTENT_TYPE),
        13 if raw.eq_ignore_ascii_case(b"authorization") => Some(header::AUTHORIZATION),
        13 if raw.eq_ignore_ascii_case(b"cache-control") => Some(header::CACHE_CONTROL),
        13 if raw.eq_ignore_ascii_case(b"last-modified") => Some(header::LAST_MODIFIED),
        14 if raw.eq_ignore_ascii_case(b"content-length") => Some(header::CONTENT_LENGTH),
        15 if raw.eq_ignore_ascii_case(b"accept-encoding") => Some(header::ACCEPT_ENCODING),
        15 if raw.eq_ignore_ascii_case(b"accept-language") => Some(header::ACCEPT_LANGUAGE),
        17 if raw.eq_ignore_ascii_case(b"transfer-encoding") => Some(header::TRANSFER_ENCODING),
        _ => None,
    };
    known.or_else(|| HeaderName::from_bytes(raw).ok())
}

/// Where a parsed field's name and value lie in the head: byte offsets `(name start, name
/// end, value start, value end)`, so that values can become slices of the head once it is
/// split off the read buffer (no copy).
pub type FieldSpan = (u32, u32, u32, u32);

/// The span of one parsed field, in a head that starts at address `base`.
pub fn field_span(h: &httparse::Header<'_>, base: usize) -> FieldSpan {
    let n0 = h.name.as_ptr() as usize - base;
    let v0 = h.value.as_ptr() as usize - base;
    (
        n0 as u32,
        (n0 + h.name.len()) as u32,
        v0 as u32,
        (v0 + h.value.len()) as u32,
    )
}

/// Records the spans of `fields` (parsed from a buffer starting at address `base`) into
/// `spans`, which needs no initialising (a zeroed array of 128 spans cost a 2 KiB memset per
/// request); returns the spans written.
pub fn field_spans<'s>(
    fields: &[httparse::Header<'_>],
    base: usize,
    spans: &'s mut [std::mem::MaybeUninit<FieldSpan>],
) -> &'s [FieldSpan] {
    let n = fields.len().min(spans.len());
    for (slot, h) in spans.iter_mut().zip(fields) {
        slot.write(field_span(h, base));
    }
    // SAFETY: the first `n` slots were written just above; MaybeUninit<T> has T's layout.
    unsafe { std::slice::from_raw_parts(spans.as_ptr().cast::<FieldSpan>(), n) }
}

/// One token of a `Connection` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionToken<'a> {
    /// `close`.
    Close,
    /// `keep-alive`.
    KeepAlive,
    /// `upgrade`.
    Upgrade,
    /// An empty list element.
    Other,
    /// Any other token: the name of a hop-by-hop field.
    Named(&'a [u8]),
}

/// The tokens of a `Connection` value, classified (shared by requests and responses).
pub fn connection_tokens(v: &[u8]) -> impl Iterator<Item = ConnectionToken<'_>> {
    v.split(|b| *b == b',').map(|t| {
        let t = t.trim_ascii();
        if t.eq_ignore_ascii_case(b"close") {
            ConnectionToken::Close
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionToken::KeepAlive
        } else if t.eq_ignore_ascii_case(b"upgrade") {
            ConnectionToken::Upgrade
        } else if t.is_empty() {
            ConnectionToken::Other
        } else {
            ConnectionToken::Named(t)
        }
    })
}

/// Adds the field names a `Connection` value lists (lower-cased) to `out`.
pub fn push_connection_named(v: &[u8], out: &mut Vec<HeaderName>) {
    for t in connection_tokens(v) {
        if let ConnectionToken::Named(n) = t
            && let Ok(n) = HeaderName::from_bytes(n)
        {
            out.push(n);
        }
    }
}

/// The extra header names listed in `Connection` (the usual `keep-alive`/`close`/`upgrade`
/// tokens are hop-by-hop anyway and skipped); allocates only when there are some.
fn connection_named(h: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        push_connection_named(v.as_bytes(), &mut out);
    }
    out
}

/// What the request to a member needs besides the client's headers. Values are prepared
/// `HeaderValue`s (per member, per connection, per snapshot) so that writing the member's
/// head formats nothing.
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
    /// A header whose client value is replaced (the mapped WebDAV `Destination`).
    pub replace: Option<(&'a HeaderName, &'a HeaderValue)>,
}

/// Writes the member-bound header fields straight from the client's into the request head
/// (no intermediate header map): hop-by-hop fields and those named in `Connection` are
/// left out, `Host` is the member's (or the client's with `ProxyPreserveHost`), and the
/// X-Forwarded-* lists get the client's address, host and this server appended on one line.
pub fn write_upstream_headers(client: &HeaderMap, u: &UpstreamHead<'_>, w: &mut HeadWriter) {
    let named = if client.contains_key(header::CONNECTION) {
        connection_named(client)
    } else {
        Vec::new()
    };
    if let Some(host) = u.host {
        w.header(header::HOST.as_str(), host.as_bytes());
    }
    let mut forwarded_seen = false;
    for (k, v) in client {
        if is_request_hop(k) || (!named.is_empty() && named.contains(k)) {
            continue;
        }
        if *k == header::EXPECT && !v.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            continue;
        }
        if u.add_forwarded
            && (*k == X_FORWARDED_FOR || *k == X_FORWARDED_HOST || *k == X_FORWARDED_SERVER)
        {
            forwarded_seen = true;
            continue;
        }
        if let Some((rk, _)) = u.replace
            && rk == k
        {
            continue;
        }
        w.header(k.as_str(), v.as_bytes());
    }
    if let Some((rk, rv)) = u.replace {
        w.header(rk.as_str(), rv.as_bytes());
    }
    if u.add_forwarded {
        let forwarded = [
            (X_FORWARDED_FOR, Some(u.client_ip)),
            (X_FORWARDED_HOST, u.client_host),
            (X_FORWARDED_SERVER, Some(u.server_name)),
        ];
        for (name, ours) in forwarded {
            w.list_header(
                name.as_str(),
                forwarded_seen
                    .then(|| client.get_all(&name))
                    .into_iter()
                    .flatten(),
                ours,
            );
        }
    }
    if let Some(up) = u.upgrade {
        w.header(header::UPGRADE.as_str(), up.as_bytes());
        w.header(header::CONNECTION.as_str(), b"Upgrade");
    } else if u.close {
        w.header(header::CONNECTION.as_str(), b"close");
    }
}

/// The request head being written for a member: request line, then header fields.
pub struct HeadWriter {
    out: Vec<u8>,
}

impl HeadWriter {
    /// Starts a head with its request line; `room` is the expected size of the fields.
    pub fn new(method: &http::Method, target: &str, room: usize) -> Self {
        let mut out = Vec::with_capacity(method.as_str().len() + target.len() + room + 64);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        HeadWriter { out }
    }

    /// Room to reserve for `client`'s fields plus the few balancerd adds.
    pub fn room_for(client: &HeaderMap) -> usize {
        client
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + 160
    }

    /// One field.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A list field: the client's values and ours joined with ", " on one line (httpd's
    /// apr_table_mergen); nothing when there are none.
    pub fn list_header<'v>(
        &mut self,
        name: &str,
        theirs: impl Iterator<Item = &'v HeaderValue>,
        ours: Option<&'v HeaderValue>,
    ) {
        let start = self.out.len();
        let mut first = true;
        for v in theirs
            .map(HeaderValue::as_bytes)
            .chain(ours.map(HeaderValue::as_bytes))
        {
            if first {
                self.out.extend_from_slice(name.as_bytes());
                self.out.extend_from_slice(b": ");
                first = false;
            } else {
                self.out.extend_from_slice(b", ");
            }
            self.out.extend_from_slice(v);
        }
        if self.out.len() > start {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Ends the head: the body framing field (`content-length: N`, `transfer-encoding:
    /// chunked`, or none) and the blank line.
    pub fn finish(mut self, framing: RequestFraming) -> bytes::Bytes {
        match framing {
            RequestFraming::None => {}
            RequestFraming::Zero => self.out.extend_from_slice(b"content-length: 0\r\n"),
            RequestFraming::Length(n) => {
                let mut digits = [0u8; 20];
                let mut i = digits.len();
                let mut v = n;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                self.header("content-length", &digits[i..]);
            }
            RequestFraming::Chunked => self
                .out
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        self.out.extend_from_slice(b"\r\n");
        bytes::Bytes::from(self.out)
    }
}

/// Removes hop-by-hop headers from a member's response (keeping `Content-Length`, and the
/// `Upgrade`/`Connection` pair of a 101).
pub fn clean_response(h: &mut HeaderMap, switching: bool) {
    // One pass over the names (no hashing) finds the few that must go.
    let mut hop: [Option<HeaderName>; 8] = Default::default();
    let mut n = 0;
    for k in h.keys() {
        if is_response_hop(k, switching) && n < hop.len() {
            hop[n] = Some(k.clone());
            n += 1;
        }
    }
    if h.contains_key(header::CONNECTION) {
        for name in connection_named(h) {
            h.remove(name);
        }
    }
    for name in hop.into_iter().flatten() {
        h.remove(name);
    }
}

/// What a member's response field is to the proxy, decided from the raw name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    /// Passed on as received.
    Pass,
    /// `Date` (passed on; the proxy adds none of its own).
    Date,
    /// `Content-Length` (passed on when the body keeps its length).
    ContentLength,
    /// Hop-by-hop, or otherwise not passed on.
    Drop,
}

/// The role of a response field named `raw` (any case): the raw-bytes twin of
/// [`is_response_hop`], for heads written through without a `HeaderMap`.
pub fn response_field_role(raw: &[u8], switching: bool) -> FieldRole {
    let is = |s: &[u8]| raw.eq_ignore_ascii_case(s);
    match raw.len() {
        2 if is(b"te") => FieldRole::Drop,
        4 if is(b"date") => FieldRole::Date,
        7 if is(b"trailer") => FieldRole::Drop,
        7 if is(b"upgrade") && !switching => FieldRole::Drop,
        10 if is(b"connection") && !switching => FieldRole::Drop,
        10 if is(b"keep-alive") => FieldRole::Drop,
        14 if is(b"content-length") => FieldRole::ContentLength,
        16 if is(b"proxy-connection") => FieldRole::Drop,
        17 if is(b"transfer-encoding") => FieldRole::Drop,
        18 if is(b"proxy-authenticate") => FieldRole::Drop,
        _ => FieldRole::Pass,
    }
}

/// True for a response field that never crosses the proxy (`Content-Length` stays; a `101`
/// keeps its `Upgrade`/`Connection` pair). The member client drops these while parsing.
pub fn is_response_hop(k: &HeaderName, switching: bool) -> bool {
    // One list of hop-by-hop fields, shared with the write-through path.
    response_field_role(k.as_str().as_bytes(), switching) == FieldRole::Drop
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

    /// The member-bound head for `c`, parsed back into (name, value) lines.
    fn member_head(c: &HeaderMap, u: &UpstreamHead<'_>) -> Vec<(String, String)> {
        let mut w = HeadWriter::new(&http::Method::GET, "/x", HeadWriter::room_for(c));
        write_upstream_headers(c, u, &mut w);
        let head = w.finish(RequestFraming::None);
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

    fn head<'a>(ip: &'a HeaderValue, lb: &'a HeaderValue) -> UpstreamHead<'a> {
        UpstreamHead {
            host: None,
            add_forwarded: true,
            client_ip: ip,
            client_host: None,
            server_name: lb,
            close: false,
            upgrade: None,
            replace: None,
        }
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
        let front = HeaderValue::from_static("front");
        let member = HeaderValue::from_static("127.0.0.1:18102");
        let (ip, lb) = (
            HeaderValue::from_static("127.0.0.1"),
            HeaderValue::from_static("lb"),
        );
        let h = member_head(
            &c,
            &UpstreamHead {
                host: Some(&member),
                client_host: Some(&front),
                ..head(&ip, &lb)
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

    #[test]
    fn forwarded_lists_are_joined_on_one_line() {
        let mut c = HeaderMap::new();
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        c.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        c.append("x-forwarded-server", HeaderValue::from_static("edge"));
        let (ip, lb) = (
            HeaderValue::from_static("127.0.0.1"),
            HeaderValue::from_static("lb"),
        );
        let h = member_head(&c, &head(&ip, &lb));
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
        let (ip, lb) = (
            HeaderValue::from_static("127.0.0.1"),
            HeaderValue::from_static("lb"),
        );
        let dest = HeaderName::from_static("destination");
        let mapped = HeaderValue::from_static("http://member/a");
        let ws = HeaderValue::from_static("websocket");
        let h = member_head(
            &c,
            &UpstreamHead {
                add_forwarded: false,
                replace: Some((&dest, &mapped)),
                upgrade: Some(&ws),
                ..head(&ip, &lb)
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
                ..head(&ip, &lb)
            },
        );
        assert_eq!(one(&h, "connection"), Some("close"));
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
