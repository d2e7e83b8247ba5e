//! The response side's edges and shutdown: a member that stalls mid-body, a client that stops
//! reading a 100 MB download, `GracefulShutdownTimeout` running out with a long-poll and a
//! WebSocket open, and a keep-alive connection's answer after SIGTERM closing it.

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until EOF, an error or `limit`; returns the bytes and whether the peer ended the
/// connection (EOF or reset) within the limit.
async fn read_until_closed(s: &mut tokio::net::TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// A member that sends a head announcing 1,000,000 bytes (or a chunked body), 100,000 bytes
/// of body, and then stalls with the connection open; it records when balancerd closed its
/// side.
struct StallingMember {
    addr: std::net::SocketAddr,
    closed: Arc<AtomicBool>,
}

impl StallingMember {
    async fn start(chunked: bool) -> StallingMember {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ = s.read(&mut head).await;
                    if chunked {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n",
                            )
                            .await;
                    } else {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                            .await;
                    }
                    let _ = s.write_all(&[b'x'; 100_000]).await;
                    // Stalled: wait for balancerd to give up on the connection.
                    let mut b = [0u8; 16];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await
                    {
                        c.store(true, SeqCst);
                    }
                });
            }
        });
        StallingMember { addr, closed }
    }
}

/// A member stalling mid-body: after `ProxyTimeout` without a byte, the client's connection
/// is cut (it cannot mistake the short body for a whole one: fewer bytes than the
/// `Content-Length` it was promised, or no last chunk, then EOF), the member's connection is
/// closed, and the member is not put in error (no `failontimeout`). Both ways a body moves:
/// socket to socket (a large `Content-Length`: splice) and frame by frame (chunked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stalling_mid_body_cuts_the_client_after_the_timeout() {
    for chunked in [false, true] {
        member_stalling_mid_body(chunked).await;
    }
}

async fn member_stalling_mid_body(chunked: bool) {
    let m = StallingMember::start(chunked).await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyTimeout 1\nProxyPass /rec http://m:1/rec\n",
        &[("m:1", m.addr)],
    );
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /rec/a.wav HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(closed, "the client's connection was cut");
    let text = String::from_utf8_lossy(&got[..got.len().min(200)]).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &got[head_end..];
    if chunked {
        assert!(
            text.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{text}"
        );
        let xs = body.iter().filter(|&&b| b == b'x').count();
        assert_eq!(xs, 100_000, "the bytes the member sent, no more");
        assert!(
            !body.ends_with(b"0\r\n\r\n"),
            "no last chunk: the client sees the cut"
        );
    } else {
        assert!(
            text.to_ascii_lowercase()
                .contains("content-length: 1000000"),
            "{text}"
        );
        assert_eq!(body.len(), 100_000, "the bytes the member sent, no more");
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "cut after the 1 s timeout, took {took:?}"
    );
    let member_closed = wait_for(async || m.closed.load(SeqCst), Duration::from_secs(3)).await;
    assert!(
        member_closed.is_some(),
        "the member's connection was closed"
    );
    assert!(
        !p.log_text().contains("disabling member"),
        "{}",
        p.log_text()
    );
}

/// A client that stops reading a 100 MB download: balancerd holds a bounded amount (it reads
/// from the member only as fast as the client takes), and after `Timeout` without progress it
/// closes both connections; the member sees its write fail long before 100 MB.
/// Both ways a body moves: socket to socket (`Content-Length`: splice) and frame by frame
/// (chunked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_download_is_cut_and_memory_stays_bounded() {
    for chunked in [false, true] {
        client_stops_reading(chunked).await;
    }
}

