//! `loadgen`: the load generator and test backend of the side-by-side comparison
//! (`benches/compare/suite.sh`). wrk and h2load cover closed-loop throughput; this tool covers
//! what they cannot:
//!
//! * `backend`  — the upstream for the long-poll and large-body workloads: `/poll` is held
//!   for `--hold` seconds, `/blob` streams `--blob-bytes`, `PUT`/`POST` bodies are counted and
//!   dropped, anything else gets a small answer.
//! * `rate`     — open-loop constant-rate load. Request *i* is due at `start + i/rate`; when its
//!   connection is still busy at that time, its latency is measured from the due time, not
//!   from when the connection became free, so a stalled proxy cannot hide its stall (no
//!   coordinated omission).
//! * `rate-mix` — `rate` against several targets in one run, interleaved in slices over kept
//!   connections (opened in an unmeasured warm-up), so that the machine's noise falls on every
//!   target alike.
//! * `longpoll` — N connections each re-issuing a held `GET` at once, plus constant-rate API
//!   requests on separate connections; reports errors and the API latency percentiles.
//! * `idle`     — N keep-alive connections that make one request each and then stay open.
//! * `bulk`     — N concurrent large `PUT`s or `GET`s (plain or TLS); aggregate MB/s.
//! * `handshake` — new TLS connections as fast as `--conns` loops make them, each a full
//!   handshake (`--resume 0`) or a resumed one (`--resume 1`: TLS 1.3 tickets from the
//!   previous connections), one small GET each; connections/s and the proxy's CPU per
//!   connection.
//! * `report`   — turns the suite's result lines into the Markdown table (medians, ratios).
//!
//! Every mode that watches a proxy takes `--pid` (repeatable) and reports the resident set
//! size of those processes before the load and at its peak.
//!
//! Build: `cargo build --release --example loadgen`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().cloned() else {
        eprintln!(
            "usage: loadgen backend|rate|rate-mix|longpoll|idle|bulk|handshake|report [options]"
        );
        std::process::exit(2);
    };
    let opts = Opts::parse(&args[1..]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.num("threads", 1) as usize)
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt.block_on(async move {
        match mode.as_str() {
            "backend" => backend(&opts).await,
            "rate" => rate(&opts).await,
            "rate-mix" => rate_mix(&opts).await,
            "longpoll" => longpoll(&opts).await,
            "idle" => idle(&opts).await,
            "bulk" => bulk(&opts).await,
            "handshake" => handshake(&opts).await,
            "report" => report(&opts),
            m => Err(format!("unknown mode {m}").into()),
        }
    });
    if let Err(e) = r {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

/// `--key value` options; repeated keys keep every value.
struct Opts(BTreeMap<String, Vec<String>>);

impl Opts {
    fn parse(a: &[String]) -> Self {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut i = 0;
        while i < a.len() {
            if let Some(k) = a[i].strip_prefix("--") {
                let v = a.get(i + 1).cloned().unwrap_or_default();
                m.entry(k.to_string()).or_default().push(v);
                i += 2;
            } else {
                m.entry(String::new()).or_default().push(a[i].clone());
                i += 1;
            }
        }
        Opts(m)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }
    fn num(&self, k: &str, d: u64) -> u64 {
        self.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
    }
    fn float(&self, k: &str, d: f64) -> f64 {
        self.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
    }
    fn req(&self, k: &str) -> Result<&str, BoxError> {
        self.get(k)
            .ok_or_else(|| format!("--{k} is required").into())
    }
}

// ---------------------------------------------------------------------------------------
// Backend

async fn backend(o: &Opts) -> Result<(), BoxError> {
    let hold = Duration::from_secs_f64(o.float("hold", 30.0));
    let blob = o.num("blob-bytes", 100 << 20);
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut tasks = Vec::new();
    for addr in o.all("listen") {
        let l = TcpListener::bind(&addr).await?;
        let chunk = chunk.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                let chunk = chunk.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        backend_answer(req, hold, blob, chunk.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

type BackendBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

async fn backend_answer(
    req: Request<Incoming>,
    hold: Duration,
    blob: u64,
    chunk: Bytes,
) -> Result<Response<BackendBody>, BoxError> {
    let small = |s: &'static str| {
        Full::new(Bytes::from_static(s.as_bytes()))
            .map_err(|e| match e {})
            .boxed()
    };
    if req.method() == hyper::Method::PUT || req.method() == hyper::Method::POST {
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f?.into_data() {
                n += d.len() as u64;
            }
        }
        let b = Full::new(Bytes::from(format!("{n}\n")))
            .map_err(|e| match e {})
            .boxed();
        return Ok(Response::builder().status(201).body(b)?);
    }
    let path = req.uri().path();
    if path.contains("/poll") {
        tokio::time::sleep(hold).await;
        return Ok(Response::new(small(
            "{\"channel\":\"/meta/connect\",\"successful\":true}\n",
        )));
    }
    if path.contains("/blob") {
        let full = blob / chunk.len() as u64;
        let rest = (blob % chunk.len() as u64) as usize;
        let tail = chunk.slice(..rest);
        let stream = futures_lite_iter(full, chunk, tail);
        let body = StreamBody::new(stream).boxed();
        return Ok(Response::builder()
            .header("content-length", blob)
            .body(body)?);
    }
    Ok(Response::new(small("backend ok\n")))
}

/// `full` copies of `chunk` then `tail`, as body frames (shared bytes: no copying).
fn futures_lite_iter(
    full: u64,
    chunk: Bytes,
    tail: Bytes,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, io::Error>> + Send + Sync + 'static {
    struct S {
        left: u64,
        chunk: Bytes,
        tail: Option<Bytes>,
    }
    impl futures_core::Stream for S {
        type Item = Result<Frame<Bytes>, io::Error>;
        fn poll_next(
            mut self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left > 0 {
                self.left -= 1;
                return std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))));
            }
            std::task::Poll::Ready(
                self.tail
                    .take()
                    .filter(|t| !t.is_empty())
                    .map(|t| Ok(Frame::data(t))),
            )
        }
    }
    S {
        left: full,
        chunk,
        tail: Some(tail),
    }
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one request at a time on a keep-alive connection.

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where requests go: address, Host, TLS.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Target {
    /// `http://127.0.0.1:8080/path` or `https://…` → (target, path).
    fn parse(url: &str, ca: Option<&str>) -> Result<(Target, String), BoxError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("bad url {url}").into());
        };
        let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = hostport.parse()?;
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            let ca = ca.ok_or("https needs --ca")?;
            use rustls::pki_types::pem::PemObject;
            for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
                roots.add(c?)?;
            }
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok((
            Target {
                addr,
                host: hostport.to_string(),
                tls,
            },
            if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        ))
    }

    async fn connect(&self) -> io::Result<Conn> {
        let s = TcpStream::connect(self.addr).await?;
        s.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(s),
            Some(c) => {
                let name = rustls::pki_types::ServerName::try_from("localhost".to_string())
                    .map_err(io::Error::other)?;
                Box::new(c.connect(name, s).await?)
            }
        };
        Ok(Conn {
            io,
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
        })
    }
}

struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
}

/// What came back.
struct Answer {
    status: u16,
    body: u64,
    keep_alive: bool,
}

impl Conn {
    /// Sends `head` (and `body_len` bytes of body), reads the whole response.
    async fn exchange(&mut self, head: &[u8], body_len: u64) -> io::Result<Answer> {
        self.io.write_all(head).await?;
        if body_len > 0 {
            let chunk = [b'r'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                self.io.write_all(&chunk[..n]).await?;
                left -= n as u64;
            }
        }
        self.io.flush().await?;
        // Head.
        let (status, framing, keep_alive, used) = loop {
            let mut hdrs = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut hdrs);
            match r.parse(&self.buf[self.start..]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = r.code.unwrap_or(0);
                    let mut framing = Framing::Close;
                    let mut keep_alive = r.version == Some(1);
                    for h in r.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                            framing = Framing::Length(v.parse().unwrap_or(0));
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            framing = Framing::Chunked;
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            let v = h.value.to_ascii_lowercase();
                            if v.windows(5).any(|w| w == b"close") {
                                keep_alive = false;
                            }
                        }
                    }
                    if status == 204 || status == 304 || (100..200).contains(&status) {
                        framing = Framing::Length(0);
                    }
                    break (status, framing, keep_alive, n);
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(e) => return Err(io::Error::other(format!("bad response: {e}"))),
            }
        };
        self.start += used;
        let body = match framing {
            Framing::Length(n) => {
                self.skip(n).await?;
                n
            }
            Framing::Chunked => self.skip_chunked().await?,
            Framing::Close => {
                let mut n = (self.buf.len() - self.start) as u64;
                self.buf.clear();
                self.start = 0;
                let mut tmp = vec![0u8; 64 * 1024];
                loop {
                    let r = self.io.read(&mut tmp).await?;
                    if r == 0 {
                        break;
                    }
                    n += r as u64;
                }
                return Ok(Answer {
                    status,
                    body: n,
                    keep_alive: false,
                });
            }
        };
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Answer {
            status,
            body,
            keep_alive,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let n = self.io.read(&mut self.buf[len..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(len);
                return Err(e);
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn skip(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let have = (self.buf.len() - self.start) as u64;
            if have >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            self.buf.clear();
            self.start = 0;
            self.fill().await?;
        }
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.start..].iter().position(|&c| c == b'\n') {
                let l = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 1;
                return Ok(l);
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> io::Result<u64> {
        let mut total = 0;
        loop {
            let l = self.line().await?;
            let size = u64::from_str_radix(l.trim().split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                while !self.line().await?.trim().is_empty() {}
                return Ok(total);
            }
            self.skip(size + 2).await?;
            total += size;
        }
    }
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

fn get_head(t: &Target, path: &str, extra: &[String]) -> Vec<u8> {
    let mut h = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", t.host);
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

// ---------------------------------------------------------------------------------------
// Measurements

/// Latencies in microseconds.
#[derive(Default)]
struct Hist(Vec<u32>);

impl Hist {
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * p / 100.0).ceil() as usize).clamp(1, self.0.len()) - 1;
        f64::from(self.0[i]) / 1000.0
    }
}

/// User plus system CPU time of a process so far, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

/// Resident set sizes of the watched processes (KiB): at start, and the peak.
struct RssWatch {
    base: u64,
    peak: Arc<AtomicU64>,
    pids: Vec<u32>,
    task: tokio::task::JoinHandle<()>,
}

fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

impl RssWatch {
    fn start(o: &Opts) -> Self {
        let pids: Vec<u32> = o.all("pid").iter().filter_map(|p| p.parse().ok()).collect();
        let base = rss_kib(&pids);
        let peak = Arc::new(AtomicU64::new(base));
        let (p2, pk) = (pids.clone(), peak.clone());
        let task = tokio::spawn(async move {
            loop {
                pk.fetch_max(rss_kib(&p2), Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssWatch {
            base,
            peak,
            pids,
            task,
        }
    }
    fn now(&self) -> u64 {
        rss_kib(&self.pids)
    }
    fn stop(self) -> (u64, u64) {
        self.task.abort();
        (self.base, self.peak.load(Relaxed).max(self.now()))
    }
}

/// One result line for `report`: `workload target key=value…`.
fn emit(o: &Opts, fields: &[(&str, String)]) {
    emit_as(o, o.get("label").unwrap_or("-"), fields);
}

/// [`emit`] for the target `label`.
fn emit_as(o: &Opts, label: &str, fields: &[(&str, String)]) {
    let mut line = format!("{} {}", o.get("workload").unwrap_or("-"), label);
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    if let Some(f) = o.get("out") {
        use std::io::Write;
        if let Ok(mut w) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
        {
            let _ = writeln!(w, "{line}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Open-loop constant rate

/// Runs `rate` requests/s for `secs` over `conns` connections; latency from the due time.
async fn open_loop(
    t: &Target,
    head: Arc<Vec<u8>>,
    rate: f64,
    secs: f64,
    conns: u64,
    stop_early: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> (Hist, u64, u64) {
    let pool = (0..conns).map(|_| None).collect();
    let (h, ok, errors, _) = open_loop_on(t, head, rate, secs, pool, stop_early).await;
    (h, ok, errors)
}

/// [`open_loop`] over the connections of `pool` (one task each; `None` connects on first
/// use), which come back at the end for the next run.
async fn open_loop_on(
    t: &Target,
    head: Arc<Vec<u8>>,
    rate: f64,
    secs: f64,
    pool: Vec<Option<Conn>>,
    stop_early: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> (Hist, u64, u64, Vec<Option<Conn>>) {
    let total = (rate * secs) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    // A proxy that stops answering ends the run 10 s after the schedule; whatever was not
    // answered by then counts as an error.
    let end = start + Duration::from_secs_f64(secs) + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for conn in pool {
        let (t, head, next) = (t.clone(), head.clone(), next.clone());
        let stop = stop_early.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut conn: Option<Conn> = conn;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= total
                    || stop.as_ref().is_some_and(|s| s.load(Relaxed))
                    || tokio::time::Instant::now() >= end
                {
                    break;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                // Latency runs from the due time when this connection was still busy then (the
                // proxy's slowness delayed the send: no coordinated omission); when it was idle,
                // from the actual send, so the timer's 1 ms granularity is not counted.
                let from = if tokio::time::Instant::now() >= due {
                    due
                } else {
                    tokio::time::sleep_until(due).await;
                    tokio::time::Instant::now()
                };
                let r = async {
                    if conn.is_none() {
                        conn = Some(t.connect().await?);
                    }
                    let c = conn
                        .as_mut()
                        .ok_or_else(|| io::Error::other("no connection"))?;
                    c.exchange(&head, 0).await
                };
                let limit = end.min(tokio::time::Instant::now() + Duration::from_secs(30));
                match tokio::time::timeout_at(limit, r).await {
                    Ok(Ok(a)) if a.status < 400 => {
                        let us = from.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        lat.push(us);
                        if !a.keep_alive {
                            conn = None;
                        }
                    }
                    _ => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (lat, errors, conn)
        }));
    }
    let mut h = Hist::default();
    let mut errors = 0;
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok((l, e, c)) = t.await {
            h.0.extend(l);
            errors += e;
            back.push(c);
        }
    }
    let ok = h.0.len() as u64;
    (h, ok, total.saturating_sub(ok).max(errors), back)
}

/// `rate` against several targets (`--target label=url`, repeated) in one run, interleaved:
/// the run is cut into `--slices` slices, and each slice gives every target `duration /
/// slices` seconds in turn (the order rotating), over connections kept from slice to slice.
/// The machine is shared: a burst of someone else's work lasting a second decided whole
/// p99s when the targets ran one after another; interleaved, it lands on each target alike.
async fn rate_mix(o: &Opts) -> Result<(), BoxError> {
    let mut targets = Vec::new();
    for spec in o.all("target") {
        let (label, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("--target {spec}: want label=url"))?;
        let (t, path) = Target::parse(url, o.get("ca"))?;
        let head = Arc::new(get_head(&t, &path, &o.all("header")));
        targets.push((label.to_string(), t, head));
    }
    if targets.is_empty() {
        return Err("--target label=url is required".into());
    }
    // `--cpu-pid label=pid`: the process whose CPU time is charged to that target's slices.
    let mut cpu_pids = vec![None; targets.len()];
    for spec in o.all("cpu-pid") {
        if let Some((label, pid)) = spec.split_once('=')
            && let Some(i) = targets.iter().position(|(l, _, _)| l == label)
        {
            cpu_pids[i] = pid.parse::<u32>().ok();
        }
    }
    let r = o.float("rate", 1000.0);
    let secs = o.float("duration", 10.0);
    let slices = o.num("slices", 10).max(1);
    let conns = o.num("conns", 64);
    let n = targets.len();
    let mut ticks = vec![0u64; n];
    let mut pools: Vec<Vec<Option<Conn>>> =
        (0..n).map(|_| (0..conns).map(|_| None).collect()).collect();
    let mut hists: Vec<Hist> = (0..n).map(|_| Hist::default()).collect();
    let mut counts = vec![(0u64, 0u64, 0f64); n];
    // Warm-up, not measured: every target's connections are opened (and their TLS handshakes
    // done) at the measured rate for `--warmup` seconds first, as wrk2 calibrates before it
    // records. Otherwise the first slice measures a storm of `--conns` simultaneous handshakes,
    // which the `handshake` mode measures on its own.
    let warmup = o.float("warmup", 1.0);
    if warmup > 0.0 {
        for (i, (_, t, head)) in targets.iter().enumerate() {
            let pool = std::mem::take(&mut pools[i]);
            let (_, _, _, back) = open_loop_on(t, head.clone(), r, warmup, pool, None).await;
            pools[i] = back;
        }
    }
    // `--settle` seconds of quiet between two targets' slices (not measured), and the order
    // turns forwards in even rounds and backwards in odd ones: a target's slice then does not
    // always start in the wake of the same other target (a proxy that spends 80 µs per request,
    // or tears down threads after its slice, would otherwise always slow the one after it).
    let settle = Duration::from_secs_f64(o.float("settle", 0.25));
    for slice in 0..slices as usize {
        for k in 0..n {
            let i = if (slice / n) % 2 == 0 {
                (slice + k) % n
            } else {
                (slice + n * n - k) % n
            };
            tokio::time::sleep(settle).await;
            let (_, t, head) = &targets[i];
            let pool = std::mem::take(&mut pools[i]);
            let began = Instant::now();
            let cpu0 = cpu_pids[i].map(cpu_ticks);
            let (h, ok, errors, back) =
                open_loop_on(t, head.clone(), r, secs / slices as f64, pool, None).await;
            if let (Some(pid), Some(c0)) = (cpu_pids[i], cpu0) {
                ticks[i] += cpu_ticks(pid).saturating_sub(c0);
            }
            hists[i].0.extend(h.0);
            counts[i].0 += ok;
            counts[i].1 += errors;
            counts[i].2 += began.elapsed().as_secs_f64();
            pools[i] = back;
        }
    }
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for (i, (label, _, _)) in targets.iter().enumerate() {
        let (ok, errors, took) = counts[i];
        let h = &mut hists[i];
        let cpu_us = match cpu_pids[i] {
            Some(_) if ok > 0 => format!("{:.1}", ticks[i] as f64 / hz * 1e6 / ok as f64),
            _ => "-".to_string(),
        };
        emit_as(
            o,
            label,
            &[
                ("rate", format!("{r}")),
                ("cpu_us", cpu_us),
                ("ok", ok.to_string()),
                ("errors", errors.to_string()),
                ("achieved", format!("{:.0}", ok as f64 / took.max(1e-9))),
                ("p50_ms", format!("{:.3}", h.pct(50.0))),
                ("p99_ms", format!("{:.3}", h.pct(99.0))),
                ("p999_ms", format!("{:.3}", h.pct(99.9))),
                ("max_ms", format!("{:.3}", h.pct(100.0))),
                ("slices", slices.to_string()),
            ],
        );
    }
    Ok(())
}

async fn rate(o: &Opts) -> Result<(), BoxError> {
    let (t, path) = Target::parse(o.req("url")?, o.get("ca"))?;
    let head = Arc::new(get_head(&t, &path, &o.all("header")));
    let rss = RssWatch::start(o);
    let r = o.float("rate", 1000.0);
    let secs = o.float("duration", 10.0);
    let began = Instant::now();
    let (mut h, ok, errors) = open_loop(&t, head, r, secs, o.num("conns", 64), None).await;
    let took = began.elapsed().as_secs_f64();
    let (base, peak) = rss.stop();
    emit(
        o,
        &[
            ("rate", format!("{r}")),
            ("ok", ok.to_string()),
            ("errors", errors.to_string()),
            ("achieved", format!("{:.0}", ok as f64 / took)),
            ("p50_ms", format!("{:.3}", h.pct(50.0))),
            ("p99_ms", format!("{:.3}", h.pct(99.0))),
            ("p999_ms", format!("{:.3}", h.pct(99.9))),
            ("max_ms", format!("{:.3}", h.pct(100.0))),
            ("rss_base_kib", base.to_string()),
            ("rss_peak_kib", peak.to_string()),
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Long-polls with API load

async fn longpoll(o: &Opts) -> Result<(), BoxError> {
    let (pt, ppath) = Target::parse(o.req("poll-url")?, o.get("ca"))?;
    let (at, apath) = Target::parse(o.req("api-url")?, o.get("ca"))?;
    let n = o.num("conns", 8000);
    let secs = o.float("duration", 45.0);
    let api_rate = o.float("api-rate", 200.0);
    let timeout = Duration::from_secs_f64(o.float("poll-timeout", 40.0));
    let extra = o.all("header");
    let poll_head = Arc::new(get_head(&pt, &ppath, &extra));
    let api_head = Arc::new(get_head(&at, &apath, &extra));
    let rss = RssWatch::start(o);
    let polls_ok = Arc::new(AtomicU64::new(0));
    let poll_errors = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for i in 0..n {
        let (t, head) = (pt.clone(), poll_head.clone());
        let (ok, errs, connected) = (polls_ok.clone(), poll_errors.clone(), connected.clone());
        // Ramp up: 1,000 connections per 250 ms (a listen backlog is finite).
        let delay = Duration::from_millis((i / 1000) * 250);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut conn: Option<Conn> = None;
            let mut first = true;
            while tokio::time::Instant::now() < deadline {
                let r = async {
                    if conn.is_none() {
                        conn = Some(t.connect().await?);
                    }
                    if first {
                        first = false;
                        connected.fetch_add(1, Relaxed);
                    }
                    let c = conn
                        .as_mut()
                        .ok_or_else(|| io::Error::other("no connection"))?;
                    c.exchange(&head, 0).await
                };
                match tokio::time::timeout_at(
                    deadline.min(tokio::time::Instant::now() + timeout),
                    r,
                )
                .await
                {
                    Ok(Ok(a)) if a.status < 400 => {
                        ok.fetch_add(1, Relaxed);
                        if !a.keep_alive {
                            conn = None;
                        }
                    }
                    // Cut by the end of the run while held: not an error.
                    Err(_) if tokio::time::Instant::now() >= deadline => break,
                    _ => {
                        errs.fetch_add(1, Relaxed);
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    // API load starts once every poll is connected (or after the ramp).
    let ramp = Duration::from_millis((n / 1000 + 1) * 250 + 1000);
    tokio::time::sleep(ramp).await;
    let held_rss = rss.now();
    let api_secs = (secs - ramp.as_secs_f64() - 1.0).max(1.0);
    let (mut h, api_ok, api_errors) = open_loop(
        &at,
        api_head,
        api_rate,
        api_secs,
        o.num("api-conns", 16),
        None,
    )
    .await;
    for t in tasks {
        let _ = t.await;
    }
    let (base, peak) = rss.stop();
    let per_conn = (held_rss.saturating_sub(base) * 1024)
        .checked_div(n)
        .unwrap_or(0);
    emit(
        o,
        &[
            ("conns", n.to_string()),
            ("connected", connected.load(Relaxed).to_string()),
            ("polls_ok", polls_ok.load(Relaxed).to_string()),
            ("poll_errors", poll_errors.load(Relaxed).to_string()),
            ("api_ok", api_ok.to_string()),
            ("api_errors", api_errors.to_string()),
            ("api_p50_ms", format!("{:.3}", h.pct(50.0))),
            ("api_p99_ms", format!("{:.3}", h.pct(99.0))),
            ("api_p999_ms", format!("{:.3}", h.pct(99.9))),
            ("rss_base_kib", base.to_string()),
            ("rss_held_kib", held_rss.to_string()),
            ("rss_peak_kib", peak.to_string()),
            ("rss_per_conn_bytes", per_conn.to_string()),
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Idle keep-alive connections

async fn idle(o: &Opts) -> Result<(), BoxError> {
    let (t, path) = Target::parse(o.req("url")?, o.get("ca"))?;
    let n = o.num("conns", 1000);
    let hold = Duration::from_secs_f64(o.float("hold", 3.0));
    let head = get_head(&t, &path, &o.all("header"));
    let rss = RssWatch::start(o);
    // Connect in waves of 500; a proxy that stops accepting costs 5 s, not forever.
    let head = Arc::new(head);
    let mut conns = Vec::with_capacity(n as usize);
    let mut errors = 0u64;
    let mut i = 0;
    while i < n {
        let wave: Vec<_> = (i..n.min(i + 500))
            .map(|_| {
                let (t, head) = (t.clone(), head.clone());
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(5), async {
                        let mut c = t.connect().await?;
                        let a = c.exchange(&head, 0).await?;
                        if a.status < 400 && a.keep_alive {
                            Ok(c)
                        } else {
                            Err(io::Error::other("closed"))
                        }
                    })
                    .await
                })
            })
            .collect();
        for w in wave {
            match w.await {
                Ok(Ok(Ok(c))) => conns.push(c),
                _ => errors += 1,
            }
        }
        i += 500;
    }
    tokio::time::sleep(hold).await;
    let held = rss.now();
    let (base, _) = rss.stop();
    let kept = conns.len() as u64;
    drop(conns);
    emit(
        o,
        &[
            ("conns", n.to_string()),
            ("kept", kept.to_string()),
            ("errors", errors.to_string()),
            ("rss_base_kib", base.to_string()),
            ("rss_held_kib", held.to_string()),
            (
                "rss_per_conn_bytes",
                (held.saturating_sub(base) * 1024 / kept.max(1)).to_string(),
            ),
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Large bodies

async fn bulk(o: &Opts) -> Result<(), BoxError> {
    let (t, path) = Target::parse(o.req("url")?, o.get("ca"))?;
    let n = o.num("conns", 20);
    let size = o.num("bytes", 100 << 20);
    let put = o.get("method").unwrap_or("GET").eq_ignore_ascii_case("PUT");
    let head = if put {
        format!(
            "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {size}\r\n\r\n",
            t.host
        )
        .into_bytes()
    } else {
        get_head(&t, &path, &o.all("header"))
    };
    let head = Arc::new(head);
    let rss = RssWatch::start(o);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (t, head) = (t.clone(), head.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = t.connect().await?;
            let a = c.exchange(&head, if put { size } else { 0 }).await?;
            Ok::<_, io::Error>(a)
        }));
    }
    let mut moved = 0u64;
    let mut errors = 0u64;
    for t in tasks {
        match t.await {
            Ok(Ok(a)) if a.status < 400 && (put || a.body == size) => moved += size,
            _ => errors += 1,
        }
    }
    let took = began.elapsed().as_secs_f64();
    let (base, peak) = rss.stop();
    emit(
        o,
        &[
            ("method", if put { "PUT" } else { "GET" }.into()),
            ("conns", n.to_string()),
            ("bytes", size.to_string()),
            ("errors", errors.to_string()),
            ("seconds", format!("{took:.2}")),
            ("mb_s", format!("{:.0}", moved as f64 / took / 1e6)),
            ("rss_base_kib", base.to_string()),
            ("rss_peak_kib", peak.to_string()),
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Report: medians of rounds, ratios against each peer

/// One table: which metric, and whether higher is better.
struct Col {
    key: &'static str,
    title: &'static str,
    higher_better: bool,
}

const SMALL_COLS: &[Col] = &[
    Col {
        key: "rps",
        title: "req/s",
        higher_better: true,
    },
    Col {
        key: "cpu_us",
        title: "proxy CPU µs/req",
        higher_better: false,
    },
    Col {
        key: "p99_ms",
        title: "p99 ms",
        higher_better: false,
    },
];

const RATE_COLS: &[Col] = &[
    Col {
        key: "p99_ms",
        title: "p99 ms",
        higher_better: false,
    },
    Col {
        key: "cpu_us",
        title: "proxy CPU µs/req",
        higher_better: false,
    },
    Col {
        key: "p50_ms",
        title: "p50 ms",
        higher_better: false,
    },
    Col {
        key: "p999_ms",
        title: "p99.9 ms",
        higher_better: false,
    },
    Col {
        key: "errors",
        title: "errors",
        higher_better: false,
    },
];

const LONGPOLL_COLS: &[Col] = &[
    Col {
        key: "api_p99_ms",
        title: "API p99 ms",
        higher_better: false,
    },
    Col {
        key: "api_p999_ms",
        title: "API p99.9 ms",
        higher_better: false,
    },
    Col {
        key: "poll_errors",
        title: "poll errors",
        higher_better: false,
    },
    Col {
        key: "api_errors",
        title: "API errors",
        higher_better: false,
    },
    Col {
        key: "polls_ok",
        title: "polls answered",
        higher_better: true,
    },
    Col {
        key: "rss_per_conn_bytes",
        title: "RSS bytes/long-poll",
        higher_better: false,
    },
];

const H2_COLS: &[Col] = &[
    Col {
        key: "rps",
        title: "req/s",
        higher_better: true,
    },
    Col {
        key: "cpu_us",
        title: "proxy CPU µs/req",
        higher_better: false,
    },
    Col {
        key: "errors",
        title: "errors",
        higher_better: false,
    },
];

const HANDSHAKE_COLS: &[Col] = &[
    Col {
        key: "conns_per_s",
        title: "connections/s",
        higher_better: true,
    },
    Col {
        key: "cpu_us",
        title: "proxy CPU µs/connection",
        higher_better: false,
    },
    Col {
        key: "resumed_pct",
        title: "resumed %",
        higher_better: true,
    },
    Col {
        key: "errors",
        title: "errors",
        higher_better: false,
    },
];

/// Columns shared by the idle-connection tables and by the large-body tables.
const IDLE_COLS: &[Col] = &[
    Col {
        key: "rss_per_conn_bytes",
        title: "RSS bytes/conn",
        higher_better: false,
    },
    Col {
        key: "kept",
        title: "kept",
        higher_better: true,
    },
];
const BULK_COLS: &[Col] = &[
    Col {
        key: "mb_s",
        title: "MB/s",
        higher_better: true,
    },
    Col {
        key: "errors",
        title: "errors",
        higher_better: false,
    },
    Col {
        key: "rss_growth_kib",
        title: "RSS growth KiB",
        higher_better: false,
    },
];

// ---------------------------------------------------------------------------------------
// New TLS connections

/// A client config trusting `ca`, TLS 1.3 only, with or without session resumption.
fn tls13_client(ca: &str, resume: bool) -> Result<Arc<rustls::ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

/// One connection: TCP, TLS handshake, one GET with `Connection: close`, read to the end.
/// Returns whether the handshake resumed a session.
async fn one_handshake(
    addr: SocketAddr,
    cx: &tokio_rustls::TlsConnector,
    head: &[u8],
) -> io::Result<bool> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("localhost".to_string())
        .map_err(io::Error::other)?;
    let mut ts = cx.connect(name, s).await?;
    let resumed = ts.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    ts.write_all(head).await?;
    let mut out = Vec::with_capacity(1024);
    // A peer that closes without close_notify still answered: the status line decides.
    let _ = ts.read_to_end(&mut out).await;
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other("no 200"));
    }
    Ok(resumed)
}

async fn handshake(o: &Opts) -> Result<(), BoxError> {
    let url = o.req("url")?;
    let (t, path) = Target::parse(url, o.get("ca"))?;
    let resume = o.num("resume", 0) == 1;
    let cx = tokio_rustls::TlsConnector::from(tls13_client(o.req("ca")?, resume)?);
    let mut head = get_head(&t, &path, &o.all("header"));
    // `Connection: close` before the blank line: one request per connection.
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let head = Arc::new(head);
    let conns = o.num("conns", 16);
    let secs = o.float("duration", 10.0);
    // Warm-up: one connection, so the resumed run starts with tickets in hand.
    let _ = one_handshake(t.addr, &cx, &head).await;
    let pids: Vec<u32> = o.all("pid").iter().filter_map(|p| p.parse().ok()).collect();
    let c0: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (cx, head, addr) = (cx.clone(), head.clone(), t.addr);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut resumed, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                match one_handshake(addr, &cx, &head).await {
                    Ok(r) => {
                        ok += 1;
                        resumed += r as u64;
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, resumed, errors)
        }));
    }
    let (mut ok, mut resumed, mut errors) = (0u64, 0u64, 0u64);
    for task in tasks {
        let (a, b, c) = task.await?;
        ok += a;
        resumed += b;
        errors += c;
    }
    let took = began.elapsed().as_secs_f64();
    let c1: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_us = if ok > 0 && !pids.is_empty() {
        format!("{:.1}", (c1 - c0) as f64 / hz * 1e6 / ok as f64)
    } else {
        "-".into()
    };
    emit(
        o,
        &[
            ("conns_per_s", format!("{:.0}", ok as f64 / took)),
            ("cpu_us", cpu_us),
            ("errors", errors.to_string()),
            (
                "resumed_pct",
                format!("{:.0}", resumed as f64 * 100.0 / ok.max(1) as f64),
            ),
        ],
    );
    Ok(())
}

fn report(o: &Opts) -> Result<(), BoxError> {
    let file = o.req("in")?;
    let text = std::fs::read_to_string(file)?;
    // workload -> target -> key -> values
    let mut data: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<f64>>>> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(w), Some(t)) = (it.next(), it.next()) else {
            continue;
        };
        if !order.iter().any(|(a, b)| a == w && b == t) {
            order.push((w.to_string(), t.to_string()));
        }
        let e = data
            .entry(w.to_string())
            .or_default()
            .entry(t.to_string())
            .or_default();
        for kv in it {
            if let Some((k, v)) = kv.split_once('=')
                && let Ok(f) = v.parse::<f64>()
            {
                e.entry(k.to_string()).or_default().push(f);
            }
        }
    }
    let tables: &[(&str, &str, &[Col])] = &[
        (
            "small",
            "Small GETs, 64 keep-alive connections, ROUTEID sticky (wrk, closed loop)",
            SMALL_COLS,
        ),
        (
            "small-tls",
            "Small GETs over TLS 1.3 (HTTP/1.1), 64 keep-alive connections, ROUTEID sticky (wrk, closed loop)",
            SMALL_COLS,
        ),
        (
            "rate",
            "Constant rate (open loop, latency from the due time)",
            RATE_COLS,
        ),
        (
            "rate-tls",
            "Constant rate over TLS 1.3 (HTTP/1.1; open loop, latency from the due time)",
            RATE_COLS,
        ),
        (
            "longpoll",
            "Held long-polls (re-issued at once) + API requests at a constant rate",
            LONGPOLL_COLS,
        ),
        (
            "longpoll-tls",
            "Held long-polls over TLS 1.3 (re-issued at once) + API requests over TLS at a constant rate",
            LONGPOLL_COLS,
        ),
        (
            "idle-1000",
            "1,000 idle keep-alive client connections",
            IDLE_COLS,
        ),
        (
            "idle-8000",
            "8,000 idle keep-alive client connections",
            IDLE_COLS,
        ),
        ("put", "Concurrent large PUTs (plain)", BULK_COLS),
        ("get", "Concurrent large GETs (plain)", BULK_COLS),
        (
            "put-tls",
            "Concurrent large PUTs (TLS on the front)",
            BULK_COLS,
        ),
        (
            "get-tls",
            "Concurrent large GETs (TLS on the front)",
            BULK_COLS,
        ),
        ("h2", "HTTP/2 on the front over TLS (h2load)", H2_COLS),
        (
            "handshake-full",
            "New TLS 1.3 connections, full handshakes (ECDSA P-256), one GET each",
            HANDSHAKE_COLS,
        ),
        (
            "handshake-resumed",
            "New TLS 1.3 connections, resumed with session tickets, one GET each",
            HANDSHAKE_COLS,
        ),
    ];
    let ours = o.get("ours").unwrap_or("balancerd");
    let mut out = String::new();
    for (w, title, cols) in tables {
        let Some(targets) = data.get_mut(*w) else {
            continue;
        };
        // Derived: RSS growth.
        for m in targets.values_mut() {
            if let (Some(b), Some(p)) = (m.get("rss_base_kib"), m.get("rss_peak_kib")) {
                let g: Vec<f64> = b.iter().zip(p).map(|(b, p)| p - b).collect();
                m.insert("rss_growth_kib".into(), g);
            }
        }
        let rounds = targets
            .values()
            .map(|m| m.values().map(Vec::len).max().unwrap_or(0))
            .max()
            .unwrap_or(0);
        out.push_str(&format!(
            "**{title}** — median of {rounds} round(s)\n\n| target |"
        ));
        for c in cols.iter() {
            out.push_str(&format!(" {} |", c.title));
        }
        out.push_str(&format!(" {ours} vs target ({}) |\n|---|", cols[0].title));
        for _ in 0..=cols.len() {
            out.push_str("---|");
        }
        out.push('\n');
        let med = |m: &BTreeMap<String, Vec<f64>>, k: &str| -> Option<f64> {
            let mut v = m.get(k)?.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            (!v.is_empty()).then(|| v[v.len() / 2])
        };
        let our = targets.get(ours).and_then(|m| med(m, cols[0].key));
        let names: Vec<String> = order
            .iter()
            .filter(|(a, _)| a == w)
            .map(|(_, t)| t.clone())
            .collect();
        for t in names {
            let m = &targets[&t];
            out.push_str(&format!("| {t} |"));
            for c in cols.iter() {
                match med(m, c.key) {
                    Some(v) => out.push_str(&format!(" {} |", fmt_num(v))),
                    None => out.push_str(" – |"),
                }
            }
            let ratio = match (our, med(m, cols[0].key)) {
                (Some(a), Some(b)) if t != ours && a > 0.0 && b > 0.0 => {
                    let r = if cols[0].higher_better { a / b } else { b / a };
                    format!("{r:.2}×")
                }
                _ => "–".into(),
            };
            out.push_str(&format!(" {ratio} |\n"));
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
