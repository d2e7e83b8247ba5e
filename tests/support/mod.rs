//! Test support: run the real `balancerd` binary, write real config files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of the binary printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `file:line:col: severity: message` heads of every diagnostic, in order.
    pub fn heads(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| {
                l.contains(": error: ") || l.contains(": warning: ") || l.contains(": note: ")
            })
            .map(str::to_string)
            .collect()
    }
}

/// The crate root (tests run from here so paths print the same everywhere).
pub fn root() -> PathBuf {
    watchdog();
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How long one test binary may run before the watchdog ends it (`TEST_BINARY_TIMEOUT`
/// seconds to change it): a fault that hangs a test then fails CI with a message instead of
/// holding it until CI's own limit.
const BINARY_TIMEOUT_SECS: u64 = 600;

/// Starts, once per test binary, a thread that aborts the process with a message when the
/// binary has run longer than [`BINARY_TIMEOUT_SECS`]. Called from the helpers every test
/// uses (`root`, `Proxy::start`, `Backend::start`).
pub fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let secs = std::env::var("TEST_BINARY_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(BINARY_TIMEOUT_SECS);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            eprintln!(
                "test binary {} still running after {secs} s: a test hangs (TEST_BINARY_TIMEOUT to change the limit)",
                std::env::args().next().unwrap_or_default()
            );
            std::process::exit(101);
        });
    });
}

/// Raises this test process's soft open-file limit towards `want`, as far as the hard limit
/// allows (the common helpers call it; a test that needs a number calls
/// [`need_open_files`]).
pub fn raise_open_files(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid `rlimit` for getrlimit to fill and setrlimit to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0
            || lim.rlim_cur >= want as libc::rlim_t
        {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: (want as libc::rlim_t).min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
    }
}

/// Raises this test process's soft open-file limit to at least `want` (the hard limit
/// allows it on a default machine: soft 1,024, hard 524,288 or more), or fails saying what
/// is missing. balancerd raises its own limit when it starts.
pub fn need_open_files(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid `rlimit` for getrlimit to fill and setrlimit to read.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur >= want as libc::rlim_t {
            return;
        }
        assert!(
            lim.rlim_max >= want as libc::rlim_t,
            "this test needs {want} open files; the hard limit is {} (raise it: ulimit -Hn {want} as root)",
            lim.rlim_max
        );
        let raised = libc::rlimit {
            rlim_cur: want as libc::rlim_t,
            rlim_max: lim.rlim_max,
        };
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised),
            0,
            "raising the open-file limit to {want}"
        );
    }
}

/// Runs `balancerd ARGS` from the crate root.
pub fn balancerd(args: &[&str]) -> Run {
    balancerd_in(&root(), args)
}

/// Runs `balancerd ARGS` from `dir`.
pub fn balancerd_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_balancerd"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run balancerd");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary folder of config files.
pub struct ConfDir {
    pub dir: tempfile::TempDir,
}

