//! The one head parser of the HTTP/1.1 codec: request heads read from clients
//! ([`parse_request`]) and response heads read from members ([`parse_response`]), with httparse,
//! into the one field model ([`Fields`], each field's role decided once here) and the one
//! framing answer ([`BodyFraming`], RFC 9112 §6.3).
//!
//! The two directions share the limits, the field model and the `Connection` token reader;
//! they differ where the RFC does: a request whose framing is ambiguous is refused (400: a
//! proxy must not guess, or it can be smuggled through), while a response's
//! `Transfer-Encoding` overrides its `Content-Length` and a response without either runs
//! until the member closes.

use super::chunked::parse_length;
use super::fields::{
    ConnectionToken, FieldRole, Fields, connection_tokens, field_span, field_spans,
    request_field_role, response_field_role,
};
use super::framing::BodyFraming;
use super::host::{check_host_count, valid_host};
use bytes::BytesMut;
use http::header::HeaderName;
use http::{Method, StatusCode, Uri, Version};
use std::mem::MaybeUninit;

/// Largest head, request or response (a larger request gets 431; nginx allows 32 KiB,
/// HAProxy 16 KiB; httpd 100 fields of 8 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a head (HAProxy allows 101, httpd 100 by default); a request with
/// more gets 431 (more than `LimitRequestFields`, when lower: 400).
pub const MAX_FIELDS: usize = 128;

/// Why a request head was refused: the status and the error page's text.
#[derive(Debug)]
pub struct HeadRefusal(pub StatusCode, pub &'static str);

/// A parsed request head, with what the connection loop needs to know about it: the method,
/// target and version, the fields as received, the body's framing, whether the connection
/// stays open, whether the client waits for `100 Continue`, and whether it asks to upgrade.
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub fields: Fields,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
}

