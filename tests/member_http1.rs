//! The member side of an exchange (balancerd's own HTTP/1.1 client, `upstream/h1.rs`) against
//! members that answer with raw bytes: every body framing a member may use, interim answers,
//! answers that come before the upload ends, and connection reuse after each.

mod support;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A member that answers every request with `answer` (raw bytes), after reading the request
/// head (and, with `read_body`, a `Content-Length` body). It closes after answering when
/// `close`, else it keeps the connection for the next request. Counts connections.
struct RawMember {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// The last request head received, as sent.
    last_head: Arc<std::sync::Mutex<String>>,
}

impl RawMember {
    async fn start(answer: Vec<u8>, close: bool, read_body: bool) -> RawMember {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let answer = Arc::new(answer);
        let last_head = Arc::new(std::sync::Mutex::new(String::new()));
        let last = last_head.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    return;
                };
                count.fetch_add(1, SeqCst);
                let answer = answer.clone();
                tokio::spawn(serve_raw(s, answer, close, read_body, last.clone()));
            }
        });
        RawMember {
            addr,
            connections,
            last_head,
        }
    }
}

async fn serve_raw(
    mut s: TcpStream,
    answer: Arc<Vec<u8>>,
    close: bool,
    read_body: bool,
    last_head: Arc<std::sync::Mutex<String>>,
) {
    let mut buf = Vec::new();
    loop {
        // One request head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let sent = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let head = sent.to_ascii_lowercase();
        *last_head.lock().unwrap() = sent;
        buf.drain(..head_end);
        if read_body {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 65536];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..len);
        }
        if s.write_all(&answer).await.is_err() {
            return;
        }
        if close {
            let _ = s.shutdown().await;
            return;
        }
        if !read_body {
            // The request body (if any) is never read: park the connection.
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
    }
}