impl ConfDir {
    pub fn new() -> Self {
        ConfDir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `rel` with `text` and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `balancerd check --config REL` inside the folder.
    pub fn check(&self, rel: &str) -> Run {
        balancerd_in(self.path(), &["check", "--config", rel])
    }
}

// ---------------------------------------------------------------------------------------
// Live proxy and backends.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The resident memory of process `pid` in KiB (`VmRSS`; 0 when it cannot be read).
pub fn rss_kib_of(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A free loopback port (bind-and-release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running balancerd process; killed on drop.
pub struct Proxy {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub conf: ConfDir,
    pub log: PathBuf,
}

impl Proxy {
    /// Writes `config` (with `{PORT}` replaced by a free port) and starts balancerd on it.
    pub fn start(config: &str, map_hosts: &[(&str, SocketAddr)]) -> Proxy {
        Self::start_with_args(config, map_hosts, &[])
    }

    /// Like [`Proxy::start`], with extra command-line arguments. A free port can be taken by
    /// another test's backend before balancerd binds it (the test would then talk to that
    /// backend directly): balancerd exits, and this tries again on another port.
    pub fn start_with_args(config: &str, map_hosts: &[(&str, SocketAddr)], args: &[&str]) -> Proxy {
        watchdog();
        raise_open_files(8192);
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = ConfDir::new();
            let text = config.replace("{PORT}", &port.to_string());
            conf.write("balancerd.conf", &text);
            match Self::try_start(conf, "balancerd.conf", port, map_hosts, args) {
                Ok(p) => return p,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    /// Starts balancerd on a file already written in `conf`.
    pub fn start_in(
        conf: ConfDir,
        file: &str,
        port: u16,
        map_hosts: &[(&str, SocketAddr)],
    ) -> Proxy {
        Self::try_start(conf, file, port, map_hosts, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts balancerd and waits until *it* listens on `port` (its own log says so and the
    /// port accepts): a mere successful connect could be to someone else's socket.
    fn try_start(
        conf: ConfDir,
        file: &str,
        port: u16,
        map_hosts: &[(&str, SocketAddr)],
        args: &[&str],
    ) -> Result<Proxy, String> {
        let log = conf.path().join("balancerd.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_balancerd"));
        cmd.args(args);
        cmd.arg("--config").arg(conf.path().join(file));
        for (h, a) in map_hosts {
            cmd.arg("--map-host").arg(format!("{h}={a}"));
        }
        cmd.env("RUST_LOG", "info");
        cmd.stdout(std::process::Stdio::null());
        cmd.stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("spawn balancerd");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut p = Proxy {
            child,
            addr,
            conf,
            log,
        };
        let port_tag = format!(":{port} ");
        for _ in 0..500 {
            let bound = p
                .log_text()
                .lines()
                .any(|l| l.contains("listening on ") && l.contains(&port_tag));
            if bound && std::net::TcpStream::connect(addr).is_ok() {
                return Ok(p);
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(format!("balancerd exited ({status}): {}", p.log_text()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("balancerd did not start: {}", p.log_text()))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines of the log so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until the log holds at least `n` lines containing `needle`; panics with the log
    /// (saying what did not happen) after `limit`. The way a test waits for a reload, a health
    /// transition or a stop instead of sleeping.
    pub async fn wait_log(&self, needle: &str, n: usize, limit: Duration) {
        let t0 = std::time::Instant::now();
        while self.log_count(needle) < n {
            assert!(
                t0.elapsed() < limit,
                "within {limit:?}, expected {n} log line(s) with {needle:?}, saw {}:\n{}",
                self.log_count(needle),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resident memory of the proxy, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a backend saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body_len: u64,
    pub body_sha: String,
}

/// How a backend answers.
#[derive(Clone)]
pub enum Reply {
    /// 200 with "backend NAME" and optional extra headers.
    Ok,
    /// A given status.
    Status(u16),
    /// Sleep, then 200.
    Delay(Duration),
    /// Close the connection without a response.
    Drop,
    /// Stream `n` bytes of a deterministic pattern.
    Big(u64),
    /// Answer 101 and echo bytes back (a WebSocket-like tunnel).
    Upgrade,
}

/// A real HTTP/1.1 backend on loopback, started by the test.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub reply: Arc<Mutex<Reply>>,
    pub headers: Arc<Mutex<Vec<(String, String)>>>,
    pub conns: Arc<AtomicUsize>,
    alive: Arc<AtomicBool>,
    /// Requests being served right now.
    pub in_flight: Arc<AtomicUsize>,
    conn_tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// For TLS backends: "Full" or "Resumed", one per accepted handshake.
    pub handshakes: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Handle,
}

struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(c: Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, SeqCst);
        InFlight(c)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// The deterministic byte pattern of large bodies.
pub fn pattern_chunk(offset: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    for i in 0..len as u64 {
        let x = offset + i;
        v.push((x.wrapping_mul(2654435761) >> 13) as u8);
    }
    Bytes::from(v)
}

pub fn sha_hex(d: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(d);
    h.iter().map(|b| format!("{b:02x}")).collect()
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn full(s: impl Into<Bytes>) -> BoxBody {
    Full::new(s.into()).map_err(|never| match never {}).boxed()
}

impl Backend {
    /// Starts a backend on a free loopback port.
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts a TLS backend (HTTP/1.1 over TLS) with `acceptor`.
    pub async fn start_tls(name: &str, acceptor: tokio_rustls::TlsAcceptor) -> Backend {
        Self::start_with(name, "127.0.0.1:0".parse().unwrap(), Some(acceptor)).await
    }

    /// Starts a backend on `addr`.
    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        Self::start_with(name, addr, None).await
    }

    async fn start_with(
        name: &str,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Backend {
        watchdog();
        raise_open_files(8192);
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind backend");
        let addr = l.local_addr().unwrap();
        let mut b = Backend {
            name: name.to_string(),
            addr,
            seen: Arc::default(),
            reply: Arc::new(Mutex::new(Reply::Ok)),
            headers: Arc::default(),
            conns: Arc::default(),
            alive: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::default(),
            conn_tasks: Arc::default(),
            tls,
            handshakes: Arc::default(),
            task: None,
            rt: tokio::runtime::Handle::current(),
        };
        b.task = Some(b.spawn(l));
        b
    }

    fn spawn(&self, l: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let (in_flight, conn_tasks, tls) = (
            self.in_flight.clone(),
            self.conn_tasks.clone(),
            self.tls.clone(),
        );
        let handshakes = self.handshakes.clone();
        let (name, seen, reply, headers, conns, alive) = (
            self.name.clone(),
            self.seen.clone(),
            self.reply.clone(),
            self.headers.clone(),
            self.conns.clone(),
            self.alive.clone(),
        );
        self.rt.spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                conns.fetch_add(1, SeqCst);
                let (name, seen, reply, headers, alive) = (
                    name.clone(),
                    seen.clone(),
                    reply.clone(),
                    headers.clone(),
                    alive.clone(),
                );
                let in_flight = in_flight.clone();
                let tls = tls.clone();
                let handshakes = handshakes.clone();
                let h = tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (name, seen, reply, headers, alive) = (
                            name.clone(),
                            seen.clone(),
                            reply.clone(),
                            headers.clone(),
                            alive.clone(),
                        );
                        let in_flight = in_flight.clone();
                        async move {
                            let _g = InFlight::enter(in_flight);
                            serve_one(name, seen, reply, headers, alive, req).await
                        }
                    });
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = b
                                .serve_connection(TokioIo::new(s), svc)
                                .with_upgrades()
                                .await;
                        }
                        Some(acc) => {
                            if let Ok(ts) = acc.accept(s).await {
                                let kind = format!("{:?}", ts.get_ref().1.handshake_kind());
                                handshakes.lock().unwrap().push(kind);
                                let _ = b
                                    .serve_connection(TokioIo::new(ts), svc)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                    }
                });
                let mut ct = conn_tasks.lock().unwrap();
                ct.retain(|t| !t.is_finished());
                ct.push(h);
            }
        })
    }

    /// Stops accepting and drops every open connection (as a killed process would).
    /// Returns how many requests were being served at that moment.
    pub fn stop(&mut self) -> usize {
        self.alive.store(false, SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let n = self.in_flight.load(SeqCst);
        for t in self.conn_tasks.lock().unwrap().iter() {
            t.abort();
        }
        // Aborting is asynchronous: the listening socket closes when another worker drops
        // the accept task. Until then a connect still succeeds (and is reset later), so a
        // test expecting "connection refused" could see a broken connection instead.
        // (Every test using this runs on the multi-thread runtime.)
        for _ in 0..400 {
            match std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(50)) {
                Err(_) => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        n
    }

    /// `stop`, then waits until every connection is really gone (under load, aborting
    /// thousands of tasks takes a few milliseconds: the member is dying meanwhile).
    pub async fn kill(&mut self) -> usize {
        let n = self.stop();
        let tasks: Vec<_> = self.conn_tasks.lock().unwrap().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        n
    }

    /// Starts again on the same address.
    pub async fn restart(&mut self) {
        let l = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.alive.store(true, SeqCst);
        self.task = Some(self.spawn(l));
    }

    pub fn set_reply(&self, r: Reply) {
        *self.reply.lock().unwrap() = r;
    }

    pub fn add_header(&self, k: &str, v: &str) {
        self.headers.lock().unwrap().push((k.into(), v.into()));
    }

    /// True when a request `method target` reached this backend.
    pub fn saw(&self, method: &str, target: &str) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.method == method && s.target == target)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend saw a request")
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_one(
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<Mutex<Reply>>,
    extra: Arc<Mutex<Vec<(String, String)>>>,
    alive: Arc<AtomicBool>,
    mut req: Request<Incoming>,
) -> Result<Response<BoxBody>, std::io::Error> {
    if !alive.load(SeqCst) {
        return Err(std::io::Error::other("stopped"));
    }
    let r = reply.lock().unwrap().clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, mut body) = req.into_parts();
    let mut len = 0u64;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    while let Some(f) = body.frame().await {
        let f = f.map_err(std::io::Error::other)?;
        if let Some(d) = f.data_ref() {
            len += d.len() as u64;
            sha2::Digest::update(&mut hasher, d);
        }
    }
    let sha: String = sha2::Digest::finalize(hasher)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body_len: len,
        body_sha: sha,
    });
    let mut resp = match r {
        Reply::Ok => Response::new(full(format!("backend {name}\n"))),
        Reply::Status(s) => {
            let mut x = Response::new(full(format!("backend {name} status {s}\n")));
            *x.status_mut() = http::StatusCode::from_u16(s).unwrap();
            x
        }
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            Response::new(full(format!("backend {name}\n")))
        }
        Reply::Drop => return Err(std::io::Error::other("drop")),
        Reply::Big(n) => {
            let stream = futures_stream(n);
            let mut x = Response::new(StreamBody::new(stream).boxed());
            x.headers_mut()
                .insert("content-length", http::HeaderValue::from(n));
            x
        }
        Reply::Upgrade => {
            tokio::spawn(async move {
                if let Ok(up) = on_upgrade.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut x = Response::new(full(""));
            *x.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            x.headers_mut()
                .insert("upgrade", http::HeaderValue::from_static("websocket"));
            x.headers_mut()
                .insert("connection", http::HeaderValue::from_static("Upgrade"));
            return Ok(x);
        }
    };
    resp.headers_mut()
        .insert("x-backend", http::HeaderValue::from_str(&name).unwrap());
    for (k, v) in extra.lock().unwrap().iter() {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    Ok(resp)
}

fn futures_stream(
    n: u64,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send {
    const CHUNK: u64 = 64 * 1024;
    struct S {
        off: u64,
        n: u64,
    }
    impl futures_core::Stream for S {
        type Item = Result<Frame<Bytes>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.off >= self.n {
                return std::task::Poll::Ready(None);
            }
            let len = CHUNK.min(self.n - self.off) as usize;
            let c = pattern_chunk(self.off, len);
            self.off += len as u64;
            std::task::Poll::Ready(Some(Ok(Frame::data(c))))
        }
    }
    S { off: 0, n }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, n: &str) -> Option<String> {
        self.headers.get(n).map(|v| v.to_str().unwrap().to_string())
    }
    pub fn all(&self, n: &str) -> Vec<String> {
        self.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<BoxBody>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to proxy");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Client { sender }
    }

    /// Sends a request and reads the whole answer. Every exchange has a deadline
    /// ([`ANSWER_LIMIT`]): a proxy that never answers fails the test with the request named,
    /// instead of hanging it until the binary's watchdog.
    pub async fn send(&mut self, req: Request<BoxBody>) -> Result<Got, hyper::Error> {
        let what = format!("{} {}", req.method(), req.uri());
        let exchange = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let (p, b) = resp.into_parts();
            let body = b.collect().await?.to_bytes();
            Ok(Got {
                status: p.status.as_u16(),
                headers: p.headers,
                body,
            })
        };
        match tokio::time::timeout(ANSWER_LIMIT, exchange).await {
            Ok(r) => r,
            Err(_) => panic!("no whole answer to {what} within {ANSWER_LIMIT:?}"),
        }
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(req("GET", path, headers, full("")))
            .await
            .expect("request")
    }
}

/// How long a test client waits for a whole answer (the longest answer a test's member holds
/// back is 60 s).
pub const ANSWER_LIMIT: Duration = Duration::from_secs(120);

/// Builds a request.
pub fn req(method: &str, path: &str, headers: &[(&str, &str)], body: BoxBody) -> Request<BoxBody> {
    let mut r = Request::builder().method(method).uri(path);
    let mut has_host = false;
    for (k, v) in headers {
        has_host |= k.eq_ignore_ascii_case("host");
        r = r.header(*k, *v);
    }
    if !has_host {
        r = r.header("host", "front.example");
    }
    r.body(body).unwrap()
}

pub fn body(s: impl Into<Bytes>) -> BoxBody {
    full(s)
}

/// One GET on a new connection.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    Client::connect(addr).await.get(path, headers).await
}

/// Raw bytes in, raw bytes out (for framing and limit tests). Reads until the proxy closes
/// or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
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

/// Maps used by tests: name → backend address.
pub fn hosts<'a>(pairs: &[(&'a str, &Backend)]) -> Vec<(&'a str, SocketAddr)> {
    pairs.iter().map(|(h, b)| (*h, b.addr)).collect()
}

pub type Headers = HashMap<String, String>;

// ---------------------------------------------------------------------------------------
// Certificates made at test time.

/// A test CA that issues certificates into a temporary folder.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca_key: rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
    pub ca: PathBuf,
}

impl Pki {
    pub fn new(cn: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            dir,
            ca_key,
            ca_params,
            ca,
        }
    }

