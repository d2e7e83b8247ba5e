//! httpd's proxy behaviour on real sockets (httpd-semantics §14): routing and mapping,
//! headers, failover, error statuses, response rewriting, upgrades.

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use support::*;

const AB: &str = "Listen 127.0.0.1:{PORT}
<Proxy balancer://b>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1\" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://b/api
";

async fn ab(extra: &str) -> (Backend, Backend, Proxy) {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(&format!("{AB}{extra}"), &[("a:1", a.addr), ("b:1", b.addr)]);
    (a, b, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_parsing_as_httpd() {
    let (_a, _b, p) = ab("").await;
    let t = |c: &'static str| async move { get(p.addr, "/t1/api/x", &[("cookie", c)]).await };
    assert_eq!(t("ROUTEID=.B").await.text(), "backend B\n");
    assert_eq!(t("a=b; ROUTEID = .B").await.text(), "backend B\n");
    assert!(t("ROUTEID=.B").await.all("set-cookie").is_empty());
    // Case-sensitive route, no match → balanced with a new cookie.
    assert_eq!(t("ROUTEID=.b").await.all("set-cookie").len(), 1);
    assert_eq!(t("XROUTEID=.B").await.all("set-cookie").len(), 1);
    // Query and path parameters, URL before cookie.
    let g = get(p.addr, "/t1/api/x?ROUTEID=.B", &[("cookie", "ROUTEID=.A")]).await;
    assert_eq!(g.text(), "backend B\n");
    let g = get(p.addr, "/t1/api/x;ROUTEID=.B", &[]).await;
    assert_eq!(g.text(), "backend B\n");
    let g = get(p.addr, "/t1/api/fooROUTEID=.B", &[]).await;
    assert_eq!(g.text(), "backend B\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_mapping_and_normalisation() {
    let (a, b, p) = ab("ProxyPass /ex/skip !\nProxyPass /ex balancer://b/ex\n").await;
    let both = || a.count() + b.count();
    assert_eq!(get(p.addr, "/t1/apix", &[]).await.status, 404);
    assert_eq!(get(p.addr, "/t1/API/x", &[]).await.status, 404);
    assert_eq!(get(p.addr, "/t1/api;jsessionid=x", &[]).await.status, 404);
    assert_eq!(both(), 0);
    let g = get(p.addr, "/t1//api/x", &[]).await;
    assert_eq!(g.status, 200);
    let last = |_: ()| {
        if a.count() > 0 && (b.count() == 0 || !a.last().target.is_empty()) {
            a.last().target
        } else {
            b.last().target
        }
    };
    let _ = last;
    let seen = |x: &Backend, y: &Backend| {
        let mut v: Vec<Seen> = x.seen.lock().unwrap().clone();
        v.extend(y.seen.lock().unwrap().clone());
        v
    };
    assert!(seen(&a, &b).iter().any(|s| s.target == "/api/x"));
    a.clear();
    b.clear();
    get(p.addr, "/t1/api/", &[]).await;
    get(p.addr, "/t1/api/%7E/%20/%25/%C3%A9?q=%2F&x=1", &[]).await;
    get(p.addr, "/t1/api/../api/y", &[]).await;
    let targets: Vec<String> = seen(&a, &b).iter().map(|s| s.target.clone()).collect();
    assert!(targets.contains(&"/api/".to_string()), "{targets:?}");
    assert!(
        targets.contains(&"/api/~/%20/%25/%C3%A9?q=%2F&x=1".to_string()),
        "{targets:?}"
    );
    assert!(targets.contains(&"/api/y".to_string()), "{targets:?}");
    // A forwarded path longer than the room kept for it inline (it moves to the heap),
    // re-encoded on both sides of that boundary, with its query.
    let long = format!("/{}/%20/{}", "seg".repeat(40), "r".repeat(200));
    get(p.addr, &format!("/t1/api{long}?q=1"), &[]).await;
    let targets: Vec<String> = seen(&a, &b).iter().map(|s| s.target.clone()).collect();
    assert!(
        targets.contains(&format!("/api{long}?q=1")),
        "{:?}",
        targets.last()
    );
    assert_eq!(get(p.addr, "/t1/api/a%2Fb", &[]).await.status, 404);
    assert_eq!(get(p.addr, "/ex/skip/x", &[]).await.status, 404);
    assert_eq!(get(p.addr, "/ex/skipx", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_to_the_member() {
    let (a, b, p) = ab("").await;
    let g = get(
        p.addr,
        "/t1/api/h",
        &[
            ("cookie", "ROUTEID=.B"),
            ("connection", "keep-alive, X-Foo"),
            ("x-foo", "1"),
            ("te", "trailers"),
            ("keep-alive", "5"),
            ("proxy-connection", "x"),
            ("x-forwarded-for", "1.2.3.4"),
            ("host", "front.example:8443"),
            ("via", "1.1 somewhere"),
        ],
    )
    .await;
    assert_eq!(g.status, 200);
    let h = b.last().headers;
    for n in ["x-foo", "te", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(h.get(n).is_none(), "{n} reached the member");
    }
    assert_eq!(
        h["host"], "b:1",
        "the member's own host:port (not 80: kept)"
    );
    assert_eq!(h["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "front.example:8443");
    assert!(h.get("x-forwarded-server").is_some());
    assert_eq!(h["via"], "1.1 somewhere");
    // A client cannot strip X-Forwarded-For by naming it in Connection (CVE-2022-31813).
    get(
        p.addr,
        "/t1/api/h",
        &[("cookie", "ROUTEID=.A"), ("connection", "X-Forwarded-For")],
    )
    .await;
    assert_eq!(a.last().headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_is_the_member_unless_preserved() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPreserveHost On\nProxyAddHeaders Off\nProxyPass /x http://a:1/x\n",
        &[("a:1", a.addr)],
    );
    get(p.addr, "/x/1", &[("host", "public.example")]).await;
    let h = a.last().headers;
    assert_eq!(h["host"], "public.example");
    assert!(h.get("x-forwarded-for").is_none());
    let p2 = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /x http://a:1/x\n",
        &[("a:1", a.addr)],
    );
    get(p2.addr, "/x/1", &[("host", "public.example")]).await;
    assert_eq!(a.last().headers["host"], "a:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_the_post_body_and_reissues_the_cookie() {
    let (mut a, b, p) = ab("").await;
    a.stop();
    let payload = "x".repeat(100_000);
    let mut c = Client::connect(p.addr).await;
    let g = c
        .send(req(
            "POST",
            "/t1/api/upload",
            &[("cookie", "ROUTEID=.A"), ("content-type", "text/plain")],
            body(payload.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "backend B\n");
    assert_eq!(
        g.all("set-cookie"),
        vec!["ROUTEID=.B; path=/t1".to_string()]
    );
    assert_eq!(b.last().body_len, 100_000);
    assert_eq!(b.last().body_sha, sha_hex(payload.as_bytes()));
    // While A is in error (retry 60 s) everything goes to B without connect attempts.
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/t1/api/x", &[]).await.text(), "backend B\n");
    }
    assert!(p.log_text().contains("disabling member http://a:1 for 60s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nofailover_and_all_down() {
    let a = Backend::start("A").await;
    let mut b = Backend::start("B").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1 route=A\nBalancerMember http://b:1 route=B retry=30\nProxySet stickysession=ROUTEID nofailover=On\n</Proxy>\nProxyPass /t1/api balancer://b/api\n";
    let p = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    b.stop();
    let g = get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.B")]).await;
    assert_eq!(g.status, 503);
    assert_eq!(
        get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.B")])
            .await
            .status,
        503
    );
    assert_eq!(
        get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.UNKNOWN")])
            .await
            .status,
        200
    );
    // All down: 503 with Connection: close and a Retry-After from the retry timer.
    let mut a = a;
    a.stop();
    let conf2 = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1 retry=30\nProxySet forcerecovery=Off\n</Proxy>\nProxyPass /z balancer://b/z\n";
    let p2 = Proxy::start(conf2, &[("a:1", a.addr)]);
    let g = get(p2.addr, "/z", &[]).await;
    assert_eq!(g.status, 503);
    let g = get(p2.addr, "/z", &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(g.header("connection").as_deref(), Some("close"));
    let ra: u64 = g
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&ra), "{ra}");
    assert!(g.text().contains("<h1>Service Unavailable</h1>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_give_504_and_failontimeout_marks_the_member() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.set_reply(Reply::Delay(Duration::from_secs(3)));
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1 timeout=1\nBalancerMember http://b:1\nProxySet failontimeout=On\n</Proxy>\nProxyPass /t balancer://b/t\n";
    let p = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    let t0 = std::time::Instant::now();
    let g = get(p.addr, "/t", &[]).await;
    assert_eq!(g.status, 504);
    assert!(t0.elapsed() < Duration::from_millis(2500));
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/t", &[]).await.text(), "backend B\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failonstatus_passes_the_response_then_avoids_the_member() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.set_reply(Reply::Status(500));
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1\nBalancerMember http://b:1\nProxySet failonstatus=500,503\n</Proxy>\nProxyPass /t balancer://b/t\n";
    let p = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    assert_eq!(get(p.addr, "/t", &[]).await.status, 500);
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/t", &[]).await.status, 200);
    }
    assert_eq!(a.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_closing_without_answer_is_502_and_dns_failure_is_500() {
    let a = Backend::start("A").await;
    a.set_reply(Reply::Drop);
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /t http://a:1/t\nProxyPass /d http://no-such-host.invalid/d\n",
        &[("a:1", a.addr)],
    );
    assert_eq!(get(p.addr, "/t", &[]).await.status, 502);
    let g = get(p.addr, "/d", &[]).await;
    assert_eq!(g.status, 500);
    assert!(
        g.text()
            .contains("DNS lookup failure for: no-such-host.invalid")
    );
}

/// What a [`CountingMember`] does with a request that is not its connection's first.
#[derive(Clone, Copy, PartialEq)]
enum OnReuse {
    /// Answers it (a well-behaved keep-alive member).
    Answer,
    /// Reads it and closes without answering: the idle-timeout close that races with a new
    /// request on a pooled connection.
    Drop,
}

/// A keep-alive member on a raw socket that counts what happens to connections: accepted,
/// requests answered on a connection's first use and on reuse, reused requests dropped, and
/// the bodies received (length and SHA-256). With `close_idle_after`, it closes each
/// connection that stays idle that long after an answer (its keep-alive timeout).
struct CountingMember {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    fresh: Arc<AtomicUsize>,
    reused: Arc<AtomicUsize>,
    dropped_reuses: Arc<AtomicUsize>,
    idle_closes: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<(usize, String)>>>,
}

impl CountingMember {
    async fn start(on_reuse: OnReuse, close_idle_after: Option<Duration>) -> CountingMember {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let m = CountingMember {
            addr: l.local_addr().unwrap(),
            accepted: Arc::default(),
            fresh: Arc::default(),
            reused: Arc::default(),
            dropped_reuses: Arc::default(),
            idle_closes: Arc::default(),
            bodies: Arc::default(),
        };
        let (accepted, fresh, reused, dropped, idle_closes, bodies) = (
            m.accepted.clone(),
            m.fresh.clone(),
            m.reused.clone(),
            m.dropped_reuses.clone(),
            m.idle_closes.clone(),
            m.bodies.clone(),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                accepted.fetch_add(1, SeqCst);
                let (fresh, reused, dropped, idle_closes, bodies) = (
                    fresh.clone(),
                    reused.clone(),
                    dropped.clone(),
                    idle_closes.clone(),
                    bodies.clone(),
                );
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut r = BufReader::new(r);
                    for n in 0usize.. {
                        let mut line = String::new();
                        let read = match (n, close_idle_after) {
                            (1.., Some(idle)) => {
                                match tokio::time::timeout(idle, r.read_line(&mut line)).await {
                                    Ok(x) => x,
                                    Err(_) => {
                                        idle_closes.fetch_add(1, SeqCst);
                                        return;
                                    }
                                }
                            }
                            _ => r.read_line(&mut line).await,
                        };
                        if read.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            let lower = h.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut b = vec![0u8; len];
                        if r.read_exact(&mut b).await.is_err() {
                            return;
                        }
                        if n > 0 && on_reuse == OnReuse::Drop {
                            dropped.fetch_add(1, SeqCst);
                            return;
                        }
                        if len > 0 {
                            bodies.lock().unwrap().push((len, sha_hex(&b)));
                        }
                        if n == 0 {
                            fresh.fetch_add(1, SeqCst);
                        } else {
                            reused.fetch_add(1, SeqCst);
                        }
                        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        m
    }

    fn get(&self, c: &Arc<AtomicUsize>) -> usize {
        c.load(SeqCst)
    }
}

/// Member connections are pooled and reused, and a reused one the member drops unanswered is
/// retried once on a fresh connection without marking the member: 6 requests spaced on one
/// client connection with a member that drops every request on a reused connection give 6
/// answers, each on a connection's first use, and 5 dropped reuses over 6 member connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_connection_closed_by_the_member_is_retried_fresh() {
    let m = CountingMember::start(OnReuse::Drop, None).await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /t http://a:1/t\n",
        &[("a:1", m.addr)],
    );
    let mut c = Client::connect(p.addr).await;
    for i in 0..6 {
        let g = c.get(&format!("/t/{i}"), &[]).await;
        assert_eq!(g.status, 200, "request {i}: {}", p.log_text());
    }
    assert_eq!(
        m.get(&m.fresh),
        6,
        "every request answered on a fresh connection"
    );
    assert_eq!(
        m.get(&m.dropped_reuses),
        5,
        "requests 2..6 first tried a reused connection"
    );
    // Each retry's fresh connection is the one the next request reuses (and loses).
    assert_eq!(m.get(&m.accepted), 6);
    assert!(
        !p.log_text().contains("disabling member"),
        "the member was not marked in error"
    );
}

/// With a well-behaved member, requests (a POST with a body among them) go over one reused
/// connection, the body intact; when the member closes a pooled connection after its idle
/// timeout, the next request (a POST) takes a fresh connection, is not lost and does not
/// count as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused_and_an_idle_closed_one_is_skipped() {
    let m = CountingMember::start(OnReuse::Answer, Some(Duration::from_millis(300))).await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /t http://a:1/t\n",
        &[("a:1", m.addr)],
    );
    let mut c = Client::connect(p.addr).await;
    let payload = vec![b'p'; 200_000];
    assert_eq!(c.get("/t/1", &[]).await.status, 200);
    let g = c
        .send(req("POST", "/t/2", &[], body(payload.clone())))
        .await
        .unwrap();
    assert_eq!(g.status, 200);
    assert_eq!(c.get("/t/3", &[]).await.status, 200);
    assert_eq!(
        (m.get(&m.accepted), m.get(&m.fresh), m.get(&m.reused)),
        (1, 1, 2)
    );
    // The member closes the idle connection; the next POST must not be sent into it.
    let closed = wait_for(async || m.get(&m.idle_closes) == 1, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the member closed its idle connection");
    let g = c
        .send(req("POST", "/t/4", &[], body(payload.clone())))
        .await
        .unwrap();
    assert_eq!(g.status, 200, "{}", p.log_text());
    assert_eq!(
        (m.get(&m.accepted), m.get(&m.fresh), m.get(&m.reused)),
        (2, 2, 2)
    );
    let want = (payload.len(), sha_hex(&payload));
    assert_eq!(*m.bodies.lock().unwrap(), vec![want.clone(), want]);
    assert!(
        !p.log_text().contains("disabling member"),
        "{}",
        p.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rewriting_location_cookie_and_destination() {
    let a = Backend::start("A").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://rv>\nBalancerMember http://a:1\nProxyPassReverseCookiePath /rcs /t1/rcs\nProxyPassReverseCookieDomain backend.local public.example\n</Proxy>\nProxyPass /rv balancer://rv/api\nProxyPassReverse /rv balancer://rv/api\n";
    let p = Proxy::start(conf, &[("a:1", a.addr)]);
    a.add_header("location", "http://a:1/api/after");
    a.add_header("content-location", "http://a:1/api/c");
    a.add_header("set-cookie", "S=1; Path=/rcs/app; Domain=backend.local");
    a.add_header("connection", "X-Secret");
    a.add_header("x-secret", "s");
    a.add_header("server", "jetty");
    let g = get(p.addr, "/rv/x", &[("host", "lb.example")]).await;
    assert_eq!(
        g.header("location").as_deref(),
        Some("http://lb.example/rv/after")
    );
    assert_eq!(
        g.header("content-location").as_deref(),
        Some("http://lb.example/rv/c")
    );
    assert_eq!(
        g.all("set-cookie"),
        vec!["S=1; Path=/t1/rcs; Domain=public.example".to_string()]
    );
    assert!(g.header("x-secret").is_none());
    assert_eq!(g.header("server").as_deref(), Some("jetty"));
    // WebDAV MOVE: Destination mapped from the public URL to the member's.
    let mut c = Client::connect(p.addr).await;
    let g = c
        .send(req(
            "MOVE",
            "/rv/rec/a.wav",
            &[("destination", "http://lb.example/rv/rec/b.wav")],
            body(""),
        ))
        .await
        .unwrap();
    assert_eq!(g.status, 200);
    let s = a.last();
    assert_eq!(s.method, "MOVE");
    assert_eq!(s.headers["destination"], "http://a:1/api/rec/b.wav");
    for m in ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "LOCK", "UNLOCK"] {
        let g = c.send(req(m, "/rv/rec/", &[], body(""))).await.unwrap();
        assert_eq!(g.status, 200, "{m}");
        assert_eq!(a.last().method, m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_and_env_variables() {
    let a = Backend::start("A").await;
    let conf = "Listen 127.0.0.1:{PORT}\nHeader add X-Null \"%{NOPE}e\"\nRequestHeader set X-Route \"%{BALANCER_WORKER_ROUTE}e\"\nHeader always set X-Always a\nHeader set X-Success s\nHeader set X-Worker \"%{BALANCER_WORKER_NAME}e %{BALANCER_NAME}e\"\n<Proxy balancer://b>\nBalancerMember http://a:1 route=R\n</Proxy>\n<Proxy balancer://down>\nBalancerMember http://127.0.0.1:1\n</Proxy>\nProxyPass /ok balancer://b/ok\nProxyPass /down balancer://down/down\n";
    let p = Proxy::start(conf, &[("a:1", a.addr)]);
    let g = get(p.addr, "/ok", &[]).await;
    assert_eq!(g.header("x-null").as_deref(), Some("(null)"));
    assert_eq!(g.header("x-always").as_deref(), Some("a"));
    assert_eq!(g.header("x-success").as_deref(), Some("s"));
    assert_eq!(
        g.header("x-worker").as_deref(),
        Some("http://a:1 balancer://b")
    );
    // RequestHeader runs before a member is chosen.
    assert_eq!(a.last().headers["x-route"], "(null)");
    let g = get(p.addr, "/down", &[]).await;
    assert_eq!(g.status, 503);
    assert_eq!(g.header("x-always").as_deref(), Some("a"));
    assert!(g.header("x-success").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_only_when_allowed() {
    let a = Backend::start("A").await;
    a.set_reply(Reply::Upgrade);
    let conf = "Listen 127.0.0.1:{PORT}\nProxyPass /ws http://a:1/ws upgrade=websocket\nProxyPass /plain http://a:1/plain\n";
    let p = Proxy::start(conf, &[("a:1", a.addr)]);
    let hs = "GET /ws/chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(hs.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping-through-the-tunnel").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 23 {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&got, b"ping-through-the-tunnel");
    assert_eq!(a.last().headers["upgrade"], "websocket");
    // Without upgrade=, Upgrade is stripped: the member sees a plain request.
    a.set_reply(Reply::Ok);
    let g = get(
        p.addr,
        "/plain/x",
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!(g.status, 200);
    assert!(a.last().headers.get("upgrade").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_forwarded_and_honoured() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /up http://a:1/up\n",
        &[("a:1", a.addr)],
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(b"hello").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let r = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(r.contains("200 OK"), "{r}");
    assert_eq!(a.last().body_len, 5);
    assert_eq!(a.last().headers["expect"], "100-continue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxypassmatch_appends_the_uri() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\n<Proxy balancer://ph>\nBalancerMember http://a:1\n</Proxy>\nProxyPassMatch ^/pm2/.*\\.txt$ balancer://ph\nProxyPassMatch ^/pm3/(.*)$ http://a:1/three/$1\n",
        &[("a:1", a.addr)],
    );
    assert_eq!(get(p.addr, "/pm2/a/b.txt?q=1", &[]).await.status, 200);
    assert_eq!(a.last().target, "/pm2/a/b.txt?q=1");
    assert_eq!(get(p.addr, "/pm3/x/y", &[]).await.status, 200);
    assert_eq!(a.last().target, "/three/x/y");
    assert_eq!(get(p.addr, "/pm2/a/b.png", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxattempts_zero_means_no_failover() {
    let mut a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.stop();
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1\nBalancerMember http://b:1\nProxySet maxattempts=0\n</Proxy>\nProxyPass /t balancer://b/t\n";
    let p = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    // The first pick is A (byrequests, config order): its connect failure is final.
    assert_eq!(get(p.addr, "/t", &[]).await.status, 503);
    assert_eq!(b.count(), 0);
    // A is now in error: later requests go to B.
    assert_eq!(get(p.addr, "/t", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancer_timeout_waits_for_a_member_to_come_back() {
    let mut a = Backend::start("A").await;
    a.stop();
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://b>\nBalancerMember http://a:1 retry=1\nProxySet forcerecovery=Off timeout=4\n</Proxy>\nProxyPass /t balancer://b/t\n";
    let p = Proxy::start(conf, &[("a:1", a.addr)]);
    assert_eq!(
        get(p.addr, "/t", &[]).await.status,
        503,
        "the connect failure puts A in error"
    );
    a.restart().await;
    // No usable member now: the request waits (timeout=4) until A's retry (1 s) passes.
    let t0 = std::time::Instant::now();
    let g = get(p.addr, "/t", &[]).await;
    assert_eq!(g.status, 200, "{}", p.log_text());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

/// A client that closes its connection while its request waits at the member (an agent
/// closing the browser during a long-poll) cancels the request: the member connection is
/// closed at once, not held until the member answers, and the in-flight gauge drops back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_its_request_at_the_member() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let member_addr = l.local_addr().unwrap();
    // The member reads the request and never answers; it says when it has the request, and
    // reports when its connection closes.
    let (has_request, got_request) = tokio::sync::oneshot::channel::<()>();
    let member = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = has_request.send(());
        let t = std::time::Instant::now();
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return Some(t.elapsed()),
                Ok(_) => {}
            }
        }
    });
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /metrics !\n<Location /metrics>\nSetHandler metrics\nRequire ip 127.0.0.1\n</Location>\nProxyPass /lp http://m:1/lp\n",
        &[("m:1", member_addr)],
    );
    let mut c = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /lp/poll HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), got_request)
        .await
        .expect("the request reached the member within 5 s")
        .unwrap();
    drop(c);
    let held = tokio::time::timeout(Duration::from_secs(5), member)
        .await
        .expect("the member connection was held after the client left")
        .unwrap()
        .expect("the member got the request");
    assert!(held < Duration::from_secs(2), "held {held:?}");
    let metrics = get(p.addr, "/metrics", &[]).await;
    let text = String::from_utf8_lossy(&metrics.body);
    // The metrics request itself is the one in flight.
    assert!(text.contains("balancerd_in_flight 1\n"), "{text}");
}

/// A keep-alive member on a raw socket that records each connection it accepted and the
/// request lines it read, answering `200 ok` to each.
struct RawMember {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawMember {
    async fn start() -> RawMember {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a, ls) = (accepted.clone(), lines.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ls = ls.clone();
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut r = BufReader::new(r);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        ls.lock().unwrap().push(line.trim_end().to_string());
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if h.to_ascii_lowercase().starts_with("connection: close") {
                                ls.lock().unwrap().push("connection: close".into());
                            }
                        }
                        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        RawMember {
            addr,
            accepted,
            lines,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `SetEnv proxy-initial-not-pooled`: the first request of each client connection opens a
/// fresh member connection (never a pooled one); later requests on the same client
/// connection reuse the pool. Without it, a second client reuses the first one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_initial_not_pooled_opens_a_fresh_member_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for (switch, want) in [("SetEnv proxy-initial-not-pooled\n", 2), ("", 1)] {
        let m = RawMember::start().await;
        let p = Proxy::start(
            &format!("Listen 127.0.0.1:{{PORT}}\n{switch}ProxyPass /a http://m:1/a\n"),
            &[("m:1", m.addr)],
        );
        for _client in 0..2 {
            let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
            for _ in 0..2 {
                s.write_all(b"GET /a/x HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).ends_with("ok") {
                    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                        .await
                        .expect("an answer within 5 s")
                        .unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
            }
        }
        assert_eq!(
            m.accepted(),
            want,
            "{switch:?}: member connections for 2 clients × 2 requests"
        );
    }
}

/// `SetEnv force-proxy-request-1.0` sends the member an HTTP/1.0 request line with
/// `Connection: close` and does not pool the connection; `proxy-nokeepalive` keeps HTTP/1.1
/// but closes too. A chunked request body cannot go as HTTP/1.0: 411 (httpd would spool it
/// to a file to count it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_proxy_request_1_0_and_nokeepalive() {
    for (switch, line) in [
        ("force-proxy-request-1.0", "GET /a/x HTTP/1.0"),
        ("proxy-nokeepalive", "GET /a/x HTTP/1.1"),
    ] {
        let m = RawMember::start().await;
        let p = Proxy::start(
            &format!(
                "Listen 127.0.0.1:{{PORT}}\n<Location /a>\nSetEnv {switch}\n</Location>\nProxyPass /a http://m:1/a\n"
            ),
            &[("m:1", m.addr)],
        );
        for _ in 0..2 {
            let (r, _) = raw(
                p.addr,
                b"GET /a/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Duration::from_secs(2),
            )
            .await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }
        let lines = m.lines.lock().unwrap().clone();
        assert_eq!(
            lines,
            [line, "connection: close", line, "connection: close"],
            "{switch}"
        );
        assert_eq!(m.accepted(), 2, "{switch}: no member connection reused");
        if switch.starts_with("force") {
            let (r, _) = raw(
                p.addr,
                b"POST /a/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                Duration::from_secs(2),
            )
            .await;
            assert!(r.starts_with("HTTP/1.1 411"), "{r}");
        }
    }
}
