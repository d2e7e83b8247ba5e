//! Smuggling through HTTP/2 (TLS, ALPN `h2`): requests are translated to HTTP/1.1 for the
//! members, so whatever HTTP/2 carries that HTTP/1.1 would read differently must be refused
//! before a member sees it (RFC 9113 §8.1.1, §8.2.2): a `content-length` that disagrees with
//! the DATA, a `transfer-encoding` or other connection-specific field, CR, LF or NUL in a
//! field value, upper-case field names; and a `:path` that would leave its tenant. The
//! frames are written by hand (the `h2` crate's client refuses to send most of these).

mod support;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TWO_TENANTS: &str = "Listen 127.0.0.1:{PORT} https
<VirtualHost *:{PORT}>
ServerName a.test
SSLEngine on
SSLCertificateFile {CERT}
SSLCertificateKeyFile {KEY}
</VirtualHost>
ProxyPass /t1/api http://t1:1/api
ProxyPass /t2/api http://t2:1/api
";

/// An HPACK integer with an `n`-bit prefix, the first byte's other bits from `flags`.
fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing, names and values as raw bytes (no
/// Huffman coding): whatever bytes the test wants on the wire.
fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        b.push(0x00);
        hpack_int(&mut b, 0, 7, name.len());
        b.extend_from_slice(name);
        hpack_int(&mut b, 0, 7, value.len());
        b.extend_from_slice(value);
    }
    b
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// What the proxy did with stream 1.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A response with this status.
    Status(u16),
    /// RST_STREAM with this error code (1: PROTOCOL_ERROR).
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
}

/// Digits of a Huffman-coded status (RFC 7541 Appendix B: '0'-'2' are 5 bits, '3'-'9' 6).
fn huffman_digits(b: &[u8]) -> String {
    let bits: Vec<u8> = b
        .iter()
        .flat_map(|x| (0..8).rev().map(move |i| (x >> i) & 1))
        .collect();
    let take = |from: usize, n: usize| {
        bits[from..from + n]
            .iter()
            .fold(0u32, |a, &b| a * 2 + u32::from(b))
    };
    let (mut at, mut out) = (0, String::new());
    while at + 5 <= bits.len() {
        let v5 = take(at, 5);
        if v5 < 3 {
            out.push(char::from(b'0' + v5 as u8));
            at += 5;
        } else if at + 6 <= bits.len() && (25..=31).contains(&take(at, 6)) {
            out.push(char::from(b'0' + (take(at, 6) - 22) as u8));
            at += 6;
        } else {
            break;
        }
    }
    out
}

/// The `:status` at the front of a response header block (h2 writes it first: an indexed
/// static entry, or a literal with name index 8).
fn status_of(block: &[u8]) -> u16 {
    match block.first() {
        Some(0x88) => 200,
        Some(0x89) => 204,
        Some(0x8a) => 206,
        Some(0x8b) => 304,
        Some(0x8c) => 400,
        Some(0x8d) => 404,
        Some(0x8e) => 500,
        Some(b) if b & 0x0f == 8 && block.len() > 2 => {
            let (huff, len) = (block[1] & 0x80 != 0, usize::from(block[1] & 0x7f));
            let v = &block[2..2 + len];
            let s = if huff {
                huffman_digits(v)
            } else {
                String::from_utf8_lossy(v).to_string()
            };
            s.parse().unwrap_or(0)
        }
        _ => 0,
    }
}

/// Opens an HTTP/2 connection over TLS, sends `frames` on it, and reads until stream 1 is
/// answered, reset, or the connection goes away.
async fn exchange(addr: std::net::SocketAddr, ca: &std::path::Path, frames: &[Vec<u8>]) -> Outcome {
    let (mut s, _) = tls_connect(addr, ca, "a.test", &[b"h2"])
        .await
        .expect("TLS handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    for f in frames {
        out.extend_from_slice(f);
    }
    s.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match (kind, stream) {
                // SETTINGS from the server: acknowledge.
                (4, 0) if flags & 1 == 0 => s.write_all(&frame(4, 1, 0, &[])).await.unwrap(),
                (HEADERS, 1) => return Outcome::Status(status_of(&payload)),
                (3, 1) => {
                    return Outcome::Reset(u32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]));
                }
                (7, 0) => {
                    return Outcome::GoAway(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]));
                }
                _ => {}
            }
        }
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            other => panic!("no answer on stream 1: {other:?}"),
        }
    }
}

