//! HTTP/1.1 clients over TLS are served by balancerd's own HTTP/1.1 server, with everything
//! the plain path does: pipelining, `100-continue`, early answers with lingering close,
//! WebSocket upgrades, the framing and `Host` checks, the head timeout (408), interim (1xx)
//! answers relayed, member fields written as received, and large bodies both ways.
//!
//! Several of these tell balancerd's server from hyper's (which served TLS clients before):
//! hyper folds two equal `Content-Length`s into one, closes a slow head without a 408, drops
//! a member's `103`, and writes every field name in lower case.

mod support;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS front for `a.test` with `/t1/api` and `/t2/api` on two members, `/ws` allowing
/// WebSocket, and `/raw` on a raw member; `extra` goes at the top.
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
ProxyPass /t2/api http://b:1/api
ProxyPass /ws http://a:1/ws upgrade=websocket
ProxyPass /raw http://raw:1/raw
</VirtualHost>
",
        path_text(&c),
        path_text(&k)
    )
}

/// A TLS connection to the proxy for `a.test`, HTTP/1.1 by ALPN.
async fn connect(px: &Proxy, pki: &Pki) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect(px.addr, &pki.ca, "a.test", &[b"http/1.1"])
        .await
        .expect("TLS handshake with the proxy")
        .0
}

