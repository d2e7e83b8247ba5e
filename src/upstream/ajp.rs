//! AJP13 to `ajp://` members, as mod_proxy_ajp speaks it (Tomcat's AJP connector).
//!
//! The request is built as for an HTTP member (the same header policy: hop-by-hop fields
//! out, `Host`, `X-Forwarded-*`, `Via`), then recoded into a forward-request packet: the
//! method code, protocol, path, client address, server name and port, TLS flag, the header
//! fields (the common ones by code), the query string, `secret` and the stored method of an
//! uncommon verb as attributes. The body follows in data packets of at most 8186 bytes: the
//! first at once, the next each time the container asks (`GET_BODY_CHUNK`), an empty one at
//! its end. The answer comes back as `SEND_HEADERS` (recoded into an HTTP/1.1 head, so the
//! response path is the HTTP one), `SEND_BODY_CHUNK`s and `END_RESPONSE` (whose flag says
//! whether the connection can be reused).
//!
//! A container that asks for more request body after it started its answer is not served
//! (the connection is dropped).

use bytes::{Buf, Bytes, BytesMut};

/// Largest AJP packet (mod_proxy_ajp's and Tomcat's default `packetSize`).
pub const MAX_PACKET: usize = 8192;
/// Largest body chunk in one data packet (the packet less its 4-byte header and 2-byte
/// chunk length).
pub const MAX_CHUNK: usize = MAX_PACKET - 6;

const FORWARD_REQUEST: u8 = 2;
const SEND_BODY_CHUNK: u8 = 3;
const SEND_HEADERS: u8 = 4;
const END_RESPONSE: u8 = 5;
const GET_BODY_CHUNK: u8 = 6;
const CPONG_REPLY: u8 = 9;

/// The method codes of AJP13.
fn method_code(m: &str) -> Option<u8> {
    Some(match m {
        "OPTIONS" => 1,
        "GET" => 2,
        "HEAD" => 3,
        "POST" => 4,
        "PUT" => 5,
        "DELETE" => 6,
        "TRACE" => 7,
        "PROPFIND" => 8,
        "PROPPATCH" => 9,
        "MKCOL" => 10,
        "COPY" => 11,
        "MOVE" => 12,
        "LOCK" => 13,
        "UNLOCK" => 14,
        "ACL" => 15,
        "REPORT" => 16,
        "VERSION-CONTROL" => 17,
        "CHECKIN" => 18,
        "CHECKOUT" => 19,
        "UNCHECKOUT" => 20,
        "SEARCH" => 21,
        "MKWORKSPACE" => 22,
        "UPDATE" => 23,
        "LABEL" => 24,
        "MERGE" => 25,
        "BASELINE-CONTROL" => 26,
        "MKACTIVITY" => 27,
        _ => return None,
    })
}

/// Request header names sent by code.
fn request_header_code(name: &[u8]) -> Option<u16> {
    const NAMES: [&[u8]; 14] = [
        b"accept",
        b"accept-charset",
        b"accept-encoding",
        b"accept-language",
        b"authorization",
        b"connection",
        b"content-type",
        b"content-length",
        b"cookie",
        b"cookie2",
        b"host",
        b"pragma",
        b"referer",
        b"user-agent",
    ];
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| 0xA001 + i as u16)
}

/// Response header names by code (`0xA001`…).
fn response_header_name(code: u16) -> Option<&'static str> {
    const NAMES: [&str; 11] = [
        "Content-Type",
        "Content-Language",
        "Content-Length",
        "Date",
        "Last-Modified",
        "Location",
        "Set-Cookie",
        "Set-Cookie2",
        "Servlet-Engine",
        "Status",
        "WWW-Authenticate",
    ];
    code.checked_sub(0xA001)
        .and_then(|i| NAMES.get(i as usize).copied())
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u16(out, s.len().min(0xFFFE) as u16);
    out.extend_from_slice(&s[..s.len().min(0xFFFE)]);
    out.push(0);
}

/// What the forward-request packet carries besides the HTTP head.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub remote_addr: &'a str,
    pub server_name: &'a str,
    pub server_port: u16,
    pub is_ssl: bool,
    /// The member's `secret=`.
    pub secret: Option<&'a str>,
}

