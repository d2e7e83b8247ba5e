//! Load and size: 100 MB recordings streamed both ways in bounded memory, 2,000
//! keep-alive clients while a member is killed and restarted, and the memory an idle or
//! long-polling connection costs. Bounded in time and count.

mod support;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;

const MB100: u64 = 100 * 1024 * 1024;

/// A streaming request body of the deterministic pattern.
fn pattern_body(n: u64) -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    struct S {
        off: u64,
        n: u64,
    }
    impl http_body::Body for S {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            if self.off >= self.n {
                return std::task::Poll::Ready(None);
            }
            let len = (256 * 1024).min(self.n - self.off) as usize;
            let c = pattern_chunk(self.off, len);
            self.off += len as u64;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(c))))
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.n - self.off)
        }
    }
    S { off: 0, n }.boxed()
}

fn pattern_sha(n: u64) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut off = 0;
    while off < n {
        let len = (1 << 20).min(n - off) as usize;
        h.update(pattern_chunk(off, len));
        off += len as u64;
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_of_100_mb_stream_both_ways_in_bounded_memory() {
    let dav = Backend::start("dav").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nProxyPass /metrics !\n<Location /metrics>\nSetHandler metrics\nRequire ip 127.0.0.1\n</Location>\n<Proxy balancer://t1webdav>\nBalancerMember http://dav:80\n</Proxy>\nProxyPass /t1/recordings balancer://t1webdav/recordings\n",
        &[("dav:80", dav.addr)],
    );
    // Warm up so the baseline includes the runtime and a pooled connection.
    get(p.addr, "/t1/recordings/warm", &[]).await;
    let base = p.rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), p.pid());
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                peak.fetch_max(rss_kib_of(pid), SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let want = pattern_sha(MB100);
    // PUT 100 MB.
    let mut c = Client::connect(p.addr).await;
    let g = c
        .send(req(
            "PUT",
            "/t1/recordings/call-1.wav",
            &[],
            pattern_body(MB100),
        ))
        .await
        .unwrap();
    assert_eq!(g.status, 200, "{}", p.log_text());
    assert_eq!(dav.last().body_len, MB100);
    assert_eq!(
        dav.last().body_sha,
        want,
        "the member received exactly what was sent"
    );
    // GET 100 MB, hashed while streaming.
    dav.set_reply(Reply::Big(MB100));
    let s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(req("GET", "/t1/recordings/call-1.wav", &[], body("")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], MB100.to_string().as_str());
    let mut b = resp.into_body();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let mut n = 0u64;
    while let Some(f) = b.frame().await {
        let f = f.unwrap();
        if let Some(d) = f.data_ref() {
            n += d.len() as u64;
            sha2::Digest::update(&mut h, d);
        }
    }
    let got: String = sha2::Digest::finalize(h)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(n, MB100);
    assert_eq!(
        got, want,
        "the client received exactly what the member sent"
    );
    stop.store(true, SeqCst);
    sampler.await.unwrap();
    let grew = peak.load(SeqCst).saturating_sub(base);
    eprintln!(
        "balancerd RSS: base {base} KiB, peak {} KiB, growth {grew} KiB over 200 MB moved",
        peak.load(SeqCst)
    );
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB");
    // Both bodies moved socket to socket (splice), not through balancerd's memory.
    let metrics = String::from_utf8_lossy(&get(p.addr, "/metrics", &[]).await.body).into_owned();
    let spliced = |dir: &str| -> u64 {
        let key = format!("balancerd_spliced_bytes_total{{direction=\"{dir}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(spliced("request") > MB100 - 1024 * 1024, "{metrics}");
    assert!(spliced("response") > MB100 - 1024 * 1024, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_keepalive_clients_while_a_member_is_killed_and_restarted() {
    let mut members = vec![
        Backend::start("m1").await,
        Backend::start("m2").await,
        Backend::start("m3").await,
    ];
    for m in &members {
        m.set_reply(Reply::Delay(Duration::from_millis(2)));
    }
    let conf = "Listen 127.0.0.1:{PORT}\nKeepAliveTimeout 30\nMaxKeepAliveRequests 0\n<Proxy balancer://t1rws>\nBalancerMember http://m1:1 route=M1 retry=2\nBalancerMember http://m2:1 route=M2 retry=2\nBalancerMember http://m3:1 route=M3 retry=2\n</Proxy>\nProxyPass /t1/api balancer://t1rws/api\n";
    let p = Proxy::start(
        conf,
        &[
            ("m1:1", members[0].addr),
            ("m2:1", members[1].addr),
            ("m3:1", members[2].addr),
        ],
    );
    const CLIENTS: usize = 2000;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Requests answered per client, to check every client in every phase.
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
    // Start times (µs since `start`) of failed requests.
    let failures: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (ok, failed, addr, failures) = (ok.clone(), failed.clone(), p.addr, failures.clone());
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            // Spread connection set-up over the first second.
            tokio::time::sleep(Duration::from_micros((i as u64 * 500) % 1_000_000)).await;
            let mut c = Client::connect(addr).await;
            while !stop.load(SeqCst) {
                let t = start.elapsed().as_micros() as u64;
                match c.send(req("GET", "/t1/api/poll", &[], body(""))).await {
                    Ok(g) if g.status == 200 => {
                        ok.fetch_add(1, SeqCst);
                        done[i].fetch_add(1, SeqCst);
                    }
                    _ => {
                        failures.lock().unwrap().push(t);
                        failed.fetch_add(1, SeqCst);
                        c = Client::connect(addr).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let snapshot = |done: &Vec<AtomicU64>| done.iter().map(|d| d.load(SeqCst)).collect::<Vec<_>>();
    // Phase 1: every client connected and answered, then 2 s more.
    let all_up = wait_for(
        async || done.iter().all(|d| d.load(SeqCst) > 0),
        Duration::from_secs(30),
    )
    .await;
    assert!(all_up.is_some(), "every client answered within 30 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed_before = failed.load(SeqCst);
    let at_kill = snapshot(&done);
    // Phase 2: one member killed for 5 s.
    let in_flight_at_kill = members[1].kill().await;
    let kill_at = start.elapsed().as_micros() as u64;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let at_restart = snapshot(&done);
    // Phase 3: back, for 5 s (its retry timer is 2 s).
    let m2_at_restart = members[1].count();
    members[1].restart().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let at_end = snapshot(&done);
    let (ok, failed) = (ok.load(SeqCst), failed.load(SeqCst));
    eprintln!(
        "2000 clients: {ok} ok, {failed} failed ({failed_before} before the kill); the killed member was serving {in_flight_at_kill} at that moment"
    );
    for i in 0..CLIENTS {
        assert!(
            at_restart[i] > at_kill[i] && at_end[i] > at_restart[i],
            "client {i} was answered in every phase: {} / {} / {}",
            at_kill[i],
            at_restart[i],
            at_end[i]
        );
    }
    assert!(
        members[1].count() > m2_at_restart,
        "the restarted member took traffic again"
    );
    assert_eq!(failed_before, 0, "no failure before the kill");
    // A request that started after the kill completed (every connection of the member gone)
    // was not in flight on the killed member: it must succeed (failover, or a fresh
    // connection after a dead pooled one).
    let late: Vec<u64> = failures
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t > kill_at + 20_000)
        .collect();
    assert!(
        late.is_empty(),
        "{} requests started after the kill failed (first at +{} ms)",
        late.len(),
        late.first().map_or(0, |t| (t - kill_at) / 1000)
    );
    // And every failure the proxy reports is on the killed member.
    let log = p.log_text();
    for l in log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
    {
        if l.contains("error reading from the member") || l.contains("broke while sending") {
            assert!(l.contains("http://m2:1"), "failure on another member: {l}");
        }
    }
}

/// What an agent's connection costs the proxy: 1,000 idle keep-alive clients, then 1,000
/// long-polls held by the member (client and member side together). Measured 1.6 KiB and
/// 7.5 KiB of RSS each with the plain HTTP/1.1 server (issue 6; 15 and 30 KiB on hyper's
/// server, 41 and 56 KiB before that). The bounds leave room for allocator noise, not for
/// another 4 KiB per connection; the long-poll bound is the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_held_long_polls_cost_bounded_memory() {
    const N: usize = 1000;
    let m = Backend::start("m").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\nKeepAliveTimeout 60\n<Proxy balancer://t1rws>\nBalancerMember http://m:1\n</Proxy>\nProxyPass /t1/api balancer://t1rws/api\n",
        &[("m:1", m.addr)],
    );
    get(p.addr, "/t1/api/warm", &[]).await;
    let base = p.rss_kib();
    let mut idle = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = Client::connect(p.addr).await;
        assert_eq!(c.get("/t1/api/x", &[]).await.status, 200);
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_idle = (p.rss_kib().saturating_sub(base)) * 1024 / N as u64;
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;

    m.set_reply(Reply::Delay(Duration::from_secs(4)));
    let base = p.rss_kib();
    let started = Instant::now();
    let polls: Vec<_> = (0..N)
        .map(|_| {
            let addr = p.addr;
            tokio::spawn(async move { get(addr, "/t1/api/cometd/connect", &[]).await.status })
        })
        .collect();
    // All held by the member (it answers after 4 s).
    let deadline = Instant::now() + Duration::from_secs(3);
    while m.in_flight.load(SeqCst) < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        m.in_flight.load(SeqCst),
        N,
        "every long-poll reached the member"
    );
    let per_poll = (p.rss_kib().saturating_sub(base)) * 1024 / N as u64;
    for t in polls {
        assert_eq!(t.await.expect("poll task"), 200);
    }
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "polls were held"
    );
    eprintln!("RSS per idle keep-alive connection: {per_idle} B; per held long-poll: {per_poll} B");
    assert!(per_idle < 6 * 1024, "idle connection costs {per_idle} B");
    assert!(per_poll < 16 * 1024, "held long-poll costs {per_poll} B");
}

/// Listening sockets on `port` (IPv4, state LISTEN), from /proc/net/tcp.
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
        .count()
}

/// `--listeners-per-addr N` shares each address between N listening sockets (SO_REUSEPORT)
/// and every one of them serves; `--socket-buffer` is taken alongside. Without the option
/// an address has one socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_listening_sockets_share_an_address_when_asked() {
    let a = Backend::start("A").await;
    let conf = "Listen 127.0.0.1:{PORT}\nProxyPass /x http://a:1/x\n";
    let p = Proxy::start_with_args(
        conf,
        &[("a:1", a.addr)],
        &["--listeners-per-addr", "3", "--socket-buffer", "262144"],
    );
    assert_eq!(listening_sockets(p.addr.port()), 3);
    // The kernel spreads new connections over the sockets: all of them must answer.
    for _ in 0..60 {
        assert_eq!(get(p.addr, "/x/y", &[]).await.status, 200);
    }
    let one = Proxy::start(conf, &[("a:1", a.addr)]);
    assert_eq!(listening_sockets(one.addr.port()), 1);
    assert_eq!(get(one.addr, "/x/y", &[]).await.status, 200);
}

/// The congestion-control algorithms `ss` reports for the established TCP sockets that match
/// `filter` (an `ss` filter expression), one entry per socket.
fn congestion_of(filter: &str) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", filter])
        .output()
        .expect("ss (iproute2) runs; .ci/run installs it");
    assert!(out.status.success(), "ss failed: {out:?}");
    // Each socket is a line of addresses, then an indented line of details opening with
    // the algorithm's name.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Opens a keep-alive connection, makes one request on it and returns it still open.
async fn held_connection(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer in 5 s")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// `--congestion ALGO` puts both of the proxy's legs on that algorithm: the client-side
/// sockets (set on the listening socket, so connections are born with it) and the member-side
/// ones (set before connecting). Without the option both legs keep the system's default. A
/// name the kernel refuses stops start-up with exit code 2 and the allowed list, before any
/// socket is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn congestion_control_is_chosen_for_both_legs_when_asked() {
    let a = Backend::start("A").await;
    let conf = "Listen 127.0.0.1:{PORT}\nProxyPass /x http://a:1/x\n";
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .unwrap()
        .trim()
        .to_string();
    // reno is always built in and allowed; pick another algorithm if it is the default.
    let wanted = if system == "reno" { "cubic" } else { "reno" };
    for (args, expect) in [
        (vec!["--congestion", wanted], wanted),
        (vec![], system.as_str()),
    ] {
        let p = Proxy::start_with_args(conf, &[("a:1", a.addr)], &args);
        let _held = held_connection(p.addr, "/x/y").await;
        let client_side = congestion_of(&format!("sport = :{}", p.addr.port()));
        let member_side = congestion_of(&format!("dport = :{}", a.addr.port()));
        assert_eq!(client_side, vec![expect.to_string()], "args {args:?}");
        assert!(
            !member_side.is_empty() && member_side.iter().all(|c| c == expect),
            "args {args:?}: member side {member_side:?}"
        );
    }
    let dir = ConfDir::new();
    let path = dir.write("b.conf", &conf.replace("{PORT}", &free_port().to_string()));
    let run = balancerd(&[
        "--congestion",
        "no-such-algorithm",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--congestion no-such-algorithm")
            && run.stderr.contains("tcp_allowed_congestion_control"),
        "{}",
        run.stderr
    );
}
