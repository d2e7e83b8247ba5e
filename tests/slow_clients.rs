//! Slow-client resistance: connections that send their request head one byte a second
//! (slowloris) and connections that trickle their bodies, alongside normal keep-alive load.
//! The slow ones are cut at their `RequestReadTimeout` deadlines (408), normal requests keep
//! their latency (p99 within 2x of the unloaded run), and memory stays bounded.
//!
//! The test runs 300 slowloris and 30 body tricklers (the p99 bound must hold in one of
//! three rounds: the machine is shared). `SLOW_CLIENTS_FULL=1` runs the
//! issue's numbers (2,000 and 200) and prints what it measured:
//!   SLOW_CLIENTS_FULL=1 cargo test --profile ci --test slow_clients -- --nocapture

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The deadlines: the head and the body must each arrive within 5 s (`MinRate` extends
/// them only for clients sending at least 500 bytes a second).
const CONFIG: &str = "Listen 127.0.0.1:{PORT}
Timeout 30
KeepAliveTimeout 30
MaxKeepAliveRequests 0
RequestReadTimeout header=5-10,MinRate=500 body=5,MinRate=500
ProxyPass /t1/api http://m:1/api
";
const CUT: Duration = Duration::from_secs(5);

/// Keep-alive GETs from `clients` connections for `run`; the latency of each.
async fn normal_load(addr: std::net::SocketAddr, clients: usize, run: Duration) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut lat = Vec::new();
            let end = Instant::now() + run;
            while Instant::now() < end {
                let t0 = Instant::now();
                let g = c.get("/t1/api/x", &[]).await;
                assert_eq!(g.status, 200);
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn p99(l: &[Duration]) -> Duration {
    l[(l.len() * 99 / 100).min(l.len() - 1)]
}

/// A slow client: `first` at once, then `trickle` one byte a second until the proxy answers
/// or closes. Returns when that happened (from the connect) and the answer's first line.
async fn slow_client(
    addr: std::net::SocketAddr,
    first: &'static [u8],
    trickle: &'static [u8],
    connected: Arc<std::sync::atomic::AtomicUsize>,
) -> (Duration, String) {
    let t0 = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(first).await;
    connected.fetch_add(1, SeqCst);
    let mut answer = Vec::new();
    let mut i = 0;
    loop {
        let mut buf = [0u8; 1024];
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if s.write_all(&trickle[i % trickle.len()..][..1]).await.is_err() {
                    // The proxy closed; read what it said.
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut answer)).await;
                    break;
                }
                i += 1;
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("a slow client was never cut");
        }
    }
    let first_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("(closed)")
        .to_string();
    (t0.elapsed(), first_line)
}

/// What one round measured.
struct Round {
    unloaded: Vec<Duration>,
    loaded: Vec<Duration>,
    cut_heads: Vec<Duration>,
    cut_bodies: Vec<Duration>,
    base_rss: u64,
    peak_rss: u64,
}