/// Recodes an encoded HTTP/1.1 request head (as built for an HTTP member) into an AJP13
/// forward-request packet. Errors when the head does not parse or the packet would be
/// larger than an AJP packet.
pub fn forward_request(head: &[u8], info: &RequestInfo<'_>) -> Result<Vec<u8>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("the request head could not be recoded for AJP".into()),
    }
    let method = req.method.unwrap_or("GET");
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut p = Vec::with_capacity(head.len() + 64);
    p.extend_from_slice(&[0x12, 0x34, 0, 0]);
    p.push(FORWARD_REQUEST);
    let code = method_code(method);
    p.push(code.unwrap_or(0xFF));
    put_str(&mut p, b"HTTP/1.1");
    put_str(&mut p, path.as_bytes());
    put_str(&mut p, info.remote_addr.as_bytes());
    put_str(&mut p, info.remote_addr.as_bytes());
    put_str(&mut p, info.server_name.as_bytes());
    put_u16(&mut p, info.server_port);
    p.push(u8::from(info.is_ssl));
    let headers: Vec<&httparse::Header<'_>> = req.headers.iter().collect();
    put_u16(&mut p, headers.len() as u16);
    for h in headers {
        match request_header_code(h.name.as_bytes()) {
            Some(c) => put_u16(&mut p, c),
            None => put_str(&mut p, h.name.as_bytes()),
        }
        put_str(&mut p, h.value);
    }
    if let Some(q) = query {
        p.push(0x05);
        put_str(&mut p, q.as_bytes());
    }
    if let Some(s) = info.secret {
        p.push(0x0C);
        put_str(&mut p, s.as_bytes());
    }
    if code.is_none() {
        p.push(0x0D);
        put_str(&mut p, method.as_bytes());
    }
    p.push(0xFF);
    let len = p.len() - 4;
    if len > MAX_PACKET - 4 {
        return Err(format!(
            "the request head is {len} bytes as an AJP packet; AJP packets hold {}",
            MAX_PACKET - 4
        ));
    }
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(p)
}

/// A data packet carrying `chunk` (empty: the end of the body).
pub fn data_packet(chunk: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(chunk.len() + 6);
    p.extend_from_slice(&[0x12, 0x34]);
    if chunk.is_empty() {
        p.extend_from_slice(&[0, 0]);
        return p;
    }
    put_u16(&mut p, (chunk.len() + 2) as u16);
    put_u16(&mut p, chunk.len() as u16);
    p.extend_from_slice(chunk);
    p
}

/// The CPing packet (`ping=`).
pub const CPING: [u8; 5] = [0x12, 0x34, 0x00, 0x01, 0x0A];

/// One packet from the container.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet {
    /// `SEND_HEADERS`, recoded as an HTTP/1.1 response head.
    Headers(Vec<u8>),
    /// `SEND_BODY_CHUNK`.
    Body(Bytes),
    /// `END_RESPONSE`: the connection can be reused.
    End { reuse: bool },
    /// `GET_BODY_CHUNK`: up to this many bytes of request body wanted.
    GetBody(usize),
    /// `CPONG_REPLY`.
    CPong,
}