fn proxy_to(m: &RawMember) -> Proxy {
    Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 5\nProxyPass /m http://m:1/m\n",
        &[("m:1", m.addr)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_member_body_runs_until_close_and_arrives_whole() {
    let mut answer = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    answer.extend(std::iter::repeat_n(b'x', 300_000));
    let m = RawMember::start(answer, true, false).await;
    let p = proxy_to(&m);
    for _ in 0..2 {
        let g = get(p.addr, "/m/a", &[]).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.body.len(), 300_000);
    }
    // Not reusable: a connection per request.
    assert_eq!(m.connections.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_member_body_is_decoded_and_the_connection_reused() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-M: 1\r\n\r\n\
5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        .to_vec();
    let m = RawMember::start(answer, false, true).await;
    let p = proxy_to(&m);
    let mut c = Client::connect(p.addr).await;
    for _ in 0..3 {
        let g = c.get("/m/a", &[]).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.text(), "hello world");
        assert_eq!(g.headers["x-m"], "1");
        assert!(g.headers.get("x-trailer").is_none());
    }
    assert_eq!(
        m.connections.load(SeqCst),
        1,
        "one member connection for three requests"
    );
}

/// A member's interim answers: `102 Processing` and `103 Early Hints` reach an HTTP/1.1
/// client ahead of the final answer, with their fields; `100 Continue` does not (balancerd
/// answers `Expect` itself); an HTTP/1.0 client gets none (RFC 9110 §15.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_are_relayed_to_http11_clients_and_the_final_one_forwarded() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n\
HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: h\r\nKeep-Alive: timeout=5\r\n\r\nok"
        .to_vec();
    let m = RawMember::start(answer, false, true).await;
    let p = proxy_to(&m);
    let (got, _) = raw(
        p.addr,
        b"GET /m/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let expect_start = "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\n";
    assert!(got.starts_with(expect_start), "{got}");
    assert!(got.ends_with("\r\n\r\nok"), "{got}");
    let final_head = &got[expect_start.len()..].to_ascii_lowercase();
    // Hop-by-hop fields, and the one the member's Connection named, stay behind.
    assert!(!final_head.contains("x-hop"), "{got}");
    assert!(!final_head.contains("keep-alive"), "{got}");
    assert!(!final_head.contains("link:"), "{got}");
    // An HTTP/1.0 client: the final answer only.
    let (got, _) = raw(p.addr, b"GET /m/a HTTP/1.0\r\n\r\n", Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 201 Created\r\n"), "{got}");
    assert!(!got.contains("Early Hints"), "{got}");
    // Through a pooled connection, twice: each request gets its own interim answers.
    let mut c = Client::connect(p.addr).await;
    for _ in 0..2 {
        let g = c.get("/m/a", &[]).await;
        assert_eq!(g.status, 201);
        assert_eq!(g.text(), "ok");
    }
}

/// A member's HTTP/1.0 response framed with `Transfer-Encoding` (RFC 9112 §6.1): the body is
/// read chunked, and the member connection is closed after it, never reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_response_with_transfer_encoding_closes_the_member_connection() {
    let answer = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n\
5\r\nhello\r\n0\r\n\r\n"
        .to_vec();
    let m = RawMember::start(answer, false, true).await;
    let p = proxy_to(&m);
    let mut c = Client::connect(p.addr).await;
    for _ in 0..3 {
        let g = c.get("/m/a", &[]).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.text(), "hello");
    }
    assert_eq!(
        m.connections.load(SeqCst),
        3,
        "a member connection per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_answering_before_the_upload_ends_is_heard_at_once() {
    // The member reads the head only and refuses: the client gets the 413 while its upload
    // is still in progress, and the member connection is not reused.
    let answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n".to_vec();
    let m = RawMember::start(answer, false, false).await;
    let p = proxy_to(&m);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    // The head and the first 1,000 of 50,000,000 body bytes in one write (so the proxy has
    // read everything sent when it answers and closes: no reset can eat the answer), then
    // wait for the answer without sending more.
    let mut first = b"PUT /m/up HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n".to_vec();
    first.extend_from_slice(&[b'u'; 1000]);
    s.write_all(&first).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("too big") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the upload was unfinished");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // The next request needs a new member connection.
    let g = get(p.addr, "/m/x", &[]).await;
    assert_eq!(g.status, 413);
    assert_eq!(m.connections.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_member_is_a_502_or_an_aborted_body_never_a_hang() {
    // (answer, true when the head itself is bad: 502; else the body breaks after the head)
    let cases: [(&[u8], bool); 4] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
            true,
        ),
        (b"SMTP ready\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
        ),
    ];
    for (answer, bad_head) in cases {
        let m = RawMember::start(answer.to_vec(), true, false).await;
        let p = proxy_to(&m);
        let r = tokio::time::timeout(Duration::from_secs(8), async {
            let mut c = Client::connect(p.addr).await;
            c.send(req("GET", "/m/a", &[], full(""))).await
        })
        .await
        .expect("the proxy must not hang on a broken member");
        let what = String::from_utf8_lossy(answer);
        if bad_head {
            assert_eq!(r.expect("an answer").status, 502, "{what}");
        } else {
            assert!(
                r.is_err(),
                "a cut body must abort the client's response: {what}"
            );
        }
    }
}

/// A plain client's fields reach the member as the client spelled them (as httpd sends them),
/// without the hop-by-hop ones and those its Connection names, with the member's Host and
/// the X-Forwarded-* fields merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_fields_reach_the_member_in_their_spelling_without_hop_by_hop_ones() {
    let m = RawMember::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        false,
        true,
    )
    .await;
    let p = proxy_to(&m);
    let (text, _) = raw(
        p.addr,
        b"GET /m/a HTTP/1.1\r\nHost: front\r\nX-Mixed-Case: v\r\nConnection: close, X-Drop\r\n\
X-Drop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: a=1\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    let head = m.last_head.lock().unwrap().clone();
    assert!(head.starts_with("GET /m/a HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Mixed-Case: v\r\n"), "{head}");
    assert!(head.contains("\r\nCookie: a=1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: {}\r\n", "m:1")),
        "{head}"
    );
    assert!(
        lower.contains("\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(lower.contains("\r\nx-forwarded-host: front\r\n"), "{head}");
    for gone in ["x-drop:", "keep-alive:", "connection:"] {
        assert!(!lower.contains(gone), "{gone} must not cross: {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_fields_go_to_the_client_as_received_without_hop_by_hop_ones() {
    let answer = b"HTTP/1.1 200 OK\r\nX-Mixed-Case: v\r\nKeep-Alive: timeout=5\r\n\
Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Content-Length: 2\r\n\r\nok"
        .to_vec();
    let m = RawMember::start(answer, false, true).await;
    let p = proxy_to(&m);
    let (text, _) = raw(
        p.addr,
        b"GET /m/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    assert_eq!(body, "ok");
    // Written through: the member's spelling, its Date (no second one), its length.
    assert!(head.contains("\r\nX-Mixed-Case: v\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert_eq!(lower.matches("\r\ndate: ").count(), 1, "{head}");
    assert!(
        head.contains("\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"),
        "{head}"
    );
    assert_eq!(
        lower.matches("\r\ncontent-length: 2\r\n").count(),
        1,
        "{head}"
    );
    for hop in ["keep-alive:", "proxy-connection:", "trailer:"] {
        assert!(!lower.contains(hop), "{hop} must not cross: {head}");
    }

    // A Header rule that applies still sees (and edits) the fields.
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 5\nProxyPass /m http://m:1/m\nHeader set X-Added 1\n",
        &[("m:1", m.addr)],
    );
    let g = get(p.addr, "/m/a", &[]).await;
    assert_eq!(g.headers["x-added"], "1");
    assert_eq!(g.headers["x-mixed-case"], "v");
    assert!(g.headers.get("keep-alive").is_none());
    assert!(g.headers.get("trailer").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_member_connection_still_times_out() {
    // Answers the first request on a connection, then never again.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = false;
                loop {
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if !answered && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        answered = true;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                }
            });
        }
    });
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyTimeout 1\nProxyPass /m http://m:1/m\n",
        &[("m:1", addr)],
    );
    let mut c = Client::connect(p.addr).await;
    assert_eq!(c.get("/m/a", &[]).await.status, 200);
    // The second request reuses the pooled connection and its timer.
    let t0 = std::time::Instant::now();
    let g = c.get("/m/a", &[]).await;
    let took = t0.elapsed();
    assert_eq!(g.status, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