/// A GET's header block with `extra` fields after the pseudo-headers.
fn get_block(path: &[u8], extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut f: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"a.test"),
        (b":path", path),
    ];
    f.extend_from_slice(extra);
    block(&f)
}

struct Setup {
    t1: Backend,
    t2: Backend,
    p: Proxy,
    pki: Pki,
}

async fn setup() -> Setup {
    let t1 = Backend::start("t1").await;
    let t2 = Backend::start("t2").await;
    let pki = Pki::new("CA");
    let (c, k) = pki.issue("a", &["a.test"], false);
    let conf = TWO_TENANTS
        .replace("{CERT}", &c.display().to_string())
        .replace("{KEY}", &k.display().to_string());
    let p = Proxy::start(&conf, &[("t1:1", t1.addr), ("t2:1", t2.addr)]);
    Setup { t1, t2, p, pki }
}

/// Fields HTTP/1.1 would read as framing or as more fields, and malformed ones: each is a
/// malformed request (RFC 9113 §8.1.1), refused with RST_STREAM PROTOCOL_ERROR before any
/// member sees it. A plain GET on a new connection after each still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http2_requests_never_reach_a_member() {
    let s = setup().await;
    use Outcome::{GoAway, Reset};
    // The `h2` crate decides these: a connection-specific field is a malformed request
    // (RST_STREAM), a byte no field name or value may hold fails the whole header block
    // (GOAWAY); both with PROTOCOL_ERROR (1).
    type Case = (
        &'static str,
        &'static [(&'static [u8], &'static [u8])],
        Outcome,
    );
    let cases: &[Case] = &[
        (
            "transfer-encoding",
            &[(b"transfer-encoding", b"chunked")],
            Reset(1),
        ),
        ("connection", &[(b"connection", b"keep-alive")], Reset(1)),
        ("keep-alive", &[(b"keep-alive", b"timeout=5")], Reset(1)),
        ("upgrade", &[(b"upgrade", b"websocket")], Reset(1)),
        ("te other than trailers", &[(b"te", b"gzip")], Reset(1)),
        (
            "CR LF in a value",
            &[(b"x-a", b"1\r\nTransfer-Encoding: chunked")],
            GoAway(1),
        ),
        ("LF in a value", &[(b"x-a", b"1\nHost: t2")], GoAway(1)),
        ("NUL in a value", &[(b"x-a", b"1\x002")], GoAway(1)),
        ("upper-case name", &[(b"X-Upper", b"1")], GoAway(1)),
        ("space in a name", &[(b"x a", b"1")], GoAway(1)),
        ("colon in a name", &[(b"x:a", b"1")], GoAway(1)),
    ];
    for (what, extra, want) in cases {
        let block = get_block(b"/t1/api/x", extra);
        let got = exchange(
            s.p.addr,
            &s.pki.ca,
            &[frame(HEADERS, END_STREAM | END_HEADERS, 1, &block)],
        )
        .await;
        assert_eq!(&got, want, "{what}");
        assert_eq!(s.t1.count() + s.t2.count(), 0, "{what}: reached a member");
    }
    let ok = exchange(
        s.p.addr,
        &s.pki.ca,
        &[frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &get_block(b"/t1/api/x", &[]),
        )],
    )
    .await;
    assert_eq!(ok, Outcome::Status(200));
    assert_eq!(s.t1.count(), 1);
}