/// One round: normal load alone, then beside the slow clients until they are all cut.
async fn round(p: &Proxy, n_heads: usize, n_bodies: usize) -> Round {
    let run = Duration::from_secs(2);
    normal_load(p.addr, 8, Duration::from_millis(300)).await;
    let base_rss = p.rss_kib();
    let unloaded = normal_load(p.addr, 8, run).await;
    // The slow clients, started over a few tens of milliseconds.
    let mut slow = Vec::new();
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..n_heads + n_bodies {
        let (addr, connected) = (p.addr, connected.clone());
        slow.push(tokio::spawn(async move {
            if i < n_heads {
                (
                    true,
                    slow_client(
                        addr,
                        b"G",
                        b"ET /t1/api/x HTTP/1.1\r\nHost: x\r\n",
                        connected,
                    )
                    .await,
                )
            } else {
                let head: &'static [u8] =
                    b"PUT /t1/api/up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc";
                (false, slow_client(addr, head, b"x", connected).await)
            }
        }));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Peak memory while they are all connected.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, pid) = (peak.clone(), p.pid());
        tokio::spawn(async move {
            for _ in 0..200 {
                peak.fetch_max(rss_kib_of(pid), SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Every slow client connected and started before the normal load is measured beside them.
    let all = n_heads + n_bodies;
    let started = wait_for(
        async || connected.load(SeqCst) == all,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        started.is_some(),
        "{} of {all} slow clients connected",
        connected.load(SeqCst)
    );
    let loaded = normal_load(p.addr, 8, run).await;
    let mut cut_heads = Vec::new();
    let mut cut_bodies = Vec::new();
    for t in slow {
        let (is_head, (took, line)) = t.await.unwrap();
        assert!(
            line.starts_with("HTTP/1.1 408 "),
            "a slow {} got {line:?} after {took:?}",
            if is_head { "head" } else { "body" }
        );
        if is_head {
            cut_heads.push(took);
        } else {
            cut_bodies.push(took);
        }
    }
    sampler.abort();
    cut_heads.sort();
    cut_bodies.sort();
    Round {
        unloaded,
        loaded,
        cut_heads,
        cut_bodies,
        base_rss,
        peak_rss: peak.load(SeqCst),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_body_tricklers_are_cut_while_normal_load_keeps_its_latency() {
    let full = std::env::var_os("SLOW_CLIENTS_FULL").is_some();
    let (n_heads, n_bodies) = if full { (2000, 200) } else { (300, 30) };
    // Each slow client is a socket here, and the normal load adds more.
    need_open_files(2 * (n_heads + n_bodies) as u64 + 1024);
    let member = Backend::start("m").await;
    let p = Proxy::start(CONFIG, &[("m:1", member.addr)]);
    // Latency on a shared machine is noisy: the p99 bound must hold in one of three
    // rounds (each measures its own baseline); the cuts and the memory in every round.
    let mut ratios = Vec::new();
    for attempt in 1..=3 {
        let r = round(&p, n_heads, n_bodies).await;
        let (u, l) = (p99(&r.unloaded), p99(&r.loaded));
        let per_slow = r.peak_rss.saturating_sub(r.base_rss) * 1024 / (n_heads + n_bodies) as u64;
        eprintln!(
            "round {attempt}: normal load, 8 keep-alive clients: unloaded {} requests p99 {u:?}; beside {n_heads} slowloris and {n_bodies} body tricklers {} requests p99 {l:?} ({:.2}x)\n\
             slowloris cut after {:?}..{:?}; tricklers cut after {:?}..{:?}\n\
             RSS: base {} KiB, peak {} KiB ({per_slow} B per slow connection)",
            r.unloaded.len(),
            r.loaded.len(),
            l.as_secs_f64() / u.as_secs_f64(),
            r.cut_heads[0],
            r.cut_heads[r.cut_heads.len() - 1],
            r.cut_bodies[0],
            r.cut_bodies[r.cut_bodies.len() - 1],
            r.base_rss,
            r.peak_rss,
        );
        // Cut at their deadlines: not before, and within a few seconds after.
        for t in r.cut_heads.iter().chain(&r.cut_bodies) {
            assert!(*t >= CUT - Duration::from_millis(200), "cut early: {t:?}");
            assert!(*t <= CUT + Duration::from_secs(3), "cut late: {t:?}");
        }
        // Bounded memory: a slow connection costs a few KiB.
        assert!(per_slow < 16 * 1024, "{per_slow} B per slow connection");
        // Normal requests keep their latency: p99 within 2x of the unloaded run
        // (sub-millisecond p99s on loopback are compared from 1 ms, below which scheduling
        // noise decides).
        let floor = Duration::from_millis(1);
        if l <= 2 * u.max(floor) {
            return;
        }
        ratios.push(format!("{l:?} vs {u:?}"));
    }
    panic!("p99 under slow clients above 2x the unloaded p99 in every round: {ratios:?}");
}