/// Reads until the proxy closes the connection or `wait` passes with nothing new.
async fn read_all<S: tokio::io::AsyncRead + Unpin>(s: &mut S, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Reads until `needle` has arrived (or fails after 5 s, saying what did not come).
async fn read_until<S: tokio::io::AsyncRead + Unpin>(s: &mut S, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let t0 = std::time::Instant::now();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = Duration::from_secs(5).saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            other => panic!(
                "{needle:?} never arrived ({other:?}); got: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_continue_and_framing_over_tls() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let b = Backend::start("t2").await;
    let px = Proxy::start(
        &conf(&pki, ""),
        &[("a:1", a.addr), ("b:1", b.addr), ("raw:1", a.addr)],
    );

    // Three pipelined requests in one TLS record: answered in order, each to its tenant.
    let mut s = connect(&px, &pki).await;
    s.write_all(
        b"GET /t1/api/1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /t2/api/2 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /t1/api/3 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (out, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "Connection: close ends the connection: {out}");
    let i1 = out.find("backend t1").expect(&out);
    let i2 = out.find("backend t2").expect(&out);
    let i3 = out.rfind("backend t1").expect(&out);
    assert!(i1 < i2 && i2 < i3, "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{out}");
    assert_eq!((a.count(), b.count()), (2, 1));

    // Two equal Content-Lengths: refused (hyper folded them into one and forwarded).
    // Content-Length with Transfer-Encoding: refused. Neither reaches a member.
    for head in [
        "POST /t1/api/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "POST /t1/api/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n",
    ] {
        let mut s = connect(&px, &pki).await;
        s.write_all(head.as_bytes()).await.unwrap();
        let (out, closed) = read_all(&mut s, Duration::from_secs(5)).await;
        assert!(out.starts_with("HTTP/1.1 400 "), "{head:?}: {out}");
        assert!(closed, "{head:?}: the connection closes after a refusal");
    }
    assert_eq!(
        (a.count(), b.count()),
        (2, 1),
        "nothing refused reached a member"
    );

    // Expect: 100-continue: the 100 comes before the body is sent, then the answer.
    let mut s = connect(&px, &pki).await;
    s.write_all(
        b"PUT /t1/api/up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut s, "\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{got}");
    s.write_all(b"hello").await.unwrap();
    let got = read_until(&mut s, "backend t1").await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert_eq!(a.last().body_len, 5);
    assert_eq!(a.last().method, "PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_answers_and_member_fields_as_received_over_tls() {
    let pki = Pki::new("CA");
    let (raw, heads) = raw_member(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\nX-Custom-Case: kept\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let a = Backend::start("t1").await;
    let px = Proxy::start(
        &conf(&pki, ""),
        &[("a:1", a.addr), ("b:1", a.addr), ("raw:1", raw)],
    );
    let mut s = connect(&px, &pki).await;
    for _ in 0..2 {
        s.write_all(b"GET /raw/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let got = read_until(&mut s, "\r\n\r\nok").await;
        assert!(
            got.starts_with(
                "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
            ),
            "the 103 comes first, then the final answer: {got}"
        );
        assert!(
            got.contains("\r\nX-Custom-Case: kept\r\n"),
            "the member's field name as sent: {got}"
        );
    }
    assert_eq!(heads.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_early_answers_over_tls() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    a.set_reply(Reply::Upgrade);
    let px = Proxy::start(
        &conf(&pki, ""),
        &[("a:1", a.addr), ("b:1", a.addr), ("raw:1", a.addr)],
    );
    let mut s = connect(&px, &pki).await;
    s.write_all(b"GET /ws/chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut s, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    for msg in ["ping-through-the-tls-tunnel", "and-a-second-one"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        let got = read_until(&mut s, msg).await;
        assert_eq!(got, msg, "echoed through the tunnel");
    }
    assert_eq!(a.last().headers["upgrade"], "websocket");

    // An early answer: a 1 MB upload to a path no rule maps gets its 404 while the client
    // is still sending; the connection closes after the answer, which the client reads
    // whole (lingering close: no reset under it).
    let mut s = connect(&px, &pki).await;
    s.write_all(b"POST /nowhere HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        for _ in 0..16 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let (out, closed) = read_all(&mut rd, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 404 "), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert!(out.ends_with("</html>\n"), "the whole page arrived: {out}");
    assert!(closed);
    let _ = writer.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_head_over_tls_gets_408_and_idle_connections_close() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let px = Proxy::start(
        &conf(&pki, "RequestReadTimeout header=1\nKeepAliveTimeout 1"),
        &[("a:1", a.addr), ("b:1", a.addr), ("raw:1", a.addr)],
    );
    let mut s = connect(&px, &pki).await;
    s.write_all(b"GET /t1/api/x HTTP/1.1\r\nHost: a.")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let (out, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(closed);
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "cut at its deadline: {:?}",
        t0.elapsed()
    );
    // An idle keep-alive connection closes quietly after KeepAliveTimeout.
    let mut s = connect(&px, &pki).await;
    s.write_all(b"GET /t1/api/x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, "backend t1").await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    let (rest, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "closed when idle");
    assert_eq!(rest, "", "nothing more was written");
    assert_eq!(a.count(), 1, "the unfinished head never reached the member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_over_tls() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let px = Proxy::start(
        &conf(&pki, ""),
        &[("a:1", a.addr), ("b:1", a.addr), ("raw:1", a.addr)],
    );
    let s = connect(&px, &pki).await;
    let mut c = h1_over(s).await;
    // 24 MiB up.
    const UP: u64 = 24 << 20;
    let whole: Vec<u8> = (0..UP / 65536)
        .flat_map(|i| pattern_chunk(i * 65536, 65536))
        .collect();
    let body = full(whole.clone());
    let g = c
        .send(req(
            "PUT",
            "/t1/api/rec",
            &[("host", "a.test"), ("content-length", &UP.to_string())],
            body,
        ))
        .await
        .unwrap();
    assert_eq!(g.status, 200);
    let seen = a.last();
    assert_eq!(seen.body_len, UP);
    assert_eq!(seen.body_sha, sha_hex(&whole));
    // 32 MiB down on the same connection.
    const DOWN: u64 = 32 << 20;
    a.set_reply(Reply::Big(DOWN));
    let g = c.get("/t1/api/rec", &[("host", "a.test")]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body.len() as u64, DOWN);
    let expect: Vec<u8> = (0..DOWN / 65536)
        .flat_map(|i| pattern_chunk(i * 65536, 65536))
        .collect();
    assert!(g.body[..] == expect[..], "the download arrived intact");
    // And the connection still serves.
    a.set_reply(Reply::Ok);
    assert_eq!(c.get("/t1/api/x", &[("host", "a.test")]).await.status, 200);
}

/// TLS 1.3 sessions resume with tickets (stateless: the process's one ticket key), and
/// keep resuming after a reload builds a new TLS config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_with_tickets_across_a_reload() {
    let pki = Pki::new("CA");
    let a = Backend::start("t1").await;
    let text = conf(&pki, "");
    let px = Proxy::start(
        &text,
        &[("a:1", a.addr), ("b:1", a.addr), ("raw:1", a.addr)],
    );
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let cx = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    // One GET per new connection; the kind of handshake it had.
    let one = async || {
        let s = tokio::net::TcpStream::connect(px.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut ts = cx.connect(name, s).await.expect("handshake");
        ts.write_all(b"GET /t1/api/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (out, _) = read_all(&mut ts, Duration::from_secs(5)).await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        ts.get_ref().1.handshake_kind()
    };
    assert_eq!(one().await, Some(rustls::HandshakeKind::Full));
    assert_eq!(one().await, Some(rustls::HandshakeKind::Resumed));
    // A reload (the file changed) builds a new TLS config; the sessions stay valid.
    let before = px.log_text().matches("reloaded").count();
    px.conf.write(
        "balancerd.conf",
        &format!(
            "{}\n# touched\n",
            text.replace("{PORT}", &px.addr.port().to_string())
        ),
    );
    let reloaded = wait_for(
        async || px.log_text().matches("reloaded").count() > before,
        Duration::from_secs(10),
    )
    .await;
    assert!(reloaded.is_some(), "no reload: {}", px.log_text());
    assert_eq!(one().await, Some(rustls::HandshakeKind::Resumed));
}
