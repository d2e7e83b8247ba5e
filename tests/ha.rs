//! What an HA pair needs from each node, on real sockets: readiness and liveness handlers
//! (ready only with a usable member in every balancer, and not while stopping), readiness
//! turning 503 on SIGTERM while the listener still serves for `ShutdownDelay`, `ctl release
//! ADDRESS` resetting the client connections accepted on a departing address (and only
//! those), and one `ctl` command applied to several instances.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

fn config(pid: &std::path::Path, extra: &str) -> String {
    format!(
        "Listen 0.0.0.0:{{PORT}}
ServerName lb.example
PidFile {}
{extra}
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
</Proxy>
ProxyPass /ready !
ProxyPass /live !
ProxyPass /t1/api balancer://t1rws/api
<Location /ready>
SetHandler ready
Require ip 127.0.0.0/8
</Location>
<Location /live>
SetHandler live
</Location>
",
        pid.display()
    )
}

/// Status and body of one GET over a fresh connection to `addr`.
fn fetch(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn ctl(dir: &std::path::Path, conf: &str, args: &[&str]) -> Run {
    let mut a = vec!["ctl", "--config", conf];
    a.extend_from_slice(args);
    balancerd_in(dir, &a)
}

async fn socket_ready(pid: &std::path::Path) {
    let socket = pid.with_extension("pid.ctl");
    let ok = wait_for(async || socket.exists(), Duration::from_secs(10)).await;
    assert!(ok.is_some(), "no admin socket {}", socket.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_needs_a_usable_member_in_every_balancer_and_live_does_not() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let p = Proxy::start(&config(&pid, ""), &[("a:1", a.addr), ("b:1", b.addr)]);
    socket_ready(&pid).await;
    assert_eq!(fetch(p.addr, "/ready"), (200, "ready\n".into()));
    assert_eq!(fetch(p.addr, "/live"), (200, "live\n".into()));
    let conf = p.conf.path().join("balancerd.conf");
    let conf = conf.to_str().unwrap();
    for m in ["A", "B"] {
        let r = ctl(p.conf.path(), conf, &["disable", "t1rws", m]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert_eq!(
        fetch(p.addr, "/ready"),
        (
            503,
            "not ready\nbalancer://t1rws: no usable member\n".into()
        )
    );
    assert_eq!(fetch(p.addr, "/live").0, 200);
    let r = ctl(p.conf.path(), conf, &["enable", "t1rws", "B"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fetch(p.addr, "/ready").0, 200);
    // Behind its <Location>'s access rules like any handler.
    let other: SocketAddr = format!("127.0.0.1:{}", p.addr.port()).parse().unwrap();
    assert_eq!(fetch(other, "/ready").0, 200);
}

/// On SIGTERM, readiness is 503 at once while the listener goes on serving for
/// `ShutdownDelay`; only then does the listener close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_before_connections_close_on_sigterm() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let p = Proxy::start(
        &config(&pid, "ShutdownDelay 2"),
        &[("a:1", a.addr), ("b:1", b.addr)],
    );
    assert_eq!(fetch(p.addr, "/ready").0, 200);
    // A keep-alive client connected before the signal.
    let mut kept = TcpStream::connect(p.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    balancerd::app::send_signal(p.pid(), libc::SIGTERM).unwrap();
    let flipped = wait_for(
        async || fetch(p.addr, "/ready").0 == 503,
        Duration::from_secs(2),
    )
    .await;
    let flipped = flipped.expect("readiness did not turn 503 after SIGTERM");
    assert!(flipped < Duration::from_millis(1500), "{flipped:?}");
    assert_eq!(
        fetch(p.addr, "/ready").1,
        "not ready\nstopping: draining before exit\n"
    );
    // Still serving: new connections, proxied requests, liveness, the kept connection.
    assert_eq!(fetch(p.addr, "/live").0, 200);
    assert_eq!(fetch(p.addr, "/t1/api/x").0, 200);
    write!(kept, "GET /t1/api/y HTTP/1.1\r\nHost: lb.example\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the checks above took the whole delay"
    );
    // After the delay the listener closes and the process exits.
    let closed = wait_for(
        async || TcpStream::connect(p.addr).is_err(),
        Duration::from_secs(10),
    )
    .await
    .expect("the listener did not close after ShutdownDelay");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(1900),
        "closed {at:?} after SIGTERM, before ShutdownDelay 2 ({closed:?})"
    );
    let log = p.log_text();
    assert!(
        log.contains("stopping: readiness is 503; serving 2s more before draining"),
        "{log}"
    );
}

/// `ctl release ADDRESS` resets every client connection accepted on that local address
/// (a held long-poll sees a reset at once) and leaves the others alone; a connection made
/// after the release is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_resets_the_connections_of_a_departing_address_only() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    *a.reply.lock().unwrap() = Reply::Delay(Duration::from_secs(30));
    *b.reply.lock().unwrap() = Reply::Delay(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let p = Proxy::start(&config(&pid, ""), &[("a:1", a.addr), ("b:1", b.addr)]);
    socket_ready(&pid).await;
    let port = p.addr.port();
    let vip: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let stay: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let hold = |to: SocketAddr| {
        let mut s = TcpStream::connect(to).unwrap();
        write!(s, "GET /t1/api/poll HTTP/1.1\r\nHost: lb.example\r\n\r\n").unwrap();
        s
    };
    let mut on_vip: Vec<TcpStream> = (0..3).map(|_| hold(vip)).collect();
    let mut on_other = hold(stay);
    let busy = wait_for(
        async || {
            a.in_flight.load(std::sync::atomic::Ordering::SeqCst)
                + b.in_flight.load(std::sync::atomic::Ordering::SeqCst)
                == 4
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(
        busy.is_some(),
        "the four long-polls did not reach the members"
    );

    let conf = p.conf.path().join("balancerd.conf");
    let t0 = Instant::now();
    let r = ctl(
        p.conf.path(),
        conf.to_str().unwrap(),
        &["release", "127.0.0.2"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("released 127.0.0.2: 3 client connection(s) reset"),
        "{}",
        r.stderr
    );
    for s in &mut on_vip {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        let e = s
            .read(&mut buf)
            .expect_err("a released connection must be reset");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // The other address's long-poll is still held.
    on_other
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let e = on_other.read(&mut buf).expect_err("no answer yet");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    // The address may come back: a new connection to it is served.
    *a.reply.lock().unwrap() = Reply::Ok;
    *b.reply.lock().unwrap() = Reply::Ok;
    assert_eq!(fetch(vip, "/t1/api/x").0, 200);
    assert!(
        p.log_text()
            .contains("released: resetting 3 client connection(s) accepted on 127.0.0.2")
    );
    // Not an address: a usage error.
    let r = ctl(p.conf.path(), conf.to_str().unwrap(), &["release", "vip"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// One `ctl` command to several instances (`--socket` repeated): both nodes of a pair get
/// the same change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ctl_command_changes_every_instance_named() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let pids: Vec<_> = dirs
        .iter()
        .map(|d| d.path().join("balancerd.pid"))
        .collect();
    let nodes: Vec<Proxy> = pids
        .iter()
        .map(|pid| Proxy::start(&config(pid, ""), &[("a:1", a.addr), ("b:1", b.addr)]))
        .collect();
    for pid in &pids {
        socket_ready(pid).await;
    }
    let sockets: Vec<String> = pids
        .iter()
        .map(|p| p.with_extension("pid.ctl").display().to_string())
        .collect();
    let r = balancerd(&[
        "ctl",
        "--socket",
        &sockets[0],
        "--socket",
        &sockets[1],
        "drain",
        "t1rws",
        "A",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for n in &nodes {
        for _ in 0..3 {
            assert_eq!(
                get(n.addr, "/t1/api/x", &[]).await.text().trim(),
                "backend B"
            );
        }
    }
    // A node that cannot be reached makes the exit code non-zero; the others still change.
    let r = balancerd(&[
        "ctl",
        "--socket",
        "/nonexistent.ctl",
        "--socket",
        &sockets[1],
        "enable",
        "t1rws",
        "A",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach /nonexistent.ctl"),
        "{}",
        r.stderr
    );
    let seen: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                get(nodes[1].addr, "/t1/api/x", &[])
                    .await
                    .text()
                    .trim()
                    .to_string(),
            );
        }
        v
    };
    assert!(seen.iter().any(|s| s == "backend A"), "{seen:?}");
}