/// Takes one whole packet off `buf`: `Ok(None)` when more bytes are needed.
pub fn take_packet(buf: &mut BytesMut) -> Result<Option<Packet>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    if &buf[..2] != b"AB" {
        return Err(format!(
            "not an AJP13 packet from the member (starts {:02x} {:02x})",
            buf[0], buf[1]
        ));
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if len == 0 || len > MAX_PACKET - 4 {
        return Err(format!("AJP packet of {len} bytes"));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    let mut p = buf.split_to(len).freeze();
    let kind = p.get_u8();
    let short = || "a truncated AJP packet".to_string();
    match kind {
        SEND_BODY_CHUNK => {
            if p.remaining() < 2 {
                return Err(short());
            }
            let n = p.get_u16() as usize;
            if p.remaining() < n {
                return Err(short());
            }
            Ok(Some(Packet::Body(p.split_to(n))))
        }
        SEND_HEADERS => Ok(Some(Packet::Headers(
            recode_headers(&mut p).ok_or_else(short)?,
        ))),
        END_RESPONSE => Ok(Some(Packet::End {
            reuse: p.first().is_some_and(|b| *b != 0),
        })),
        GET_BODY_CHUNK => {
            if p.remaining() < 2 {
                return Err(short());
            }
            Ok(Some(Packet::GetBody(p.get_u16() as usize)))
        }
        CPONG_REPLY => Ok(Some(Packet::CPong)),
        k => Err(format!("unexpected AJP packet type {k} from the member")),
    }
}

fn get_string(p: &mut Bytes) -> Option<Bytes> {
    if p.remaining() < 2 {
        return None;
    }
    let n = p.get_u16();
    if n == 0xFFFF {
        return Some(Bytes::new());
    }
    let n = n as usize;
    if p.remaining() < n + 1 {
        return None;
    }
    let s = p.split_to(n);
    p.advance(1);
    Some(s)
}

/// `SEND_HEADERS` → `HTTP/1.1 <status> <message>\r\n<fields>\r\n\r\n`. Bytes that would
/// break the head (CR, LF) make it fail to parse later, as a broken member head does.
fn recode_headers(p: &mut Bytes) -> Option<Vec<u8>> {
    if p.remaining() < 2 {
        return None;
    }
    let status = p.get_u16();
    let msg = get_string(p)?;
    if p.remaining() < 2 {
        return None;
    }
    let n = p.get_u16();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("HTTP/1.1 {status} ").as_bytes());
    out.extend_from_slice(&msg);
    out.extend_from_slice(b"\r\n");
    for _ in 0..n {
        if p.remaining() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([p[0], p[1]]);
        if code >= 0xA000 {
            p.advance(2);
            out.extend_from_slice(response_header_name(code)?.as_bytes());
        } else {
            out.extend_from_slice(&get_string(p)?);
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(&get_string(p)?);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_request_codes_method_headers_and_attributes() {
        let head = b"GET /app/x?a=1 HTTP/1.1\r\nhost: lb\r\nx-custom: v\r\n\r\n";
        let p = forward_request(
            head,
            &RequestInfo {
                remote_addr: "10.0.0.1",
                server_name: "lb",
                server_port: 80,
                is_ssl: false,
                secret: Some("s3"),
            },
        )
        .unwrap();
        assert_eq!(&p[..2], &[0x12, 0x34]);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len() - 4);
        assert_eq!(p[4], FORWARD_REQUEST);
        assert_eq!(p[5], 2, "GET");
        let text = String::from_utf8_lossy(&p);
        assert!(text.contains("/app/x\0"));
        assert!(text.contains("x-custom\0"));
        assert!(p.windows(2).any(|w| w == [0xA0, 0x0B]), "host by code");
        assert!(text.contains("a=1\0") && text.contains("s3\0"));
        assert_eq!(*p.last().unwrap(), 0xFF);
    }

    #[test]
    fn response_packets_recode_and_split() {
        let mut b = BytesMut::new();
        // SEND_HEADERS 200 "OK", Content-Type by code, X-A by name.
        let mut h = vec![SEND_HEADERS, 0, 200];
        put_str(&mut h, b"OK");
        put_u16(&mut h, 2);
        put_u16(&mut h, 0xA001);
        put_str(&mut h, b"text/plain");
        put_str(&mut h, b"X-A");
        put_str(&mut h, b"1");
        b.extend_from_slice(b"AB");
        b.extend_from_slice(&(h.len() as u16).to_be_bytes());
        b.extend_from_slice(&h);
        b.extend_from_slice(&[b'A', b'B', 0, 6, SEND_BODY_CHUNK, 0, 2, b'h', b'i', 0]);
        b.extend_from_slice(&[b'A', b'B', 0, 2, END_RESPONSE, 1]);
        let Some(Packet::Headers(head)) = take_packet(&mut b).unwrap() else {
            panic!()
        };
        assert_eq!(
            head,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n".to_vec()
        );
        assert_eq!(
            take_packet(&mut b).unwrap(),
            Some(Packet::Body(Bytes::from_static(b"hi")))
        );
        assert_eq!(
            take_packet(&mut b).unwrap(),
            Some(Packet::End { reuse: true })
        );
        assert_eq!(take_packet(&mut b).unwrap(), None);
        let mut bad = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(take_packet(&mut bad).is_err());
    }
}
