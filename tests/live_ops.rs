//! Live operations: reload on file changes and SIGHUP under load, tenant files dropped in
//! and removed, graceful stop during a large download, health checks moving traffic to the
//! standby, and two instances routing sticky sessions identically.

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;

fn hup(p: &Proxy) {
    let _ = balancerd::app::send_signal(p.pid(), libc::SIGHUP);
}

const MAIN: &str = "Listen 127.0.0.1:{PORT}\nServerName lb.example\nProxyPass /server-status !\n<Location /server-status>\nSetHandler server-status\nRequire local\n</Location>\nIncludeOptional conf.d/*.conf\n";

fn tenant(n: u32, genr: u32, members: &[&str]) -> String {
    let mut s = format!("<Proxy balancer://t{n}rws>\n");
    for m in members {
        s.push_str(&format!(
            "BalancerMember http://{m}:1 route={}\n",
            m.to_uppercase()
        ));
    }
    s.push_str(&format!("Header set X-Gen {genr}\nProxySet stickysession=ROUTEID\n</Proxy>\nProxyPass /t{n}/api balancer://t{n}rws/api\n"));
    s
}

fn proxy_on(dir: &std::path::Path, map: &[(&str, std::net::SocketAddr)]) -> Proxy {
    proxy_including(dir, "conf.d/*.conf", map)
}

/// A proxy on `MAIN` with its tenant files included from `include` instead.
fn proxy_including(
    dir: &std::path::Path,
    include: &str,
    map: &[(&str, std::net::SocketAddr)],
) -> Proxy {
    let port = free_port();
    let text = MAIN
        .replace("{PORT}", &port.to_string())
        .replace("conf.d/*.conf", include);
    std::fs::write(dir.join("main.conf"), text).unwrap();
    let conf = ConfDir {
        dir: tempfile::Builder::new().tempdir_in(dir).unwrap(),
    };
    Proxy::start_in(conf, "../main.conf", port, map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_file_dropped_in_comes_online_and_leaves_when_removed() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/loadbalancer_tenant1.conf"),
        tenant(1, 1, &["a"]),
    )
    .unwrap();
    let p = proxy_on(dir.path(), &[("a:1", a.addr)]);
    assert_eq!(get(p.addr, "/t1/api/x", &[]).await.status, 200);
    assert_eq!(get(p.addr, "/t3/api/x", &[]).await.status, 404);
    std::fs::write(
        dir.path().join("conf.d/loadbalancer_tenant3.conf"),
        tenant(3, 1, &["a"]),
    )
    .unwrap();
    let t = wait_for(
        async || get(p.addr, "/t3/api/x", &[]).await.status == 200,
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some(), "tenant 3 online within 2 s: {}", p.log_text());
    eprintln!("tenant 3 online after {t:?}");
    std::fs::remove_file(dir.path().join("conf.d/loadbalancer_tenant3.conf")).unwrap();
    let t = wait_for(
        async || get(p.addr, "/t3/api/x", &[]).await.status == 404,
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some(), "tenant 3 offline within 2 s");
    assert!(p.log_text().contains("tenants +[t3]"), "{}", p.log_text());
    assert_eq!(get(p.addr, "/t1/api/x", &[]).await.status, 200);
}