/// Parses a request head from the front of `buf`; `Ok(None)` while it is incomplete.
/// `max_fields` is `LimitFields` + 1 (the handler answers 400 above the limit itself),
/// at most [`MAX_FIELDS`].
pub fn parse_request(
    buf: &mut BytesMut,
    max_fields: usize,
) -> Result<Option<RequestHead>, HeadRefusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let slots = &mut slots[..max_fields.clamp(1, MAX_FIELDS)];
    let mut r = httparse::Request::new(&mut []);
    let base = buf.as_ptr() as usize;
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut r, buf, slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(HeadRefusal(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "The request head is too large.",
                ));
            }
            return Ok(None);
        }
        // Over `LimitRequestFields`: 400, as httpd answers. Over balancerd's own cap (with
        // `LimitRequestFields 0`, which httpd reads as no limit): 431.
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadRefusal(
                if max_fields < MAX_FIELDS {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                },
                "The number of request header fields exceeds this server's limit.",
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(HeadRefusal(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "Only HTTP/1.0 and HTTP/1.1 are spoken on this port.",
            ));
        }
        Err(_) => {
            return Err(HeadRefusal(
                StatusCode::BAD_REQUEST,
                "Your browser sent a request that this server could not understand.",
            ));
        }
    };
    let method = Method::from_bytes(r.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadRefusal(StatusCode::BAD_REQUEST, "Invalid request method."))?;
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path = r.path.unwrap_or("");
    let p0 = path.as_ptr() as usize - base;
    let p1 = p0 + path.len();
    let mut spans = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let spans = field_spans(r.headers, base, &mut spans);
    let head = if len == buf.len() {
        std::mem::take(buf).freeze()
    } else {
        buf.split_to(len).freeze()
    };
    let uri = Uri::from_maybe_shared(head.slice(p0..p1))
        .map_err(|_| HeadRefusal(StatusCode::BAD_REQUEST, "Invalid request target."))?;
    let bad_framing = |why| HeadRefusal(StatusCode::BAD_REQUEST, why);
    let mut fields = Fields::index_for(spans.len());
    let mut keep_alive = version == Version::HTTP_11;
    let mut conn_upgrade = false;
    let mut has_upgrade = false;
    let mut expect_continue = false;
    let (mut cl_count, mut te_count) = (0u32, 0u32);
    let mut length = 0u64;
    let mut te_chunked = false;
    let mut host_count = 0u32;
    // Names and values were checked by httparse (the same bytes `http` accepts); each field
    // gets its role once, here.
    for &span in spans {
        let (n0, n1, v0, v1) = span;
        let role = request_field_role(&head[n0 as usize..n1 as usize]);
        let raw = &head[v0 as usize..v1 as usize];
        match role {
            FieldRole::ContentLength => {
                cl_count += 1;
                length = parse_length(raw.trim_ascii())
                    .ok_or(bad_framing("Bad request framing: invalid Content-Length."))?;
            }
            FieldRole::TransferEncoding => {
                te_count += 1;
                te_chunked = raw.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            FieldRole::Connection => {
                for t in connection_tokens(raw) {
                    match t {
                        ConnectionToken::Close => keep_alive = false,
                        ConnectionToken::KeepAlive if version == Version::HTTP_10 => {
                            keep_alive = true
                        }
                        ConnectionToken::Upgrade => conn_upgrade = true,
                        _ => {}
                    }
                }
            }
            FieldRole::Upgrade => has_upgrade = true,
            FieldRole::Host => {
                host_count += 1;
                if !valid_host(raw) {
                    return Err(HeadRefusal(
                        StatusCode::BAD_REQUEST,
                        "Bad request: the Host field is not one valid host[:port].",
                    ));
                }
            }
            FieldRole::Expect => {
                expect_continue = raw.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        fields.push((span, role));
    }
    check_host_count(host_count, version == Version::HTTP_11)
        .map_err(|why| HeadRefusal(StatusCode::BAD_REQUEST, why))?;
    let framing = if te_count > 0 {
        if cl_count > 0 {
            return Err(bad_framing(
                "Bad request framing: conflicting Content-Length and Transfer-Encoding.",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(bad_framing(
                "Bad request framing: Transfer-Encoding in an HTTP/1.0 request.",
            ));
        }
        if te_count > 1 || !te_chunked {
            return Err(bad_framing(
                "Bad request framing: Transfer-Encoding other than a single 'chunked'.",
            ));
        }
        BodyFraming::Chunked
    } else if cl_count > 1 {
        return Err(bad_framing(
            "Bad request framing: more than one Content-Length.",
        ));
    } else if cl_count == 1 && length > 0 {
        BodyFraming::Length(length)
    } else {
        BodyFraming::None
    };
    Ok(Some(RequestHead {
        method,
        uri,
        version,
        fields: Fields::new(head, fields),
        expect_continue: expect_continue && version == Version::HTTP_11,
        framing,
        keep_alive,
        upgrade: conn_upgrade && has_upgrade,
    }))
}

/// A parsed response head (a member's).
#[derive(Debug)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The member's HTTP version.
    pub version: Version,
    /// The header fields as received.
    pub fields: Fields,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
    /// Further hop-by-hop fields the member's `Connection` named, to remove after the
    /// response rules ran (the usual hop-by-hop fields are already left out of `headers`).
    pub connection_named: Vec<HeaderName>,
}

/// Parses one response head from the front of `buf` (consuming it), if complete.
pub fn parse_response(
    buf: &mut BytesMut,
    method_is_head: bool,
) -> Result<Option<ResponseHead>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut r = httparse::Response::new(&mut []);
    let base = buf.as_ptr() as usize;
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut r, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err("the member's response head is too large".into());
            }
            return Ok(None);
        }
        Err(e) => return Err(format!("invalid response head from the member: {e}")),
    };
    let status = StatusCode::from_u16(r.code.unwrap_or(0))
        .map_err(|_| "invalid status code from the member".to_string())?;
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut connection_named = Vec::new();
    let mut fields = Fields::index_for(r.headers.len());
    let mut keep_alive = version == Version::HTTP_11;
    let mut te_chunked = None;
    let mut length: Option<u64> = None;
    for f in r.headers.iter() {
        let (name, raw) = (f.name.as_bytes(), f.value);
        // httparse checked names and values against the same rules as `http` does.
        let role = response_field_role(name, switching);
        // Connection and Transfer-Encoding are dropped (Connection passes in a 101).
        let maybe_framing = role == FieldRole::Hop || switching;
        if maybe_framing && name.eq_ignore_ascii_case(b"connection") {
            // One pass: framing tokens, and (outside a 101) the hop-by-hop names listed.
            for t in connection_tokens(raw) {
                match t {
                    ConnectionToken::Close => keep_alive = false,
                    ConnectionToken::KeepAlive if version == Version::HTTP_10 => keep_alive = true,
                    ConnectionToken::Named(n) if !switching => {
                        if let Ok(n) = HeaderName::from_bytes(n) {
                            connection_named.push(n);
                        }
                    }
                    _ => {}
                }
            }
        } else if maybe_framing && name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the final coding matters: chunked, or the body runs until close.
            let last = raw
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or(&[])
                .trim_ascii();
            te_chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if role == FieldRole::ContentLength {
            for part in raw.split(|b| *b == b',') {
                let v = parse_length(part.trim_ascii())
                    .ok_or_else(|| "invalid Content-Length from the member".to_string())?;
                if length.is_some_and(|l| l != v) {
                    return Err("conflicting Content-Length values from the member".into());
                }
                length = Some(v);
            }
        }
        fields.push((field_span(f, base), role));
    }
    // An HTTP/1.0 response with Transfer-Encoding was framed by a 1.1-speaking stack
    // behind a 1.0 front: the connection must not be reused (RFC 9112 §6.1).
    if version == Version::HTTP_10 && te_chunked.is_some() {
        keep_alive = false;
    }
    let head = buf.split_to(len).freeze();
    let code = status.as_u16();
    let framing = if method_is_head || status.is_informational() || code == 204 || code == 304 {
        BodyFraming::None
    } else if let Some(chunked) = te_chunked {
        // Transfer-Encoding overrides Content-Length (which then must not be passed on).
        if length.is_some() {
            for (_, role) in &mut fields {
                if *role == FieldRole::ContentLength {
                    *role = FieldRole::Hop;
                }
            }
            keep_alive = false;
        }
        if chunked {
            BodyFraming::Chunked
        } else {
            keep_alive = false;
            BodyFraming::UntilClose
        }
    } else if let Some(n) = length {
        BodyFraming::Length(n)
    } else {
        keep_alive = false;
        BodyFraming::UntilClose
    };
    Ok(Some(ResponseHead {
        status,
        version,
        fields: Fields::new(head, fields),
        framing,
        keep_alive,
        connection_named,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<RequestHead>, HeadRefusal> {
        let mut b = BytesMut::from(s);
        parse_request(&mut b, 101)
    }

    #[test]
    fn framing_is_decided_from_the_raw_fields() {
        let p = parse(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing, BodyFraming::Length(5));
        assert!(p.keep_alive);
        let p = parse(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing, BodyFraming::Chunked);
        for bad in [
            &b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",
        ] {
            let r = parse(bad);
            assert!(
                matches!(r, Err(HeadRefusal(StatusCode::BAD_REQUEST, _))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn host_fields_are_checked() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeadRefusal(StatusCode::BAD_REQUEST, _))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert!(parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn keep_alive_and_upgrade_follow_connection() {
        let p = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!p.keep_alive);
        let p = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(p.keep_alive);
        let p = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!p.keep_alive);
        let p = parse(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(p.upgrade && p.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_and_oversized_ones_are_refused() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        assert!(matches!(
            parse(&big),
            Err(HeadRefusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, _))
        ));
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..120 {
            many.extend(format!("X-{i}: v\r\n").bytes());
        }
        many.extend(b"\r\n");
        // Over `LimitRequestFields` (100): 400, as httpd.
        assert!(matches!(
            parse(&many),
            Err(HeadRefusal(StatusCode::BAD_REQUEST, _))
        ));
        // Over balancerd's own cap (`LimitRequestFields 0`): 431.
        let mut more = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..MAX_FIELDS {
            more.extend(format!("X-{i}: v\r\n").bytes());
        }
        more.extend(b"\r\n");
        let mut b = BytesMut::from(&more[..]);
        assert!(matches!(
            parse_request(&mut b, MAX_FIELDS),
            Err(HeadRefusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, _))
        ));
    }

    #[test]
    fn pipelined_bytes_stay_in_the_buffer() {
        let mut b = BytesMut::from(
            &b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        );
        let p = parse_request(&mut b, 101).unwrap().unwrap();
        assert_eq!(p.uri, "/1");
        let p = parse_request(&mut b, 101).unwrap().unwrap();
        assert_eq!(p.uri, "/2");
        assert!(b.is_empty());
    }

    use http::Method;

    #[test]
    fn head_parses_framing_and_keep_alive() {
        let mut b =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.fields.passed_header_map()["x-a"], "b");
        let passed: Vec<_> = h.fields.passed().collect();
        assert_eq!(
            passed,
            [
                (&b"Content-Length"[..], &b"5"[..], FieldRole::ContentLength),
                (&b"X-A"[..], &b"b"[..], FieldRole::Other)
            ],
            "written through as received"
        );
        assert_eq!(&b[..], b"hello");

        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"[..],
        );
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(!h.keep_alive, "TE with CL: close after");
        assert!(h.fields.passed_header_map().get("content-length").is_none());
        assert_eq!(
            h.fields.passed().count(),
            0,
            "neither TE nor the overridden CL passes"
        );

        let mut b = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: X-A\r\nKeep-Alive: 5\r\nConnection: x-b, close\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nContent-Length: 0\r\n\r\n"[..],
        );
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert!(!h.keep_alive);
        let mut hm = h.fields.passed_header_map();
        assert!(hm.get("connection").is_none());
        assert!(hm.get("keep-alive").is_none());
        assert!(
            h.fields
                .passed()
                .all(|(n, _, _)| !n.eq_ignore_ascii_case(b"keep-alive"))
        );
        assert_eq!(h.connection_named, ["x-a", "x-b"]);
        for n in &h.connection_named {
            hm.remove(n);
        }
        assert!(hm.get("x-a").is_none() && hm.get("x-b").is_none());
        assert_eq!(hm["x-c"], "3");

        let mut b = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
        );
        let h = parse_response(&mut b, false).unwrap().unwrap();
        let hm = h.fields.passed_header_map();
        assert_eq!(hm["upgrade"], "websocket", "a 101 keeps its upgrade pair");
        assert_eq!(hm["connection"], "Upgrade");
        let mut b = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade, X-A\r\nUpgrade: websocket\r\nX-A: 1\r\n\r\n"[..],
        );
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert!(
            h.connection_named.is_empty(),
            "a 101's Connection passes whole, with the fields it names"
        );

        let mut b = BytesMut::from(&b"HTTP/1.0 200 OK\r\n\r\nabc"[..]);
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::UntilClose);
        assert!(!h.keep_alive);

        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..]);
        let h = parse_response(&mut b, true).unwrap().unwrap();
        assert_eq!(h.framing, BodyFraming::None, "HEAD has no body");

        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"[..]);
        assert!(parse_response(&mut b, false).is_err());
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\nConn"[..]);
        assert!(parse_response(&mut b, false).unwrap().is_none());
    }

    #[test]
    fn head_encoding_frames_the_body() {
        let mut w = crate::h1::writer::HeadWriter::new(&Method::PUT, "/a?b", 0);
        w.header(b"host", b"m:1");
        let b = w.finish(BodyFraming::Length(1234));
        assert_eq!(
            &b[..],
            b"PUT /a?b HTTP/1.1\r\nhost: m:1\r\ncontent-length: 1234\r\n\r\n"
        );
    }
}
