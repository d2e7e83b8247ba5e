//! Hostile input: request smuggling, limits, slow clients, and tenant isolation through
//! every path trick. Raw bytes on real sockets.

mod support;
use std::time::Duration;
use support::*;

const TWO_TENANTS: &str = "Listen 127.0.0.1:{PORT}
KeepAliveTimeout 2
RequestReadTimeout header=2
<Proxy balancer://t1rws>
BalancerMember http://t1:1
</Proxy>
<Proxy balancer://t2rws>
BalancerMember http://t2:1
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
ProxyPass /t2/api balancer://t2rws/api
";

async fn tenants() -> (Backend, Backend, Proxy) {
    let t1 = Backend::start("t1").await;
    let t2 = Backend::start("t2").await;
    let p = Proxy::start(TWO_TENANTS, &[("t1:1", t1.addr), ("t2:1", t2.addr)]);
    (t1, t2, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_framing_is_refused_and_never_reaches_a_member() {
    let (t1, t2, p) = tenants().await;
    let cases: &[&[u8]] = &[
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /t2/api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /t2/api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabc",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /t1/api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST /t1/api/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /t1/api/a HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nGET /t2/api/smuggled HTTP/1.1\r\n\r\n",
        b"GET /t1/api/a HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n",
    ];
    for c in cases {
        let (out, closed) = raw(p.addr, c, Duration::from_secs(3)).await;
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{:?} → {out:?}",
            String::from_utf8_lossy(c)
        );
        assert!(
            closed,
            "connection closed after {:?}",
            String::from_utf8_lossy(c)
        );
        assert_eq!(
            out.matches("HTTP/1.1").count(),
            1,
            "exactly one response: {out}"
        );
    }
    assert_eq!(t1.count(), 0);
    assert_eq!(t2.count(), 0, "nothing smuggled reached tenant 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let (t1, t2, p) = tenants().await;
    let (out, _) = raw(
        p.addr,
        b"GET /t1/api/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /t2/api/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /t1/api/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let i1 = out.find("backend t1").unwrap();
    let i2 = out.find("backend t2").unwrap();
    let i3 = out.rfind("backend t1").unwrap();
    assert!(i1 < i2 && i2 < i3, "{out}");
    assert_eq!(t1.count(), 2);
    assert_eq!(t2.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_request_line_and_headers() {
    let (t1, _t2, p) = tenants().await;
    let long = format!(
        "GET /t1/api/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(9000)
    );
    let (out, _) = raw(p.addr, long.as_bytes(), Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 414"), "{out}");
    let big = format!(
        "GET /t1/api/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let (out, _) = raw(p.addr, big.as_bytes(), Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    let mut many = String::from("GET /t1/api/x HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (out, _) = raw(p.addr, many.as_bytes(), Duration::from_secs(2)).await;
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert_eq!(t1.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_keepalive_are_cut() {
    let (_t1, _t2, p) = tenants().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Slowloris: a header that never ends.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /t1/api/x HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let mut closed = false;
    while t0.elapsed() < Duration::from_secs(6) {
        let _ = s.write_all(b"a").await;
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "slow header connection was closed");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "within RequestReadTimeout header=2 + slack"
    );
    // Idle keep-alive: closed after KeepAliveTimeout.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /t1/api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(n > 0);
    let t0 = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed"
    );
    assert!(t0.elapsed() >= Duration::from_millis(1500) && t0.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_body_is_cut_at_timeout() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 1\nProxyPass /up http://a:1/up\n",
        &[("a:1", a.addr)],
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let t0 = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    let n = r.expect("the proxy gave up on the body").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(a.count(), 0, "the member saw no whole request");
}

/// A path sent, the status it must get, and the member that must see it (with the path it
/// must see), if any.
type Probe = (&'static str, u16, Option<(&'static str, &'static str)>);

/// No path a client sends reaches the other tenant's member: encodings, dot-segments,
/// doubled slashes, traversal forms that servlet containers or Windows stacks resolve. Every
/// probe's outcome is written out by hand from httpd's rules (decode unreserved escapes,
/// merge slashes, resolve dot-segments, then match the prefix; `%2F` with
/// `AllowEncodedSlashes Off` is 404) and the README's table of deliberate differences (`..;`,
/// `\`, `%5C`, NUL and invalid UTF-8 after decoding are 400): the status, and which
/// tenant's member saw the request with which path, or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_isolation_whatever_the_encoding() {
    let (t1, t2, p) = tenants().await;
    // (path sent, status, the member that saw it and the path it saw)
    let probes: &[Probe] = &[
        // Dot-segments resolve before routing: these ask for tenant 2's space and get it,
        // exactly what a request for /t2/api/x gets.
        ("/t1/api/../../t2/api/x", 200, Some(("t2", "/api/x"))),
        (
            "/t1/api/%2e%2e/%2e%2e/t2/api/x",
            200,
            Some(("t2", "/api/x")),
        ),
        ("/t1//api/..//..//t2/api/x", 200, Some(("t2", "/api/x"))),
        ("//t1/api/../../t2/api/x", 200, Some(("t2", "/api/x"))),
        ("/t1/api/x/../../../t2/api/x", 200, Some(("t2", "/api/x"))),
        ("/t1/api;/../../t2/api/x", 200, Some(("t2", "/api/x"))),
        // Encoded slashes: 404, nothing forwarded.
        ("/t1/api/%2E%2E%2F%2E%2E%2Ft2/api/x", 404, None),
        ("/t1/api/..%2f..%2ft2/api/x", 404, None),
        ("/t1/api/a%2Fb", 404, None),
        // What servlet containers or Windows stacks would resolve: refused.
        ("/t1/api/..;/..;/t2/api/x", 400, None),
        ("/t1/api/.;/..;/t2/api/x", 400, None),
        ("/t1/api/%2e%2e;/t2/api/x", 400, None),
        ("/t1/api/..%5c..%5ct2/api/x", 400, None),
        ("/t1/api/%5C..%5C..%5Ct2%5Capi", 400, None),
        ("/t1/api/..\\..\\t2/api/x", 400, None),
        ("/t1/api/%00/../../t2/api/x", 400, None),
        ("/t1/api/%c0%ae%c0%ae/t2/api/x", 400, None),
        // Decoded once only: a double-encoded dot stays data, on tenant 1's member.
        (
            "/t1/api/%252e%252e/%252e%252e/t2/api/x",
            200,
            Some(("t1", "/api/%252e%252e/%252e%252e/t2/api/x")),
        ),
        ("/t1/api/caf%C3%A9", 200, Some(("t1", "/api/caf%C3%A9"))),
        ("/t1/api/./x", 200, Some(("t1", "/api/x"))),
        ("/t1/api/x/..", 200, Some(("t1", "/api/"))),
        ("/t1/api/../../t1/api/x", 200, Some(("t1", "/api/x"))),
        // Outside every prefix: case matters, prefixes end at a segment.
        ("/t1/api/..", 404, None),
        ("/T2/api/x", 404, None),
        ("/t2/API/x", 404, None),
        ("/t1/apix", 404, None),
        ("/t1/api/../../../t2/api/x", 400, None),
        // The other direction.
        ("/t2/api/../../t1/api/x", 200, Some(("t1", "/api/x"))),
        (
            "/t2/api/%2e%2e/%2e%2e/t1/api/x",
            200,
            Some(("t1", "/api/x")),
        ),
        ("/t2//api/..//..//t1/api/x", 200, Some(("t1", "/api/x"))),
        ("/t2/api/..;/..;/t1/api/x", 400, None),
        ("/t2/api/..%2f..%2ft1/api/x", 404, None),
        ("/t2/api/..%5c..%5ct1/api/x", 400, None),
        (
            "/t2/api/%252e%252e/%252e%252e/t1/api/x",
            200,
            Some(("t2", "/api/%252e%252e/%252e%252e/t1/api/x")),
        ),
    ];
    for &(path, status, seen) in probes {
        t1.clear();
        t2.clear();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (r, _) = raw(p.addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: want {status}, got {}",
            r.lines().next().unwrap_or("nothing")
        );
        let got = match (t1.count(), t2.count()) {
            (0, 0) => None,
            (1, 0) => Some(("t1", t1.last().target)),
            (0, 1) => Some(("t2", t2.last().target)),
            (a, b) => panic!("{path}: t1 saw {a} requests, t2 saw {b}"),
        };
        assert_eq!(
            got.as_ref().map(|(m, t)| (*m, t.as_str())),
            seen,
            "{path}: which member saw what"
        );
    }
}

/// A request body that stalls is cut at `Timeout`, whether it moves frame by frame (small)
/// or socket to socket (large: splice), even when the member may take longer
/// (`ProxyTimeout 30`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_bodies_are_cut_at_timeout_small_or_large() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 1\nProxyTimeout 30\nProxyPass /up http://a:1/up\n",
        &[("a:1", a.addr)],
    );
    for (len, sent) in [(100usize, 9usize), (10_000_000, 300_000)] {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        let mut first =
            format!("PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        first.extend(std::iter::repeat_n(b'x', sent));
        s.write_all(&first).await.unwrap();
        let t0 = std::time::Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(8), async {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let took = t0.elapsed();
        assert!(
            r.is_ok(),
            "the proxy held a stalled body of {len} bytes: {:?} {}",
            String::from_utf8_lossy(&out),
            p.log_text()
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{len}: cut after {took:?}: {:?} {}",
            String::from_utf8_lossy(&out),
            p.log_text()
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 408 "), "{len}: {text}");
    }
}

/// A request head left unfinished is answered with 408 at `RequestReadTimeout header=`,
/// like httpd, and the connection closes; an idle connection just closes (at
/// `KeepAliveTimeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_request_head_gets_408() {
    let (t1, _t2, p) = tenants().await;
    let t0 = std::time::Instant::now();
    let (out, closed) = raw(
        p.addr,
        b"GET /t1/api/x HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(closed);
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let (out, closed) = raw(p.addr, b"", Duration::from_secs(5)).await;
    assert!(out.is_empty() && closed, "{out}");
    assert_eq!(t1.count(), 0);
}

/// Request lines the plain server cannot serve get a status that says why, and nothing
/// reaches a member: an HTTP version other than 1.0/1.1 (505), garbage (400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_versions_and_garbage_request_lines_get_a_status() {
    let (t1, _t2, p) = tenants().await;
    let (out, closed) = raw(
        p.addr,
        b"GET /t1/api/x HTTP/2.0\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 505"), "{out}");
    assert!(closed);
    let (out, closed) = raw(
        p.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(closed);
    assert_eq!(t1.count(), 0);
}

/// `RequestReadTimeout body=N,MinRate=R` bounds the whole body, not only the gaps between
/// reads: a body that keeps trickling (never idle for `Timeout`) but stays below `MinRate` is
/// cut with 408 when its deadline passes, frame by frame (small) and socket to socket
/// (large: splice), and no member is marked for the client's slowness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_min_rate_is_cut_at_its_deadline_small_or_large() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nTimeout 30\nRequestReadTimeout body=2,MinRate=100000\nProxyPass /up http://a:1/up\n",
        &[("a:1", a.addr)],
    );
    for (len, first_bytes) in [(1000usize, 10usize), (10_000_000, 200_000)] {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        let mut first =
            format!("PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        first.extend(std::iter::repeat_n(b'x', first_bytes));
        s.write_all(&first).await.unwrap();
        let t0 = std::time::Instant::now();
        let mut out = Vec::new();
        // One byte every 200 ms: never idle for Timeout (30 s), far below MinRate.
        let r = tokio::time::timeout(Duration::from_secs(8), async {
            let mut buf = [0u8; 4096];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        let _ = s.write_all(b"y").await;
                    }
                }
            }
        })
        .await;
        let took = t0.elapsed();
        let text = String::from_utf8_lossy(&out);
        assert!(
            r.is_ok(),
            "{len}: a trickling body was held: {text} {}",
            p.log_text()
        );
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
            "{len}: cut after {took:?}: {text}"
        );
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "{len}: {text}\n{}",
            p.log_text()
        );
    }
    let (ok, _) = raw(
        p.addr,
        b"GET /up/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(
        ok.starts_with("HTTP/1.1 200"),
        "the member was not marked: {ok}"
    );
}

/// `LimitRequestBody` on proxied requests (a documented difference: httpd 2.4 applies it only
/// to bodies it reads itself): a declared `Content-Length` over the limit is answered 413
/// before anything reaches the member; a chunked body is counted as it streams and cut with
/// 413 when it passes the limit; the member is not blamed. `0` is unlimited, and the default
/// is httpd's documented 1 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_request_body_answers_413() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nLimitRequestBody 1000\nProxyPass /up http://a:1/up\n",
        &[("a:1", a.addr)],
    );
    let mut over = b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n".to_vec();
    over.extend(std::iter::repeat_n(b'x', 1001));
    let (r, _) = raw(p.addr, &over, Duration::from_secs(2)).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert_eq!(a.count(), 0, "nothing of it reached the member");
    let mut chunked =
        b"PUT /up/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"190\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 400));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (r, _) = raw(p.addr, &chunked, Duration::from_secs(2)).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let mut fits =
        b"PUT /up/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            .to_vec();
    fits.extend(std::iter::repeat_n(b'z', 1000));
    let (r, _) = raw(p.addr, &fits, Duration::from_secs(2)).await;
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "the member is not blamed: {r}"
    );
    assert!(a.saw("PUT", "/up/ok"));

    // 0: unlimited; the default: 1 GiB.
    let b = Backend::start("B").await;
    let unlimited = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nLimitRequestBody 0\nProxyPass /up http://b:1/up\n",
        &[("b:1", b.addr)],
    );
    let mut big =
        b"PUT /up/big HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n"
            .to_vec();
    big.extend(std::iter::repeat_n(b'q', 200_000));
    let (r, _) = raw(unlimited.addr, &big, Duration::from_secs(2)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let default = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /up http://b:1/up\n",
        &[("b:1", b.addr)],
    );
    let (r, _) = raw(
        default.addr,
        b"PUT /up/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741825\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(!b.saw("PUT", "/up/huge"));
}