    /// Issues a certificate for `names`; returns (cert.pem, key.pem). `expired` makes one
    /// that ended in 2021.
    pub fn issue(&self, stem: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let k = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("x"),
        );
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let issuer = rcgen::Issuer::new(self.ca_params.clone(), &self.ca_key);
        let c = p.signed_by(&k, &issuer).unwrap();
        let cert = self.dir.path().join(format!("{stem}.pem"));
        let key = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert, c.pem()).unwrap();
        std::fs::write(&key, k.serialize_pem()).unwrap();
        (cert, key)
    }
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_of(p: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(p)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

fn key_of(p: &Path) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(p).unwrap()
}

/// A TLS acceptor for a test backend; `client_ca` makes it require a client certificate.
pub fn acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> tokio_rustls::TlsAcceptor {
    let b = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        None => b.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs_of(ca) {
                roots.add(c).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                ring(),
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        }
    };
    let cfg = b.with_single_cert(certs_of(cert), key_of(key)).unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A TLS client connection to the proxy: returns the stream and the certificate served.
/// A TLS client that presents `cert`/`key` (a client certificate), then one GET of `path`
/// with `Host: sni`; the status, or the error of the handshake or the exchange.
pub async fn tls_get_with_client_cert(
    addr: SocketAddr,
    ca: &Path,
    sni: &str,
    client: Option<(&Path, &Path)>,
    path: &str,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_of(ca) {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((c, k)) => b.with_client_auth_cert(certs_of(c), key_of(k)).unwrap(),
        None => b.with_no_client_auth(),
    };
    let s = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut ts = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, s)
        .await?;
    ts.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    ts.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))
}