async fn client_stops_reading(chunked: bool) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = l.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let (s2, f2) = (sent.clone(), failed.clone());
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await;
        let total: u64 = 100 * 1024 * 1024;
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {total}")
        };
        let _ = s
            .write_all(format!("HTTP/1.1 200 OK\r\n{framing}\r\n\r\n").as_bytes())
            .await;
        let mut chunk = Vec::new();
        if chunked {
            chunk.extend_from_slice(b"10000\r\n");
        }
        chunk.extend_from_slice(&[b'r'; 64 * 1024]);
        if chunked {
            chunk.extend_from_slice(b"\r\n");
        }
        while s2.load(SeqCst) < total {
            if s.write_all(&chunk).await.is_err() {
                f2.store(true, SeqCst);
                return;
            }
            s2.fetch_add(64 * 1024, SeqCst);
        }
    });
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 2\nProxyPass /rec http://m:1/rec\n",
        &[("m:1", maddr)],
    );
    let rss0 = p.rss_kib();
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /rec/big.wav HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut first))
        .await
        .expect("the head within 5 s")
        .unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // The client stops reading. The member gets stuck once the buffers fill, then its write
    // fails when balancerd gives up.
    let t0 = Instant::now();
    let cut = wait_for(async || failed.load(SeqCst), Duration::from_secs(15)).await;
    assert!(
        cut.is_some(),
        "the member's connection was closed within 15 s"
    );
    let moved = sent.load(SeqCst);
    assert!(
        moved < 32 * 1024 * 1024,
        "only socket buffers' worth moved: {moved} bytes"
    );
    let rss = p.rss_kib();
    assert!(
        rss < rss0 + 16 * 1024,
        "balancerd did not buffer the download: RSS {rss0} → {rss} KiB"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "not before the 2 s Timeout: {:?}",
        t0.elapsed()
    );
    // The client's side is closed too: after what was buffered, EOF.
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the client's connection was closed");
}

/// `GracefulShutdownTimeout 2`: after SIGTERM, an open long-poll and an open WebSocket keep
/// working during the grace period, are cut when it runs out, and the process exits 0 with a
/// warning that names what was still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_timeout_cuts_a_long_poll_and_a_websocket() {
    let poll = Backend::start("poll").await;
    poll.set_reply(Reply::Delay(Duration::from_secs(60)));
    let ws = Backend::start("ws").await;
    ws.set_reply(Reply::Upgrade);
    let mut p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nGracefulShutdownTimeout 2\nProxyPass /cometd http://poll:1/cometd\nProxyPass /ws http://ws:1/ws upgrade=websocket\n",
        &[("poll:1", poll.addr), ("ws:1", ws.addr)],
    );
    let mut lp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    lp.write_all(b"GET /cometd/poll HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut w = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    w.write_all(
        b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), w.read(&mut buf))
        .await
        .expect("the 101 within 5 s")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let held = wait_for(
        async || poll.in_flight.load(SeqCst) == 1,
        Duration::from_secs(3),
    )
    .await;
    assert!(held.is_some(), "the long-poll is held at the member");
    let _ = balancerd::app::send_signal(p.pid(), libc::SIGTERM);
    let t0 = Instant::now();
    p.wait_log("draining:", 1, Duration::from_secs(3)).await;
    // Within the grace period the tunnel still carries bytes both ways.
    w.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(1), w.read_exact(&mut echo))
        .await
        .expect("echo within the grace period")
        .unwrap();
    assert_eq!(&echo, b"ping");
    // Then both are cut when the grace period is over, and the process exits 0.
    let (got, closed) = read_until_closed(&mut lp, Duration::from_secs(6)).await;
    assert!(closed, "the long-poll was cut");
    assert!(got.is_empty(), "nothing was answered to the poll: {got:?}");
    let (_, closed) = read_until_closed(&mut w, Duration::from_secs(2)).await;
    assert!(closed, "the WebSocket was cut");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "cut at the end of the 2 s grace period: {took:?}"
    );
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        p.log_text().contains("grace period over with"),
        "{}",
        p.log_text()
    );
}

/// A request in flight on a keep-alive connection when SIGTERM arrives is answered in full,
/// with `Connection: close`, and the connection then closes: the client does not send its
/// next request into a connection that is going away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_after_sigterm_closes_the_keep_alive_connection() {
    let slow = Backend::start("slow").await;
    slow.set_reply(Reply::Delay(Duration::from_millis(1500)));
    let mut p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nGracefulShutdownTimeout 10\nProxyPass /api http://slow:1/api\n",
        &[("slow:1", slow.addr)],
    );
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /api/first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let held = wait_for(
        async || slow.in_flight.load(SeqCst) == 1,
        Duration::from_secs(3),
    )
    .await;
    assert!(held.is_some(), "the request is at the member");
    let _ = balancerd::app::send_signal(p.pid(), libc::SIGTERM);
    p.wait_log("draining:", 1, Duration::from_secs(3)).await;
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "the connection closed after the answer");
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{text}"
    );
    assert!(text.ends_with("backend slow\n"), "the whole answer: {text}");
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
