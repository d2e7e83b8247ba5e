//! Zero-downtime binary upgrade on real sockets: `balancerd upgrade` (SIGUSR2) under load
//! (clients opening a new connection per request, keep-alive clients, held long-polls):
//! no connection refused, no request failed; the long-polls held by the old process end at
//! its GracefulShutdownTimeout; the PidFile names the new process, which serves on; the old
//! one exits. A new process that cannot start leaves the old one serving.

mod support;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;

fn config(pid: &std::path::Path) -> String {
    format!(
        "Listen 127.0.0.1:{{PORT}}
ServerName lb.example
PidFile {}
GracefulShutdownTimeout 2
<Proxy balancer://api>
BalancerMember http://a:1
</Proxy>
<Proxy balancer://poll>
BalancerMember http://p:1
</Proxy>
ProxyPass /api balancer://api/api
ProxyPass /poll balancer://poll/poll
",
        pid.display()
    )
}

fn read_pid(pid: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(pid).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Kills the process the PidFile names when the test ends (the upgraded one is not the
/// test's child).
struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(p) = read_pid(&self.0) {
            let _ = balancerd::app::send_signal(p, libc::SIGKILL);
        }
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

/// A request on a new connection each time, until `stop`.
async fn fresh_connections(addr: SocketAddr, stop: Arc<AtomicBool>, c: Arc<Counts>) {
    while !stop.load(SeqCst) {
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => {
                c.refused.fetch_add(1, SeqCst);
            }
            Ok(s) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = s;
                let _ = s
                    .write_all(
                        b"GET /api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                let mut out = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
                if out.starts_with(b"HTTP/1.1 200") {
                    c.ok.fetch_add(1, SeqCst);
                } else {
                    c.failed.fetch_add(1, SeqCst);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Keep-alive requests; a request that fails on a reused connection before any answer is
/// sent again once on a new connection (what browsers do for idempotent requests).
async fn keep_alive(addr: SocketAddr, stop: Arc<AtomicBool>, c: Arc<Counts>) {
    let mut client: Option<Client> = None;
    while !stop.load(SeqCst) {
        let reused = client.is_some();
        let cl = match client.as_mut() {
            Some(cl) => cl,
            None => client.insert(Client::connect(addr).await),
        };
        match cl
            .send(req("GET", "/api/k", &[("host", "lb.example")], body("")))
            .await
        {
            Ok(g) if g.status == 200 => {
                c.ok.fetch_add(1, SeqCst);
                if g.header("connection").as_deref() == Some("close") {
                    client = None;
                }
            }
            Ok(_) => {
                c.failed.fetch_add(1, SeqCst);
                client = None;
            }
            Err(_) if reused => {
                c.retried.fetch_add(1, SeqCst);
                client = None;
                let mut fresh = Client::connect(addr).await;
                match fresh
                    .send(req("GET", "/api/k", &[("host", "lb.example")], body("")))
                    .await
                {
                    Ok(g) if g.status == 200 => {
                        c.ok.fetch_add(1, SeqCst);
                        client = Some(fresh);
                    }
                    _ => {
                        c.failed.fetch_add(1, SeqCst);
                    }
                }
            }
            Err(_) => {
                c.failed.fetch_add(1, SeqCst);
                client = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_refuses_nothing_and_fails_nothing() {
    let a = Backend::start("A").await;
    let p_member = Backend::start("P").await;
    p_member.set_reply(Reply::Delay(Duration::from_secs(60)));
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let mut p = Proxy::start(&config(&pid), &[("a:1", a.addr), ("p:1", p_member.addr)]);
    let _guard = KillOnDrop(pid.clone());
    let old = wait_for(async || read_pid(&pid).is_some(), Duration::from_secs(5))
        .await
        .and_then(|_| read_pid(&pid))
        .expect("no PidFile");

    // Held long-polls on the old process (UPGRADE_FULL=1: 2,000, with wrk as more load).
    let full = std::env::var("UPGRADE_FULL").is_ok();
    let polls: usize = if full { 2000 } else { 100 };
    need_open_files(2 * polls as u64 + 1024);
    let mut held = Vec::new();
    for _ in 0..polls {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /poll/wait HTTP/1.1\r\nHost: lb.example\r\n\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    let in_flight = wait_for(
        async || p_member.in_flight.load(SeqCst) == polls,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        in_flight.is_some(),
        "the long-polls did not reach the member"
    );
    let ended: Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    for mut s in held {
        let ended = ended.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            ended.lock().unwrap().push(Instant::now());
        });
    }

    // Load through the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(tokio::spawn(fresh_connections(
            p.addr,
            stop.clone(),
            counts.clone(),
        )));
        tasks.push(tokio::spawn(keep_alive(
            p.addr,
            stop.clone(),
            counts.clone(),
        )));
    }
    let wrk = full.then(|| {
        std::process::Command::new("wrk")
            .args(["-t2", "-c64", "-d6s", "-H", "Host: lb.example"])
            .arg(format!("http://{}/api/w", p.addr))
            .output()
    });
    let wrk = wrk.map(|w| tokio::task::spawn_blocking(move || w));
    // The load is running (some hundreds of requests answered) before the upgrade.
    let running = wait_for(
        async || counts.ok.load(SeqCst) >= 200,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        running.is_some(),
        "the load runs: {}",
        counts.ok.load(SeqCst)
    );
    let before = counts.ok.load(SeqCst);
    let conf = p.conf.path().join("balancerd.conf");
    let t_upgrade = Instant::now();
    let r = tokio::task::spawn_blocking(move || {
        balancerd(&["upgrade", "--config", conf.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{}{}\n{}", r.stdout, r.stderr, p.log_text());
    let new = read_pid(&pid).unwrap();
    assert_ne!(new, old);
    assert!(
        r.stdout.contains(&format!("upgraded: pid {old} -> {new}")),
        "{}",
        r.stdout
    );
    // The old process drains (GracefulShutdownTimeout 2) and exits.
    let exited = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let status = p.child.wait();
        (t0.elapsed(), status, p)
    });
    let (took, status, p) = exited.await.unwrap();
    assert!(status.unwrap().success());
    assert!(took < Duration::from_secs(5), "{took:?}");
    // And goes on against the new process alone: 200 more answers.
    let after_exit = counts.ok.load(SeqCst);
    let served = wait_for(
        async || counts.ok.load(SeqCst) >= after_exit + 200,
        Duration::from_secs(10),
    )
    .await;
    assert!(served.is_some(), "the new process serves the load");
    stop.store(true, SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let (ok, refused, failed, retried) = (
        counts.ok.load(SeqCst),
        counts.refused.load(SeqCst),
        counts.failed.load(SeqCst),
        counts.retried.load(SeqCst),
    );
    eprintln!(
        "upgrade under load: {ok} requests ok ({} after the upgrade began), {refused} refused, {failed} failed, {retried} keep-alive requests sent again on a new connection; old pid {old} exited {took:?} after the hand-over",
        ok - before
    );
    if let Some(w) = wrk {
        let out = w.await.unwrap().expect("wrk");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("wrk through the upgrade:\n{text}");
        assert!(!text.contains("Non-2xx"), "{text}");
        assert!(
            !text.contains("Socket errors: connect") || text.contains("Socket errors: connect 0,"),
            "{text}"
        );
    }
    assert_eq!(refused, 0, "{}", p.log_text());
    assert_eq!(failed, 0, "{}", p.log_text());
    // Keep-alive connections idle when the drain began waited for the request their client
    // was sending (answered with Connection: close) instead of closing under it.
    assert_eq!(retried, 0, "{}", p.log_text());
    assert!(ok - before > 50, "{ok} {before}");
    // The long-polls held by the old process ended at its grace period, not before.
    let ended = ended.lock().unwrap().clone();
    assert_eq!(ended.len(), polls, "{} long-polls ended", ended.len());
    for e in &ended {
        let at = e.saturating_duration_since(t_upgrade);
        assert!(
            at >= Duration::from_millis(1500) && at < Duration::from_secs(5),
            "a long-poll ended {at:?} after the upgrade began"
        );
    }
    // The new process serves, answers on the admin socket, and is not the old one.
    assert!(alive(new));
    assert_eq!(get(p.addr, "/api/z", &[]).await.text().trim(), "backend A");
    let log = p.log_text();
    assert!(
        log.contains("upgrade: took over 1 listening socket(s)"),
        "{log}"
    );
    assert!(log.contains(&format!("upgrade: pid {new} serves")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let a = Backend::start("A").await;
    let p_member = Backend::start("P").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let p = Proxy::start(&config(&pid), &[("a:1", a.addr), ("p:1", p_member.addr)]);
    let _guard = KillOnDrop(pid.clone());
    let old = wait_for(async || read_pid(&pid).is_some(), Duration::from_secs(5))
        .await
        .and_then(|_| read_pid(&pid))
        .expect("no PidFile");
    // The config on disk breaks: `upgrade` refuses to ask.
    let conf = p.conf.path().join("balancerd.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good}NoSuchDirective on\n")).unwrap();
    let r = balancerd(&["upgrade", "--config", conf.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("has errors; a new process would not start"),
        "{}",
        r.stderr
    );
    // SIGUSR2 anyway: the new process fails to load it and exits; the old one goes on.
    balancerd::app::send_signal(old, libc::SIGUSR2).unwrap();
    let logged = wait_for(
        async || {
            p.log_text()
                .contains("upgrade failed, this process goes on serving")
        },
        Duration::from_secs(10),
    )
    .await;
    assert!(logged.is_some(), "{}", p.log_text());
    assert_eq!(read_pid(&pid), Some(old));
    assert_eq!(get(p.addr, "/api/x", &[]).await.text().trim(), "backend A");
    std::fs::write(&conf, good).unwrap();
}

/// systemd's notify protocol (`Type=notify`, `NotifyAccess=all`): the process says READY=1
/// with its pid as MAINPID; after an upgrade the new process says the same with its own
/// pid, so systemd follows it instead of counting the old one's exit as the service
/// stopping; SIGTERM says STOPPING=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_is_told_the_main_pid_across_an_upgrade() {
    let a = Backend::start("A").await;
    let p_member = Backend::start("P").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let notify = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let conf = dir.path().join("balancerd.conf");
    std::fs::write(&conf, config(&pid).replace("{PORT}", &port.to_string())).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_balancerd"))
        .arg("--config")
        .arg(&conf)
        .arg("--map-host")
        .arg(format!("a:1={}", a.addr))
        .arg("--map-host")
        .arg(format!("p:1={}", p_member.addr))
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(pid.clone());
    let recv = |sock: &std::os::unix::net::UnixDatagram| {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("no notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(&sock), format!("READY=1\nMAINPID={}", child.id()));
    let old = child.id();
    let r = balancerd(&["upgrade", "--config", conf.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let new = read_pid(&pid).unwrap();
    assert_ne!(new, old);
    assert_eq!(recv(&sock), format!("READY=1\nMAINPID={new}"));
    assert!(child.wait().unwrap().success());
    // The new process stops: STOPPING=1.
    balancerd::app::send_signal(new, libc::SIGTERM).unwrap();
    assert_eq!(recv(&sock), "STOPPING=1");
}