/// `AllowEncodedSlashes NoDecode`: a kept `%2F` is never a separator, so an encoded
/// traversal out of one tenant's prefix matches no route of the other tenant (404) and
/// reaches no member; a plain request to each tenant is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_kept_never_cross_tenants() {
    let t1 = Backend::start("t1").await;
    let t2 = Backend::start("t2").await;
    let conf = TWO_TENANTS.replace(
        "KeepAliveTimeout 2\n",
        "KeepAliveTimeout 2\nAllowEncodedSlashes NoDecode\n",
    );
    let p = Proxy::start(&conf, &[("t1:1", t1.addr), ("t2:1", t2.addr)]);
    for path in [
        "/t1/api%2F..%2F..%2Ft2/api/x",
        "/t1/api%2f..%2f..%2ft2/api/x",
        "/t1/api/%2E%2E%2F%2E%2E%2Ft2/api/x",
        "/t1/api/x%2F..%2F..%2F..%2Ft2/api/x",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (r, _) = raw(p.addr, req.as_bytes(), Duration::from_secs(2)).await;
        assert!(!r.is_empty(), "{path}: answered");
        assert_eq!(t2.count(), 0, "{path} reached tenant 2: {r}");
    }
    assert_eq!(get(p.addr, "/t2/api/x", &[]).await.status, 200);
    assert_eq!(get(p.addr, "/t1/api/x", &[]).await.status, 200);
}