/// A tenant folder made after start-up, under a folder an `Include` wildcard reaches
/// (`conf.d/*/*.conf`): the new folder is watched from its creation, so the file written
/// into it brings the tenant online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_folder_made_after_start_is_watched() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf.d/t1")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/t1/loadbalancer.conf"),
        tenant(1, 1, &["a"]),
    )
    .unwrap();
    let p = proxy_including(dir.path(), "conf.d/*/*.conf", &[("a:1", a.addr)]);
    assert_eq!(get(p.addr, "/t1/api/x", &[]).await.status, 200);
    let t2 = dir.path().join("conf.d/t2");
    let unchanged = p.log_count("unchanged; nothing to do");
    std::fs::create_dir(&t2).unwrap();
    // The folder's creation is itself a change (a reload that finds nothing new); the file
    // comes once that is done, so only a watch on the new folder can see it.
    p.wait_log(
        "unchanged; nothing to do",
        unchanged + 1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(get(p.addr, "/t2/api/x", &[]).await.status, 404);
    std::fs::write(t2.join("loadbalancer.conf"), tenant(2, 1, &["a"])).unwrap();
    let t = wait_for(
        async || get(p.addr, "/t2/api/x", &[]).await.status == 200,
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some(), "tenant 2 online within 2 s: {}", p.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_drop_nothing() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    let tfile = dir.path().join("conf.d/loadbalancer_tenant1.conf");
    std::fs::write(&tfile, tenant(1, 0, &["a", "b"])).unwrap();
    // A TLS listener whose certificate changes with every reload.
    let pki = Pki::new("CA");
    let (cert, key) = pki.issue("front", &["lb.example"], false);
    let tls_port = free_port();
    std::fs::write(
        dir.path().join("conf.d/00-tls.conf"),
        format!(
            "Listen 127.0.0.1:{tls_port} https\n<VirtualHost *:{tls_port}>\nServerName lb.example\nSSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\n</VirtualHost>\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let p = proxy_on(
        dir.path(),
        &[("a:1", a.addr), ("b:1", b.addr), ("c:1", c.addr)],
    );
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let gens: Arc<Vec<AtomicUsize>> = Arc::new((0..200).map(|_| AtomicUsize::new(0)).collect());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (stop, ok, bad, gens, addr) =
            (stop.clone(), ok.clone(), bad.clone(), gens.clone(), p.addr);
        tasks.push(tokio::spawn(async move {
            let mut cl = Client::connect(addr).await;
            while !stop.load(SeqCst) {
                match cl.send(req("GET", "/t1/api/x", &[], body(""))).await {
                    Ok(g) if g.status == 200 => {
                        ok.fetch_add(1, SeqCst);
                        let genr: usize =
                            g.header("x-gen").and_then(|v| v.parse().ok()).unwrap_or(0);
                        gens[i].store(genr, SeqCst);
                    }
                    Ok(g) => {
                        eprintln!("status {}", g.status);
                        bad.fetch_add(1, SeqCst);
                    }
                    Err(e) => {
                        eprintln!("error {e}");
                        bad.fetch_add(1, SeqCst);
                        cl = Client::connect(addr).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // A few TLS clients doing full handshakes all along, keeping the certificates served.
    let served = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<Vec<u8>>::new(),
    ));
    for _ in 0..4 {
        let (stop, ok, bad, ca) = (stop.clone(), ok.clone(), bad.clone(), pki.ca.clone());
        let served = served.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                match tls_connect(tls_addr, &ca, "lb.example", &[b"http/1.1"]).await {
                    Ok((s, der)) => match {
                        served.lock().unwrap().insert(der);
                        h1_over(s)
                    }
                    .await
                    .send(req(
                        "GET",
                        "/t1/api/tls",
                        &[("host", "lb.example")],
                        body(""),
                    ))
                    .await
                    {
                        Ok(g) if g.status == 200 => {
                            ok.fetch_add(1, SeqCst);
                        }
                        _ => {
                            bad.fetch_add(1, SeqCst);
                        }
                    },
                    Err(e) => {
                        eprintln!("TLS handshake failed: {e}");
                        bad.fetch_add(1, SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // Every plain connection has been answered once before the reloads start.
    let warm = wait_for(async || ok.load(SeqCst) >= 200, Duration::from_secs(10)).await;
    assert!(warm.is_some(), "200 clients answered: {}", ok.load(SeqCst));
    let sets: [&[&str]; 3] = [&["a", "b"], &["b", "c"], &["a", "b", "c"]];
    let mut last_cert = cert.clone();
    let ok_before = ok.load(SeqCst);
    for genr in 1..=50u32 {
        if genr == 25 {
            // A broken file in the middle: the running config stays, the failure is reported.
            std::fs::write(
                &tfile,
                "<Proxy balancer://t1rws>\nBalancerMember http://a:1 lbfactor=2\n</Proxy>\n",
            )
            .unwrap();
            hup(&p);
            let failed = wait_for(
                async || {
                    get(p.addr, "/server-status?auto", &[])
                        .await
                        .text()
                        .contains("LastReload: failed")
                },
                Duration::from_secs(5),
            )
            .await;
            assert!(
                failed.is_some(),
                "the failed reload shows on the status page"
            );
        }
        let mut text = tenant(1, genr, sets[genr as usize % 3]);
        if genr % 2 == 0 {
            text.push_str("ProxyPass /t1/internal-api balancer://t1rws/internal-api\n");
        }
        std::fs::write(&tfile, text).unwrap();
        // A new certificate for the TLS listener, in place.
        let (nc, nk) = pki.issue(&format!("front-{genr}"), &["lb.example"], false);
        std::fs::copy(&nk, &key).unwrap();
        std::fs::copy(&nc, &cert).unwrap();
        let reloads = p.log_count(" (SIGHUP): ");
        hup(&p);
        p.wait_log(" (SIGHUP): ", reloads + 1, Duration::from_secs(10))
            .await;
        // Once the reload is done, a new handshake gets the new certificate.
        let (_, der) = tls_connect(tls_addr, &pki.ca, "lb.example", &[b"http/1.1"])
            .await
            .unwrap();
        assert!(
            der == der_of(&nc),
            "generation {genr}: the new certificate is served"
        );
        last_cert = nc;
    }
    let ok_during = ok.load(SeqCst) - ok_before;
    // Every connection sees the last config on its next request.
    let newest = wait_for(
        async || gens.iter().all(|g| g.load(SeqCst) == 50),
        Duration::from_secs(10),
    )
    .await;
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(newest.is_some(), "every connection saw generation 50");
    // Clients saw the certificates change, and a new handshake gets the last one.
    let seen = served.lock().unwrap().len();
    assert!(
        seen >= 2,
        "the TLS clients saw {seen} distinct certificates"
    );
    let (_, der) = tls_connect(tls_addr, &pki.ca, "lb.example", &[b"http/1.1"])
        .await
        .unwrap();
    assert!(
        der == der_of(&last_cert),
        "the newest certificate is served"
    );
    let log = p.log_text();
    assert_eq!(bad.load(SeqCst), 0, "requests dropped during reloads");
    // The load ran through the reloads (200 clients, one request every 50 ms each): at the
    // very least one answered request per reload on average.
    assert!(
        ok_during >= 50,
        "requests answered during the 50 reloads: {ok_during}"
    );
    assert!(
        log.contains("reload (SIGHUP) of") && log.contains("lbfactor"),
        "the broken file was reported with its line:\n{log}"
    );
    assert!(
        log.matches("reloaded ").count() >= 50,
        "{}",
        log.matches("reloaded ").count()
    );
    for (i, g) in gens.iter().enumerate() {
        assert_eq!(
            g.load(SeqCst),
            50,
            "connection {i} saw the newest config on its next request"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_100_mb_download_finish_and_exits_zero() {
    let dav = Backend::start("dav").await;
    dav.set_reply(Reply::Big(100 * 1024 * 1024));
    let mut p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nGracefulShutdownTimeout 30\nProxyPass /rec http://dav:80/rec\n",
        &[("dav:80", dav.addr)],
    );
    let s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(req("GET", "/rec/call.wav", &[], body("")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut bdy = resp.into_body();
    let mut n = 0u64;
    let mut signalled = false;
    let t0 = Instant::now();
    use http_body_util::BodyExt;
    while let Some(f) = bdy.frame().await {
        if let Some(d) = f.expect("the download is not cut").data_ref() {
            n += d.len() as u64;
        }
        if !signalled && n > 10 * 1024 * 1024 {
            let _ = balancerd::app::send_signal(p.pid(), libc::SIGTERM);
            signalled = true;
            // New connections are no longer accepted.
            let closed = wait_for(
                async || tokio::net::TcpStream::connect(p.addr).await.is_err(),
                Duration::from_secs(3),
            )
            .await;
            assert!(closed.is_some(), "listener closed after SIGTERM");
        }
        if signalled {
            // A slow reader: the transfer spans well past the signal.
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    }
    assert_eq!(n, 100 * 1024 * 1024, "the whole download arrived");
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    eprintln!("download finished {:?} after start", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_move_traffic_to_the_standby_before_users_notice() {
    let mut primary = Backend::start("primary").await;
    let standby = Backend::start("standby").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://dav>\nBalancerMember http://p:1 hcmethod=GET hcuri=/health hcinterval=200ms hcfails=1 hcpasses=1\nBalancerMember http://s:1 status=H\n</Proxy>\nProxyPass /rec balancer://dav/rec\n";
    let p = Proxy::start(conf, &[("p:1", primary.addr), ("s:1", standby.addr)]);
    let checked = wait_for(
        async || primary.saw("GET", "/health"),
        Duration::from_secs(3),
    )
    .await;
    assert!(checked.is_some(), "checks ran");
    assert_eq!(get(p.addr, "/rec/a", &[]).await.text(), "backend primary\n");
    primary.stop();
    // Once the next check has failed, no user request is sent to the dead member.
    p.wait_log("health check failed", 1, Duration::from_secs(3))
        .await;
    for _ in 0..5 {
        assert_eq!(get(p.addr, "/rec/a", &[]).await.text(), "backend standby\n");
    }
    let log = p.log_text();
    assert!(log.contains("health check failed"), "{log}");
    assert!(
        !log.contains("disabling member http://p:1"),
        "no user request found the member dead:\n{log}"
    );
    // It comes back once it passes again.
    primary.restart().await;
    let back = wait_for(
        async || get(p.addr, "/rec/a", &[]).await.text() == "backend primary\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(back.is_some(), "{}", p.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_route_sticky_sessions_identically() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://t1rws>\nBalancerMember http://a:1 route=A\nBalancerMember http://b:1 route=B\nHeader add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1\" env=BALANCER_ROUTE_CHANGED\nProxySet stickysession=ROUTEID\n</Proxy>\nProxyPass /t1/api balancer://t1rws/api\n";
    let p1 = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    let p2 = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    for _ in 0..4 {
        // First contact on instance 1, the session continues on instance 2 (the virtual IP
        // moved), and back.
        let g = get(p1.addr, "/t1/api/login", &[]).await;
        let cookie = g.all("set-cookie")[0]
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let first = g.text();
        for p in [&p2, &p1, &p2] {
            let g = get(p.addr, "/t1/api/next", &[("cookie", &cookie)]).await;
            assert_eq!(g.text(), first, "same member on every instance");
            assert!(g.all("set-cookie").is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancerd_reload_finds_the_instance_by_pid_file() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let pidf = dir.path().join("balancerd.pid");
    let port = free_port();
    let conf = dir.path().join("b.conf");
    let write = |genr: u32| {
        std::fs::write(&conf, format!("Listen 127.0.0.1:{port}\nPidFile {}\nHeader set X-Gen {genr}\nProxyPass /x http://a:1/x\n", pidf.display())).unwrap();
    };
    write(1);
    let cd = ConfDir { dir };
    let p = Proxy::start_in(cd, "b.conf", port, &[("a:1", a.addr)]);
    assert_eq!(
        get(p.addr, "/x", &[]).await.header("x-gen").as_deref(),
        Some("1")
    );
    let pid: u32 = std::fs::read_to_string(p.conf.path().join("balancerd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, p.pid());
    // The file stays as it is: a reload can only come from the signal `balancerd reload`
    // sends to the pid it read from the PidFile (the file watcher has nothing to see), and
    // the log line names its cause.
    assert!(!p.log_text().contains("(SIGHUP)"), "{}", p.log_text());
    let r = balancerd(&[
        "reload",
        "--config",
        &p.conf.path().join("b.conf").display().to_string(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ok = wait_for(
        async || p.log_text().contains("(SIGHUP)"),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        ok.is_some(),
        "no reload by SIGHUP within 5 s: {}",
        p.log_text()
    );
    assert!(
        !p.log_text().contains("(config files changed)"),
        "{}",
        p.log_text()
    );
    assert_eq!(
        get(p.addr, "/x", &[]).await.header("x-gen").as_deref(),
        Some("1")
    );
}

/// The ways files really change: rename over, and the Kubernetes ConfigMap pattern (the
/// files are symlinks through `..data`, which is swapped to a new folder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_and_configmap_symlink_swap_reload() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let cd = dir.path().join("conf.d");
    std::fs::create_dir_all(cd.join("..v1")).unwrap();
    std::fs::write(
        cd.join("..v1/loadbalancer_tenant1.conf"),
        tenant(1, 1, &["a"]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v1", cd.join("..data")).unwrap();
    std::os::unix::fs::symlink(
        "..data/loadbalancer_tenant1.conf",
        cd.join("loadbalancer_tenant1.conf"),
    )
    .unwrap();
    let p = proxy_on(dir.path(), &[("a:1", a.addr), ("b:1", b.addr)]);
    assert_eq!(
        get(p.addr, "/t1/api/x", &[])
            .await
            .header("x-gen")
            .as_deref(),
        Some("1")
    );
    // ConfigMap update: new folder, new ..data symlink renamed over the old one.
    std::fs::create_dir_all(cd.join("..v2")).unwrap();
    std::fs::write(
        cd.join("..v2/loadbalancer_tenant1.conf"),
        tenant(1, 2, &["b"]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", cd.join("..data_tmp")).unwrap();
    std::fs::rename(cd.join("..data_tmp"), cd.join("..data")).unwrap();
    let t = wait_for(
        async || {
            get(p.addr, "/t1/api/x", &[])
                .await
                .header("x-gen")
                .as_deref()
                == Some("2")
        },
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some(), "ConfigMap swap reloaded: {}", p.log_text());
    // A plain tenant file replaced by rename (how editors and config management write).
    std::fs::write(cd.join("loadbalancer_tenant2.conf"), tenant(2, 7, &["a"])).unwrap();
    let t = wait_for(
        async || get(p.addr, "/t2/api/x", &[]).await.status == 200,
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some());
    std::fs::write(cd.join(".tenant2.swp"), tenant(2, 8, &["b"])).unwrap();
    std::fs::rename(
        cd.join(".tenant2.swp"),
        cd.join("loadbalancer_tenant2.conf"),
    )
    .unwrap();
    let t = wait_for(
        async || {
            get(p.addr, "/t2/api/x", &[])
                .await
                .header("x-gen")
                .as_deref()
                == Some("8")
        },
        Duration::from_secs(2),
    )
    .await;
    assert!(t.is_some(), "rename-over reloaded");
}

/// A reload that changes the listeners binds the new one before the old one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_listeners() {
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let f = dir.path().join("l.conf");
    std::fs::write(
        &f,
        format!("Listen 127.0.0.1:{p1}\nProxyPass /x http://a:1/x\n"),
    )
    .unwrap();
    let p = Proxy::start_in(ConfDir { dir }, "l.conf", p1, &[("a:1", a.addr)]);
    std::fs::write(
        p.conf.path().join("l.conf"),
        format!("Listen 127.0.0.1:{p2}\nProxyPass /x http://a:1/x\n"),
    )
    .unwrap();
    let new: std::net::SocketAddr = format!("127.0.0.1:{p2}").parse().unwrap();
    // Connect attempts to both addresses all through the swap: at every moment one of them
    // accepts (the new listener is bound before the old one closes).
    let old = p.addr;
    let (first_tx, first_sample) = tokio::sync::oneshot::channel::<()>();
    let probe = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut first_tx = Some(first_tx);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let o = tokio::net::TcpStream::connect(old).await.is_ok();
            let n = tokio::net::TcpStream::connect(new).await.is_ok();
            samples.push((o, n));
            if let Some(tx) = first_tx.take() {
                let _ = tx.send(());
            }
            if n && !o {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples
    });
    // The probe has its first sample before the signal.
    first_sample.await.unwrap();
    hup(&p);
    let samples = probe.await.unwrap();
    assert_eq!(
        samples.first(),
        Some(&(true, false)),
        "before: only the old one"
    );
    assert_eq!(
        samples.last(),
        Some(&(false, true)),
        "after: only the new one"
    );
    assert!(
        samples.iter().all(|&(o, n)| o || n),
        "a moment when neither address accepted: {samples:?}"
    );
    // The swap is quicker than the probes; the log shows its order.
    let log = p.log_text();
    let added = log.find(&format!("listening on {new} (added by reload)"));
    let removed = log.find(&format!("stopped listening on {old} (removed by reload)"));
    assert!(
        added.is_some() && removed.is_some() && added < removed,
        "the new listener came before the old one went: {log}"
    );
    assert_eq!(get(new, "/x", &[]).await.status, 200);
}

/// A `ProxyHCTemplate` and a `ProxyHCExpr`, resolved when the config is read, decide the
/// checks: the member answers its health URI with 404, which the expression accepts (the
/// default, 2xx/3xx, would take it out of use), and stops being used when it answers 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_templates_and_expressions_decide_the_checks() {
    let primary = Backend::start("primary").await;
    let standby = Backend::start("standby").await;
    primary.set_reply(Reply::Status(404));
    let conf = "Listen 127.0.0.1:{PORT}\nProxyHCExpr not5xx {%{REQUEST_STATUS} =~ /^[234]/}\nProxyHCTemplate fast hcmethod=GET hcuri=/health hcinterval=200ms hcfails=1 hcpasses=1 hcexpr=not5xx\n<Proxy balancer://dav>\nBalancerMember http://p:1 hctemplate=fast\nBalancerMember http://s:1 status=H\n</Proxy>\nProxyPass /rec balancer://dav/rec\n";
    let p = Proxy::start(conf, &[("p:1", primary.addr), ("s:1", standby.addr)]);
    let checked = wait_for(
        async || primary.saw("GET", "/health"),
        Duration::from_secs(3),
    )
    .await;
    assert!(
        checked.is_some(),
        "the template's hcmethod and hcuri were used"
    );
    // 404 passes the expression: the primary is still the one used.
    assert_eq!(get(p.addr, "/rec/a", &[]).await.status, 404);
    assert!(
        !p.log_text().contains("health check failed"),
        "{}",
        p.log_text()
    );
    primary.set_reply(Reply::Status(500));
    let moved = wait_for(
        async || get(p.addr, "/rec/a", &[]).await.text() == "backend standby\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(moved.is_some(), "{}", p.log_text());
    assert!(
        p.log_text().contains("health check failed"),
        "{}",
        p.log_text()
    );
}

/// Only a config file, or a file an `Include` matches, starts a reload. The process's own log
/// sits in the config folder here (as the vendor's layout puts `logs/` beside `conf/`): it is
/// written on every reload, and used to start the next one, 4 reloads a second forever. A
/// file saved unchanged reloads nothing; a real edit still reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_config_files_start_a_reload_and_unchanged_files_reload_nothing() {
    let a = Backend::start("a").await;
    let conf =
        "Listen 127.0.0.1:{PORT}\nIncludeOptional conf.d/*.conf\nProxyPass /a http://a:1/a\n";
    let p = Proxy::start(conf, &[("a:1", a.addr)]);
    let reloads = |p: &Proxy| p.log_text().matches("reloaded").count();
    // The log itself is being written: no reload follows.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reloads(&p), 0, "{}", p.log_text());
    // Files in the config folder that no Include matches.
    p.conf.write("notes.txt", "not config\n");
    p.conf.write("conf.d/readme.md", "not matched by *.conf\n");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(&p), 0, "{}", p.log_text());
    // The main file saved with the same bytes.
    let main = std::fs::read_to_string(p.conf.path().join("balancerd.conf")).unwrap();
    p.conf.write("balancerd.conf", &main);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(&p), 0, "{}", p.log_text());
    // A new tenant file the Include matches: one reload, and no more after it.
    p.conf
        .write("conf.d/t1.conf", "ProxyPass /t1 http://a:1/t1\n");
    let first = wait_for(async || reloads(&p) >= 1, Duration::from_secs(3)).await;
    assert!(first.is_some(), "{}", p.log_text());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reloads(&p), 1, "{}", p.log_text());
    assert_eq!(get(p.addr, "/t1/x", &[]).await.status, 200);
}
