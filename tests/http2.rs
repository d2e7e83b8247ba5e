//! HTTP/2 clients (TLS, ALPN `h2`) on balancerd's HTTP/2 server: interim answers relayed as
//! informational HEADERS, a reset stream cancelling its request at the member, bodies
//! streamed both ways within flow control, and an idle connection closed with GOAWAY.
//! The client is the `h2` crate's, so the test sees the frames hyper's client would hide.

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use support::*;

fn conf(pki: &Pki, extra: &str) -> String {
    let (c, k) = pki.issue("a", &["a.test"], false);
    format!(
        "Listen 127.0.0.1:{{PORT}} https
{extra}
<VirtualHost *:{{PORT}}>
ServerName a.test
SSLEngine on
SSLCertificateFile {}
SSLCertificateKeyFile {}
ProxyPass /t1/api http://a:1/api
ProxyPass /raw http://raw:1/raw
</VirtualHost>
",
        path_text(&c),
        path_text(&k)
    )
}

type H2 = h2::client::SendRequest<bytes::Bytes>;

/// An HTTP/2 connection to the proxy; the connection's task ends when the proxy closes it.
async fn h2_connect(px: &Proxy, pki: &Pki) -> (H2, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let (s, _) = tls_connect(px.addr, &pki.ca, "a.test", &[b"h2"])
        .await
        .expect("TLS handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, conn) = h2::client::handshake(s).await.expect("HTTP/2 handshake");
    (client, tokio::spawn(conn))
}

fn get(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method("GET")
        .uri(format!("https://a.test{path}"))
        .body(())
        .unwrap()
}

/// Reads a response body to its end, giving the window back as it goes.
async fn read_body(mut b: h2::RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(d) = tokio::time::timeout(Duration::from_secs(10), b.data())
        .await
        .expect("the body kept coming")
    {
        let d = d.expect("a DATA frame");
        let _ = b.flow_control().release_capacity(d.len());
        out.extend_from_slice(&d);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_reach_http2_clients_as_informational_headers() {
    let pki = Pki::new("CA");
    let (raw, _) = raw_member(
        b"HTTP/1.1 102 Processing\r\n\r\n\
HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: keep-alive\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let a = Backend::start("t1").await;
    let px = Proxy::start(&conf(&pki, ""), &[("a:1", a.addr), ("raw:1", raw)]);
    let (mut client, _conn) = h2_connect(&px, &pki).await;
    for _ in 0..2 {
        let (mut resp, _) = client.send_request(get("/raw/x"), true).unwrap();
        let mut interim = Vec::new();
        while let Some(r) = std::future::poll_fn(|cx| resp.poll_informational(cx)).await {
            interim.push(r.expect("an informational response"));
        }
        let statuses: Vec<u16> = interim.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses, [102, 103], "both interim answers, in order");
        assert_eq!(
            interim[1].headers()["link"],
            "</s.css>; rel=preload",
            "the 103's fields"
        );
        assert!(
            interim[1].headers().get("connection").is_none(),
            "no connection-specific field in HTTP/2"
        );
        let resp = resp.await.expect("the final response");
        assert_eq!(resp.status(), 200);
        assert_eq!(read_body(resp.into_body()).await, b"ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_cancels_its_request_at_the_member() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    a.set_reply(Reply::Delay(Duration::from_secs(20)));
    let px = Proxy::start(&conf(&pki, ""), &[("a:1", a.addr), ("raw:1", a.addr)]);
    let (mut client, _conn) = h2_connect(&px, &pki).await;
    let (resp, mut stream) = client.send_request(get("/t1/api/poll"), false).unwrap();
    let held = wait_for(
        async || a.in_flight.load(SeqCst) == 1,
        Duration::from_secs(5),
    )
    .await;
    assert!(held.is_some(), "the long-poll reached the member");
    stream.send_reset(h2::Reason::CANCEL);
    drop(resp);
    let freed = wait_for(
        async || a.in_flight.load(SeqCst) == 0,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        freed.is_some(),
        "the member's request was not cancelled when the client reset its stream"
    );
    // The connection still serves.
    a.set_reply(Reply::Ok);
    let (resp, _) = client.send_request(get("/t1/api/x"), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(read_body(resp.into_body()).await, b"backend t1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_within_flow_control() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let px = Proxy::start(&conf(&pki, ""), &[("a:1", a.addr), ("raw:1", a.addr)]);
    let (mut client, _conn) = h2_connect(&px, &pki).await;
    // 8 MiB up, with a Content-Length (forwarded to the member as one).
    const UP: usize = 8 << 20;
    let whole: Vec<u8> = (0..UP as u64 / 65536)
        .flat_map(|i| pattern_chunk(i * 65536, 65536))
        .collect();
    let req = http::Request::builder()
        .method("PUT")
        .uri("https://a.test/t1/api/rec")
        .header("content-length", UP.to_string())
        .body(())
        .unwrap();
    let (resp, mut send) = client.send_request(req, false).unwrap();
    let mut data = bytes::Bytes::from(whole.clone());
    while !data.is_empty() {
        send.reserve_capacity(data.len().min(1 << 20));
        let n = std::future::poll_fn(|cx| send.poll_capacity(cx))
            .await
            .expect("window")
            .unwrap();
        let chunk = data.split_to(n.min(data.len()));
        send.send_data(chunk, data.is_empty()).unwrap();
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .expect("the upload was answered")
        .unwrap();
    assert_eq!(resp.status(), 200);
    read_body(resp.into_body()).await;
    let seen = a.last();
    assert_eq!(seen.body_len, UP as u64);
    assert_eq!(seen.body_sha, sha_hex(&whole));
    assert_eq!(seen.headers["content-length"], UP.to_string());
    // 24 MiB down.
    const DOWN: u64 = 24 << 20;
    a.set_reply(Reply::Big(DOWN));
    let (resp, _) = client.send_request(get("/t1/api/rec"), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("connection").is_none());
    let got = read_body(resp.into_body()).await;
    assert_eq!(got.len() as u64, DOWN);
    let expect: Vec<u8> = (0..DOWN / 65536)
        .flat_map(|i| pattern_chunk(i * 65536, 65536))
        .collect();
    assert!(got == expect, "the download arrived intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_gets_goaway_after_keepalive_timeout() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let px = Proxy::start(
        &conf(&pki, "KeepAliveTimeout 1"),
        &[("a:1", a.addr), ("raw:1", a.addr)],
    );
    let (mut client, conn) = h2_connect(&px, &pki).await;
    let (resp, _) = client.send_request(get("/t1/api/x"), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    read_body(resp.into_body()).await;
    let t0 = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the idle connection was closed cleanly (GOAWAY): {ended:?}"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "not before KeepAliveTimeout: {:?}",
        t0.elapsed()
    );
    // A connection with a stream open is not idle: a 2-second answer outlives the timeout.
    a.set_reply(Reply::Delay(Duration::from_secs(2)));
    let (mut client, _conn) = h2_connect(&px, &pki).await;
    let (resp, _) = client.send_request(get("/t1/api/slow"), true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let served = Arc::new(AtomicUsize::new(0));
    served.fetch_add(read_body(resp.into_body()).await.len(), SeqCst);
    assert!(served.load(SeqCst) > 0);
}

/// A client that stops reading a 100 MB download (it gives no flow-control window back):
/// after `Timeout` with no window the stream is reset (CANCEL), the member's connection is
/// closed (its writes fail long before 100 MB), and the client's connection still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_reset_after_the_timeout() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("CA");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = l.local_addr().unwrap();
    let (sent, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s2, f2) = (sent.clone(), failed.clone());
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await;
        let total: u64 = 100 << 20;
        let _ = s
            .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes())
            .await;
        let chunk = vec![b'r'; 64 * 1024];
        while s2.load(SeqCst) < total {
            if s.write_all(&chunk).await.is_err() {
                f2.store(true, SeqCst);
                return;
            }
            s2.fetch_add(chunk.len() as u64, SeqCst);
        }
    });
    let a = Backend::start("t1").await;
    let px = Proxy::start(
        &conf(&pki, "Timeout 2"),
        &[("a:1", a.addr), ("raw:1", maddr)],
    );
    let (mut client, _conn) = h2_connect(&px, &pki).await;
    let (resp, _) = client.send_request(get("/raw/big"), true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("the head came")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // Nothing read from here on: the window stays shut.
    let t0 = std::time::Instant::now();
    let cut = wait_for(async || failed.load(SeqCst), Duration::from_secs(15)).await;
    assert!(
        cut.is_some(),
        "the member's connection was closed within 15 s"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "not before the 2 s Timeout: {:?}",
        t0.elapsed()
    );
    assert!(
        sent.load(SeqCst) < 32 << 20,
        "only buffers' worth moved: {}",
        sent.load(SeqCst)
    );
    // The stream ends reset; the connection goes on serving.
    let mut reset = None;
    while let Some(d) = tokio::time::timeout(Duration::from_secs(5), body.data())
        .await
        .expect("the stream ended")
    {
        match d {
            Ok(d) => {
                let _ = body.flow_control().release_capacity(d.len());
            }
            Err(e) => {
                reset = e.reason();
                break;
            }
        }
    }
    assert_eq!(reset, Some(h2::Reason::CANCEL));
    let (resp, _) = client.send_request(get("/t1/api/after"), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
}