/// Field names with `_` (`Transfer_Encoding`, `X_Forwarded_For`) pose as the real fields in
/// CGI-style stacks: they stay behind unless `UnderscoresInHeaders On`. `Proxy` (httpoxy)
/// never crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscored_and_proxy_fields_stay_behind() {
    let (t1, _t2, p) = tenants().await;
    let req = b"GET /t1/api/u HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nProxy: http://evil.example:3128\r\nX-Ok: 1\r\nConnection: close\r\n\r\n";
    let (got, _) = raw(p.addr, req, Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    let seen = t1.last();
    for name in ["transfer_encoding", "x_forwarded_for", "proxy"] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name}: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.headers["x-ok"], "1");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    // Kept when the admin asks for them; `Proxy` still never crosses.
    let p2 = Proxy::start(
        &format!("{TWO_TENANTS}UnderscoresInHeaders On\n"),
        &[("t1:1", t1.addr), ("t2:1", _t2.addr)],
    );
    let (got, _) = raw(p2.addr, req, Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    let seen = t1.last();
    assert_eq!(seen.headers["x_forwarded_for"], "6.6.6.6");
    assert_eq!(seen.headers["transfer_encoding"], "chunked");
    assert!(seen.headers.get("proxy").is_none());
}

/// RFC 9112 §3.2: one valid `Host` per HTTP/1.1 request, or 400 before anything reaches a
/// member; an absolute-form target routes by its path, its authority standing for `Host`,
/// and balancerd never connects to that authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_field_rules() {
    let (t1, t2, p) = tenants().await;
    for head in [
        "GET /t1/api/x HTTP/1.1\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: x\r\nHost: x\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: x\r\nHost: y\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a, b\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a b\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a/b\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: [::1\r\n",
        "GET /t1/api/x HTTP/1.0\r\nHost: x\r\nHost: y\r\n",
        "GET http://x/t1/api/x HTTP/1.1\r\n",
    ] {
        let (got, _) = raw(
            p.addr,
            format!("{head}\r\n").as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 400 "), "{head:?}: {got}");
    }
    assert_eq!(t1.count() + t2.count(), 0);
    // An absolute-form target: its path routes (tenant 2 here, whatever Host says), and the
    // authority (a closed port) is never connected to.
    let closed = free_port();
    let req = format!(
        "GET http://127.0.0.1:{closed}/t2/api/abs HTTP/1.1\r\nHost: t1.example\r\nConnection: close\r\n\r\n"
    );
    let (got, _) = raw(p.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    assert!(got.contains("backend t2"), "{got}");
    assert_eq!(t2.last().target, "/api/abs");
    assert_eq!(
        t2.last().headers["x-forwarded-host"],
        format!("127.0.0.1:{closed}")
    );
}