/// A `content-length` that disagrees with the DATA that follows: fewer bytes, more bytes,
/// or a length on a request that ends at once. The stream is reset (PROTOCOL_ERROR) and no
/// member receives a whole request: one that declared 10 bytes never gets another's 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_that_disagrees_with_the_data_is_refused() {
    let s = setup().await;
    let post = |len: &'static [u8]| {
        block(&[
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"a.test"),
            (b":path", b"/t1/api/up"),
            (b"content-length", len),
        ])
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "fewer bytes than declared",
            vec![
                frame(HEADERS, END_HEADERS, 1, &post(b"10")),
                frame(DATA, END_STREAM, 1, b"12345"),
            ],
        ),
        (
            "more bytes than declared",
            vec![
                frame(HEADERS, END_HEADERS, 1, &post(b"10")),
                frame(DATA, END_STREAM, 1, b"12345678901234567890"),
            ],
        ),
        (
            "declared, then no DATA",
            vec![frame(HEADERS, END_STREAM | END_HEADERS, 1, &post(b"10"))],
        ),
        (
            "two lengths",
            vec![
                frame(
                    HEADERS,
                    END_HEADERS,
                    1,
                    &block(&[
                        (b":method", b"POST"),
                        (b":scheme", b"https"),
                        (b":authority", b"a.test"),
                        (b":path", b"/t1/api/up"),
                        (b"content-length", b"5"),
                        (b"content-length", b"10"),
                    ]),
                ),
                frame(DATA, END_STREAM, 1, b"12345"),
            ],
        ),
    ];
    for (what, frames) in cases {
        let got = exchange(s.p.addr, &s.pki.ca, &frames).await;
        assert_eq!(got, Outcome::Reset(1), "{what}");
        // Whatever reached the member was not a whole request.
        let whole = s.t1.count() + s.t2.count();
        assert_eq!(whole, 0, "{what}: a member took a whole request");
    }
}

/// A `:path` that would leave its tenant gets what the same target gets over HTTP/1.1 (see
/// `proxy_hostile.rs`): dot-segments resolve before routing, encoded slashes are 404, forms
/// backends resolve differently are 400, and CR, LF, NUL or a space in `:path` are
/// malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_never_leaves_its_tenant_over_http2() {
    let s = setup().await;
    // (the `:path`, the outcome, the member that sees it and the path it sees)
    type Case = (&'static [u8], Outcome, Option<(&'static str, &'static str)>);
    let cases: &[Case] = &[
        (
            b"/t1/api/../../t2/api/x",
            Outcome::Status(200),
            Some(("t2", "/api/x")),
        ),
        (b"/t1/api/..%2f..%2ft2/api/x", Outcome::Status(404), None),
        (b"/t1/api/..;/..;/t2/api/x", Outcome::Status(400), None),
        (b"/t1/api/..%5c..%5ct2/api/x", Outcome::Status(400), None),
        (b"/t1/api/%00/../../t2/api/x", Outcome::Status(400), None),
        (b"/t1/api/x\r\nHost: t2", Outcome::Reset(1), None),
        (b"/t1/api/x y", Outcome::Reset(1), None),
        (b"/t1/api/x\x00", Outcome::Reset(1), None),
        (b"t1/api/x", Outcome::Reset(1), None),
        (
            b"/t2/api/../../t1/api/x",
            Outcome::Status(200),
            Some(("t1", "/api/x")),
        ),
    ];
    for (path, want, seen) in cases {
        s.t1.clear();
        s.t2.clear();
        let got = exchange(
            s.p.addr,
            &s.pki.ca,
            &[frame(
                HEADERS,
                END_STREAM | END_HEADERS,
                1,
                &get_block(path, &[]),
            )],
        )
        .await;
        let shown = String::from_utf8_lossy(path);
        assert_eq!(&got, want, "{shown:?}");
        let who = match (s.t1.count(), s.t2.count()) {
            (0, 0) => None,
            (1, 0) => Some(("t1", s.t1.last().target)),
            (0, 1) => Some(("t2", s.t2.last().target)),
            (a, b) => panic!("{shown:?}: t1 saw {a}, t2 saw {b}"),
        };
        assert_eq!(
            who.as_ref().map(|(m, t)| (*m, t.as_str())),
            *seen,
            "{shown:?}: which member saw what"
        );
    }
}