pub async fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
)> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_of(ca) {
        roots.add(c).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let s = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let ts = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, s)
        .await?;
    let served = ts
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((ts, served))
}

/// The DER of the first certificate in a PEM file.
pub fn der_of(p: &Path) -> Vec<u8> {
    certs_of(p)[0].to_vec()
}

/// An HTTP/1.1 client over an established stream.
pub async fn h1_over<S>(io: S) -> Client
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Client { sender }
}

/// An HTTP/2 client over an established stream.
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<BoxBody>,
}

impl H2Client {
    pub async fn over<S>(io: S) -> H2Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(io),
        )
        .await
        .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Client { sender }
    }

    pub async fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Got {
        let mut r = Request::builder().method("GET").uri(url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let exchange = async {
            let resp = self
                .sender
                .send_request(r.body(full("")).unwrap())
                .await
                .unwrap();
            let (p, b) = resp.into_parts();
            let body = b.collect().await.unwrap().to_bytes();
            Got {
                status: p.status.as_u16(),
                headers: p.headers,
                body,
            }
        };
        tokio::time::timeout(ANSWER_LIMIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("no whole answer to GET {url} within {ANSWER_LIMIT:?}"))
    }
}

/// One GET from a given source address on loopback (127.0.0.2, ...).
pub async fn get_from(src: &str, addr: SocketAddr, path: &str) -> Got {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let s = sock.connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut c = Client { sender };
    c.get(path, &[("host", "localhost")]).await
}

pub async fn wait_for(mut f: impl AsyncFnMut() -> bool, limit: Duration) -> Option<Duration> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        if f().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// A member on a raw socket that answers every request head with `answer` as written
/// (keep-alive), whatever the request, and counts the heads it read.
pub async fn raw_member(answer: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let heads = Arc::new(AtomicUsize::new(0));
    let count = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        count.fetch_add(1, SeqCst);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// A path as config text.
pub fn path_text(path: &Path) -> String {
    path.display().to_string()
}
