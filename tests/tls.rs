//! TLS on both sides with certificates generated at test time: SNI on the front, HTTP/2
//! clients, verified `https://` members (and every way verification fails), client
//! certificates, `disablereuse`, certificate swap on reload under load.

mod support;
use std::path::Path;
use std::time::Duration;
use support::*;

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The vendor's TLS block (stray space fixed) in front of three TLS members.
async fn tls_members(pki: &Pki, verify: &str) -> (Vec<Backend>, Proxy) {
    let (cert, key) = pki.issue("members", &["tlrws1", "tlrws2", "tlrws3"], false);
    let mut members = Vec::new();
    for i in 1..=3 {
        members.push(Backend::start_tls(&format!("rws{i}"), acceptor(&cert, &key, None)).await);
    }
    let block = std::fs::read_to_string(root().join("tests/fixtures/rhel8-tls-rws.conf"))
        .unwrap()
        .replace(
            "ProxySet sticky session=ROUTEID",
            "ProxySet stickysession=ROUTEID",
        );
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\n{verify}\nSSLProxyCACertificateFile {}\n{block}",
        p(&pki.ca)
    );
    let map: Vec<(&str, std::net::SocketAddr)> = vec![
        ("tlrws1:8080", members[0].addr),
        ("tlrws2:8080", members[1].addr),
        ("tlrws3:8080", members[2].addr),
    ];
    let proxy = Proxy::start(&conf, &map);
    (members, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_tls_block_routes_balances_and_sticks_like_the_plain_one() {
    let pki = Pki::new("test CA");
    let (members, p) = tls_members(&pki, "SSLProxyVerify require").await;
    for i in 0..6 {
        let g = get(p.addr, "/t1/api/x", &[]).await;
        assert_eq!(g.status, 200, "{}", p.log_text());
        let n = i % 3 + 1;
        assert_eq!(g.text(), format!("backend rws{n}\n"));
        assert_eq!(
            g.all("set-cookie"),
            vec![format!("ROUTEID=.TLRWS{n}; path=/t1")]
        );
    }
    for _ in 0..3 {
        let g = get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.TLRWS3")]).await;
        assert_eq!(g.text(), "backend rws3\n");
        assert!(g.all("set-cookie").is_empty());
    }
    // Keep-alive to TLS members: connections are pooled.
    let conns: usize = members
        .iter()
        .map(|m| m.conns.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    assert!(conns <= 6, "TLS connections reused: {conns} for 9 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_certificate_failures_are_connect_failures() {
    let pki = Pki::new("good CA");
    let other = Pki::new("other CA");
    let (good_cert, good_key) = pki.issue("good", &["m1"], false);
    let (wrong_name, wrong_name_key) = pki.issue("wrongname", &["somebody-else"], false);
    let (expired, expired_key) = pki.issue("expired", &["m3"], true);
    let (foreign, foreign_key) = other.issue("foreign", &["m4"], false);
    let good = Backend::start_tls("good", acceptor(&good_cert, &good_key, None)).await;
    let cases = [
        (
            "m2",
            Backend::start_tls("wrongname", acceptor(&wrong_name, &wrong_name_key, None)).await,
            "not valid for name",
        ),
        (
            "m3",
            Backend::start_tls("expired", acceptor(&expired, &expired_key, None)).await,
            "expired",
        ),
        (
            "m4",
            Backend::start_tls("foreign", acceptor(&foreign, &foreign_key, None)).await,
            "unknownissuer",
        ),
    ];
    for (host, bad, reason) in &cases {
        let conf = format!(
            "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\n<Proxy balancer://b>\nBalancerMember https://{host}:443 route=BAD\nBalancerMember https://m1:443 route=GOOD status=+H\n</Proxy>\nProxyPass /x balancer://b/x\n<Proxy balancer://only>\nBalancerMember https://{host}:443\n</Proxy>\nProxyPass /only balancer://only/only\n",
            p(&pki.ca)
        );
        let px = Proxy::start(
            &conf,
            &[(&format!("{host}:443"), bad.addr), ("m1:443", good.addr)],
        );
        // The bad member is a connect failure: error state, failover to the standby.
        let g = get(px.addr, "/x", &[]).await;
        assert_eq!(g.status, 200, "{host}: {}", px.log_text());
        assert_eq!(g.text(), "backend good\n");
        assert_eq!(
            bad.count(),
            0,
            "no request reached a member that failed verification"
        );
        // With nothing left: 503.
        let g = get(px.addr, "/only", &[]).await;
        assert_eq!(g.status, 503);
        // The log names the member and the reason, and the member went into error state.
        let log = px.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("disabling member https://{host}"))
                    && l.to_lowercase().contains(reason)),
            "{host}: no log line naming the member and {reason}:\n{log}"
        );
        // While in error it is not tried again (no second failure logged for /x).
        let before = log
            .matches(&format!("disabling member https://{host}"))
            .count();
        assert_eq!(get(px.addr, "/x", &[]).await.text(), "backend good\n");
        assert_eq!(
            px.log_text()
                .matches(&format!("disabling member https://{host}"))
                .count(),
            before
        );
    }
    // Verification off (httpd's default): the foreign certificate is accepted.
    let (host, bad, _) = &cases[2];
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify none\nProxyPass /x https://{host}:443/x\n"
    );
    let px = Proxy::start(&conf, &[(&format!("{host}:443"), bad.addr)]);
    assert_eq!(get(px.addr, "/x", &[]).await.status, 200);
    // Name check off: the wrong-name certificate is accepted, the chain still verified.
    let (host2, bad2, _) = &cases[0];
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCheckPeerName off\nSSLProxyCheckPeerCN off\nSSLProxyCACertificateFile {}\nProxyPass /x https://{host2}:443/x\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&conf, &[(&format!("{host2}:443"), bad2.addr)]);
    assert_eq!(get(px.addr, "/x", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required_by_the_member() {
    let pki = Pki::new("CA");
    let (cert, key) = pki.issue("m", &["m"], false);
    let (cc, ck) = pki.issue("client", &["balancerd-client"], false);
    let combined = pki.dir.path().join("client-combined.pem");
    std::fs::write(
        &combined,
        std::fs::read_to_string(&cc).unwrap() + &std::fs::read_to_string(&ck).unwrap(),
    )
    .unwrap();
    let m = Backend::start_tls("m", acceptor(&cert, &key, Some(&pki.ca))).await;
    let with = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\nSSLProxyMachineCertificateFile {}\nProxyPass /x https://m:443/x\n",
        p(&pki.ca),
        p(&combined)
    );
    let px = Proxy::start(&with, &[("m:443", m.addr)]);
    assert_eq!(
        get(px.addr, "/x", &[]).await.status,
        200,
        "{}",
        px.log_text()
    );
    let without = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\nProxyPass /x https://m:443/x\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&without, &[("m:443", m.addr)]);
    let g = get(px.addr, "/x", &[]).await;
    assert!(g.status == 502 || g.status == 503, "{}", g.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_members_with_disablereuse() {
    let pki = Pki::new("CA");
    let (cert, key) = pki.issue("m", &["m"], false);
    let m = Backend::start_tls("m", acceptor(&cert, &key, None)).await;
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\n<Proxy balancer://b>\nBalancerMember https://m:443 disablereuse=On\n</Proxy>\nProxyPass /x balancer://b/x\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&conf, &[("m:443", m.addr)]);
    let mut c = Client::connect(px.addr).await;
    for _ in 0..4 {
        assert_eq!(c.get("/x", &[]).await.status, 200);
        assert_eq!(m.last().headers["connection"], "close");
    }
    assert_eq!(m.conns.load(std::sync::atomic::Ordering::SeqCst), 4);
}

const FRONT: &str = "Listen 127.0.0.1:{PORT} https
<VirtualHost *:{PORT}>
ServerName a.test
SSLEngine on
SSLCertificateFile {ACERT}
SSLCertificateKeyFile {AKEY}
</VirtualHost>
<VirtualHost *:{PORT}>
ServerName b.test
ServerAlias www.b.test
SSLEngine on
SSLCertificateFile {BCERT}
SSLCertificateKeyFile {BKEY}
</VirtualHost>
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1\" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
";

fn front_conf(pki: &Pki) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let (ac, ak) = pki.issue("a", &["a.test"], false);
    let (bc, bk) = pki.issue("b", &["b.test", "www.b.test"], false);
    let conf = FRONT
        .replace("{ACERT}", &p(&ac))
        .replace("{AKEY}", &p(&ak))
        .replace("{BCERT}", &p(&bc))
        .replace("{BKEY}", &p(&bk));
    (conf, ac, bc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_tls_chooses_the_certificate_by_sni() {
    let pki = Pki::new("CA");
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let (conf, ac, bc) = front_conf(&pki);
    let px = Proxy::start(&conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    let (s, served) = tls_connect(px.addr, &pki.ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served, der_of(&ac));
    let mut c = h1_over(s).await;
    let g = c.get("/t1/api/x", &[("host", "a.test")]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.all("set-cookie").len(), 1);
    let (_, served) = tls_connect(px.addr, &pki.ca, "b.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served, der_of(&bc));
    let (_, served) = tls_connect(px.addr, &pki.ca, "www.b.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served, der_of(&bc));
    // A failed handshake costs one connection, nothing more.
    let other = Pki::new("other");
    assert!(
        tls_connect(px.addr, &other.ca, "a.test", &[b"http/1.1"])
            .await
            .is_err()
    );
    assert_eq!(get_tls(px.addr, &pki.ca).await, 200);
}

async fn get_tls(addr: std::net::SocketAddr, ca: &Path) -> u16 {
    let (s, _) = tls_connect(addr, ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    h1_over(s)
        .await
        .get("/t1/api/x", &[("host", "a.test")])
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_the_same_routing_and_stickiness() {
    let pki = Pki::new("CA");
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let (conf, _, _) = front_conf(&pki);
    let px = Proxy::start(&conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    let (s, _) = tls_connect(px.addr, &pki.ca, "a.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = H2Client::over(s).await;
    let g1 = h2.get("https://a.test/t1/api/x", &[]).await;
    let g2 = h2.get("https://a.test/t1/api/x", &[]).await;
    assert_eq!((g1.status, g2.status), (200, 200));
    assert_eq!(
        g1.all("set-cookie"),
        vec!["ROUTEID=.A; path=/t1".to_string()]
    );
    assert_eq!(
        g2.all("set-cookie"),
        vec!["ROUTEID=.B; path=/t1".to_string()]
    );
    for _ in 0..3 {
        let g = h2
            .get("https://a.test/t1/api/y", &[("cookie", "ROUTEID=.B")])
            .await;
        assert_eq!(g.text(), "backend B\n");
        assert!(g.all("set-cookie").is_empty());
    }
    // The member is spoken to over HTTP/1.1, with the client's authority as X-Forwarded-Host.
    assert_eq!(b.last().target, "/api/y");
    assert_eq!(b.last().headers["x-forwarded-host"], "a.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_swap_on_reload_without_failing_a_handshake() {
    let pki = Pki::new("CA");
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let (conf, ac, _) = front_conf(&pki);
    let px = Proxy::start(&conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fails = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, fails, done, addr, ca) = (
            stop.clone(),
            fails.clone(),
            done.clone(),
            px.addr,
            pki.ca.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match tls_connect(addr, &ca, "a.test", &[b"http/1.1"]).await {
                    Ok((s, _)) => {
                        let g = h1_over(s)
                            .await
                            .get("/t1/api/x", &[("host", "a.test")])
                            .await;
                        if g.status != 200 {
                            fails.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        fails.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let mut last = Vec::new();
    for i in 0..5 {
        // Handshakes are going on (8 more since the last swap) ...
        let from = done.load(std::sync::atomic::Ordering::SeqCst);
        let busy = wait_for(
            async || done.load(std::sync::atomic::Ordering::SeqCst) >= from + 8,
            Duration::from_secs(10),
        )
        .await;
        assert!(busy.is_some(), "handshakes continue between swaps");
        // ... when a.test's certificate is replaced in place and SIGHUP sent.
        let (nc, nk) = pki.issue(&format!("a-new-{i}"), &["a.test"], false);
        std::fs::copy(&nc, &ac).unwrap();
        std::fs::copy(&nk, ac.with_extension("key")).unwrap();
        last = der_of(&nc);
        let reloads = px.log_count(" (SIGHUP): ");
        unsafe_kill_hup(px.pid());
        px.wait_log(" (SIGHUP): ", reloads + 1, Duration::from_secs(10))
            .await;
        // Once reloaded, a new handshake gets the new certificate.
        let (_, served) = tls_connect(px.addr, &pki.ca, "a.test", &[b"http/1.1"])
            .await
            .unwrap();
        assert!(served == last, "swap {i}: the new certificate is served");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(
        fails.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{}",
        px.log_text()
    );
    let (_, served) = tls_connect(px.addr, &pki.ca, "a.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(
        served, last,
        "the new certificate is served after the reload"
    );
}

fn unsafe_kill_hup(pid: u32) {
    let _ = balancerd::app::send_signal(pid, libc::SIGHUP);
}

#[test]
fn tls_config_errors_name_file_and_line() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "Listen 127.0.0.1:8443 https\nSSLEngine on\nSSLCertificateFile /no/such/cert.pem\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 1);
    assert!(
        r.heads()
            .iter()
            .any(|h| h.starts_with("a.conf:3:20: error: cannot read /no/such/cert.pem")),
        "{:#?}",
        r.heads()
    );
    d.write("b.conf", "SSLProtocol +TLSv1.1\n");
    let r = d.check("b.conf");
    assert!(
        r.heads()
            .iter()
            .any(|h| h
                .starts_with("b.conf:1:13: error: SSLProtocol +TLSv1.1: TLSv1.1 is not supported")),
        "{:#?}",
        r.heads()
    );
    d.write("c.conf", "SSLCipherSuite RC4-SHA:HIGH\n");
    let r = d.check("c.conf");
    assert!(
        r.heads()
            .iter()
            .any(|h| h.contains("error: SSLCipherSuite asks for the weak cipher 'RC4-SHA'")),
        "{:#?}",
        r.heads()
    );
}

#[test]
fn gen_certs_writes_a_usable_set() {
    let d = tempfile::tempdir().unwrap();
    let r = balancerd_in(d.path(), &["gen-certs", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in [
        "ca.pem",
        "localhost.pem",
        "localhost.key",
        "client.pem",
        "client.key",
        "client-combined.pem",
    ] {
        assert!(d.path().join("out").join(f).exists(), "{f}");
    }
    let c = ConfDir::new();
    let out = d.path().join("out");
    c.write(
        "t.conf",
        &format!(
            "Listen 127.0.0.1:18443 https\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\n",
            p(&out.join("localhost.pem")),
            p(&out.join("localhost.key"))
        ),
    );
    assert_eq!(c.check("t.conf").code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_tls_handshake_timeout_is_a_connect_failure() {
    let pki = Pki::new("CA");
    let (cert, key) = pki.issue("m", &["good"], false);
    let good = Backend::start_tls("good", acceptor(&cert, &key, None)).await;
    // A member that accepts TCP and never answers the TLS handshake.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\n<Proxy balancer://b>\nBalancerMember https://mute:443 connectiontimeout=500ms\nBalancerMember https://good:443 status=+H\n</Proxy>\nProxyPass /x balancer://b/x\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&conf, &[("mute:443", mute_addr), ("good:443", good.addr)]);
    let t0 = std::time::Instant::now();
    let g = get(px.addr, "/x", &[]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "backend good\n");
    assert!(t0.elapsed() < Duration::from_secs(3));
    let log = px.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("disabling member https://mute") && l.contains("timed out")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_dialect_verifies_member_certificates_by_default() {
    let pki = Pki::new("CA");
    let other = Pki::new("other");
    let (cert, key) = other.issue("m", &["m"], false);
    let m = Backend::start_tls("m", acceptor(&cert, &key, None)).await;
    let port = free_port();
    let conf = ConfDir::new();
    conf.write(
        "b.toml",
        &format!(
            "[[listen]]\naddr = \"127.0.0.1:{port}\"\n[upstream_tls]\nca = \"{}\"\n[[balancer]]\nname = \"b\"\n[[balancer.member]]\nurl = \"https://m:443\"\n[[route]]\npath = \"/x\"\nto = \"balancer://b/x\"\n",
            p(&pki.ca)
        ),
    );
    let px = Proxy::start_in(conf, "b.toml", port, &[("m:443", m.addr)]);
    assert_eq!(
        get(px.addr, "/x", &[]).await.status,
        503,
        "a certificate from another CA is refused"
    );
    assert_eq!(m.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_tls_sessions_resume() {
    let pki = Pki::new("CA");
    let (cert, key) = pki.issue("m", &["m"], false);
    let m = Backend::start_tls("m", acceptor(&cert, &key, None)).await;
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\nProxyPass /x https://m:443/x disablereuse=On\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&conf, &[("m:443", m.addr)]);
    for _ in 0..4 {
        assert_eq!(get(px.addr, "/x", &[]).await.status, 200);
    }
    let kinds = m.handshakes.lock().unwrap().clone();
    assert_eq!(
        kinds.len(),
        4,
        "one TLS connection per request with disablereuse"
    );
    assert_eq!(kinds[0], "Some(Full)");
    assert!(kinds[1..].iter().all(|k| k == "Some(Resumed)"), "{kinds:?}");
}

/// Health checks of `https://` members speak HTTP over TLS through the member client (with
/// the same verification as requests): the check reaches the member's `hcuri`, its status
/// decides, and a member whose checks fail is taken out of use before a user finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_of_tls_members_speak_http_over_tls() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.issue("members", &["m1", "m2"], false);
    let primary = Backend::start_tls("primary", acceptor(&cert, &key, None)).await;
    let standby = Backend::start_tls("standby", acceptor(&cert, &key, None)).await;
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile {}\n<Proxy balancer://b>\nBalancerMember https://m1:443 hcmethod=GET hcuri=/health hcinterval=200ms hcfails=1 hcpasses=1\nBalancerMember https://m2:443 status=H\n</Proxy>\nProxyPass /x balancer://b/x\n",
        p(&pki.ca)
    );
    let px = Proxy::start(&conf, &[("m1:443", primary.addr), ("m2:443", standby.addr)]);
    let checked = wait_for(
        async || primary.saw("GET", "/health"),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        checked.is_some(),
        "the check is an HTTP request over TLS: {}",
        px.log_text()
    );
    assert_eq!(get(px.addr, "/x", &[]).await.text(), "backend primary\n");
    // The member answers its checks with 500: the checks take it out of use.
    primary.set_reply(Reply::Status(500));
    let moved = wait_for(
        async || get(px.addr, "/x", &[]).await.text() == "backend standby\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(moved.is_some(), "{}", px.log_text());
    assert!(
        px.log_text().contains("health check failed"),
        "{}",
        px.log_text()
    );
    // It passes again: back in use.
    primary.set_reply(Reply::Ok);
    let back = wait_for(
        async || get(px.addr, "/x", &[]).await.text() == "backend primary\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(back.is_some(), "{}", px.log_text());
}

/// `SSLVerifyClient require` with `SSLCACertificateFile`: a client without a certificate,
/// or with one from another CA, does not get through the handshake; one with a certificate
/// of the CA is served. `optional` serves a client without a certificate too, and still
/// refuses one whose certificate does not chain to the CA. Without `SSLCACertificateFile`
/// the config is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_client_certificates_as_ssl_verify_client_says() {
    let pki = Pki::new("CA");
    let other = Pki::new("Other");
    let a = Backend::start("A").await;
    let (sc, sk) = pki.issue("a", &["a.test"], false);
    let (cc, ck) = pki.issue("agent", &["agent-7"], false);
    let (oc, ok) = other.issue("intruder", &["x"], false);
    for (mode, no_cert, good, bad) in [
        ("require", false, true, false),
        ("optional", true, true, false),
    ] {
        let conf = format!(
            "Listen 127.0.0.1:{{PORT}} https\n<VirtualHost *:{{PORT}}>\nServerName a.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nSSLVerifyClient {mode}\nSSLCACertificateFile {}\n</VirtualHost>\nProxyPass /t1/api http://a:1/api\n",
            p(&sc),
            p(&sk),
            p(&pki.ca)
        );
        let px = Proxy::start(&conf, &[("a:1", a.addr)]);
        let served = |r: std::io::Result<u16>| r.is_ok_and(|s| s == 200);
        assert_eq!(
            served(tls_get_with_client_cert(px.addr, &pki.ca, "a.test", None, "/t1/api/x").await),
            no_cert,
            "{mode}: without a certificate"
        );
        assert_eq!(
            served(
                tls_get_with_client_cert(px.addr, &pki.ca, "a.test", Some((&cc, &ck)), "/t1/api/x")
                    .await
            ),
            good,
            "{mode}: with the CA's certificate\n{}",
            px.log_text()
        );
        assert_eq!(
            served(
                tls_get_with_client_cert(px.addr, &pki.ca, "a.test", Some((&oc, &ok)), "/t1/api/x")
                    .await
            ),
            bad,
            "{mode}: with another CA's certificate"
        );
    }
    let d = ConfDir::new();
    d.write(
        "a.conf",
        &format!(
            "Listen 127.0.0.1:1 https\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nSSLVerifyClient require\nProxyPass /a http://h/a\n",
            p(&sc),
            p(&sk)
        ),
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("SSLVerifyClient needs SSLCACertificateFile"),
        "{}",
        r.stderr
    );
}

/// `%{SSL_PROTOCOL}x` and `%{SSL_CIPHER}x` log the TLS connection's protocol and cipher by
/// OpenSSL's names (RHEL's `ssl.conf` logs them); a plain connection logs `-`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_names_the_tls_protocol_and_cipher() {
    let pki = Pki::new("CA");
    let a = Backend::start("A").await;
    let (sc, sk) = pki.issue("a", &["a.test"], false);
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("ssl_request_log");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}} https\n<VirtualHost *:{{PORT}}>\nServerName a.test\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\nCustomLog {} \"%{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x %U\"\n</VirtualHost>\nProxyPass /t1/api http://a:1/api\n",
        p(&sc),
        p(&sk),
        p(&log)
    );
    let px = Proxy::start(&conf, &[("a:1", a.addr)]);
    let status = tls_get_with_client_cert(px.addr, &pki.ca, "a.test", None, "/t1/api/x")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let mut text = String::new();
    for _ in 0..40 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{text}\n{}", px.log_text());
    assert!(words[0] == "TLSv1.3" || words[0] == "TLSv1.2", "{text}");
    assert!(
        words[1].starts_with("TLS_") || words[1].starts_with("ECDHE-"),
        "an OpenSSL cipher name: {text}"
    );
    assert_eq!(words[2], "/t1/api/x");
}

/// The `Host` rules hold on hyper's connections too (TLS HTTP/1.1): a request without
/// `Host`, with two, or with a list is a 400 and reaches no member; field names with `_`
/// and `Proxy` stay behind over HTTP/2 as over HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_and_field_hygiene_over_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("CA");
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let (conf, _, _) = front_conf(&pki);
    let px = Proxy::start(&conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    for head in [
        "GET /t1/api/x HTTP/1.1\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a.test, b.test\r\n",
        "GET /t1/api/x HTTP/1.1\r\nHost: a b\r\n",
    ] {
        let (mut s, _) = tls_connect(px.addr, &pki.ca, "a.test", &[b"http/1.1"])
            .await
            .unwrap();
        s.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400 "), "{head:?}: {out}");
    }
    assert_eq!(a.count() + b.count(), 0, "nothing reached a member");
    let (s, _) = tls_connect(px.addr, &pki.ca, "a.test", &[b"h2"])
        .await
        .unwrap();
    let mut h2 = H2Client::over(s).await;
    let g = h2
        .get(
            "https://a.test/t1/api/x",
            &[
                ("x_forwarded_for", "6.6.6.6"),
                ("proxy", "http://evil:1"),
                ("x-ok", "1"),
            ],
        )
        .await;
    assert_eq!(g.status, 200);
    let seen = if a.count() > 0 { a.last() } else { b.last() };
    assert!(
        seen.headers.get("x_forwarded_for").is_none(),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers.get("proxy").is_none(), "{:?}", seen.headers);
    assert_eq!(seen.headers["x-ok"], "1");
}
