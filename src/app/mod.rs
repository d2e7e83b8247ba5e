//! Start-up and lifecycle: load the config, build the first snapshot, bind the listeners,
//! serve; reload on `SIGHUP` or when a config file changes; stop gracefully on
//! `SIGTERM`/`SIGINT`.
//!
//! ```text
//!  load ──ok──▶ serving ◀─────────────────────────────┐
//!   │             │ SIGHUP / file changed (debounced)  │ new listeners bound first, then the
//!   ✗ exit 1      ├──▶ load (same code as `check`) ──ok┘ snapshot swapped (member state kept),
//!                 │         └─✗─▶ diagnostics logged, old snapshot kept, failure counted
//!                 └ SIGTERM/SIGINT ──▶ not ready (`SetHandler ready` 503), serving on for
//!                                      `ShutdownDelay`, then
//!                                      draining: stop accepting, idle connections closed,
//!                                      in-flight requests and tunnels finish (grace period)
//!                                      ──▶ exit 0
//! ```
//!
//! Invariants:
//! * A reload either swaps in a whole new snapshot or changes nothing: a config that does
//!   not load, or a snapshot that does not build (a certificate that does not match its key,
//!   a listener that cannot bind), leaves the running one serving.
//! * A request finishes on the snapshot it started with; the next request on the same
//!   connection sees the new one.
//! * Member state is carried by (balancer, member URL): a reload never forgets a member in
//!   error nor resets its counters.
//! * While draining nothing new is accepted, and no in-flight request is cut before the
//!   grace period ends.
//!
//! Layer 12, the top: start-up, signals, reload, pid file, drain; the command line
//! ([`cli`]) and the demo ([`demo`]). May import: every layer.

pub mod cli;
pub mod ctl;
pub mod demo;
pub mod explain;
pub mod upgrade;

use crate::config::{self, LoadOptions};
use crate::runtime::{Shared, Snapshot};
use crate::telemetry::stats::{ReloadResult, STATS};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Sets up logging once (`RUST_LOG` overrides the level).
pub fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Loads a config and prints its diagnostics; `None` on errors.
pub fn load_or_report(path: &Path, opts: &LoadOptions) -> Option<config::Config> {
    let loaded = config::load(path, opts);
    for d in &loaded.diagnostics {
        eprint!("{}", d.render());
    }
    loaded.config
}

/// Binds the listening sockets of one address with the socket options a proxy wants: one,
/// or `--listeners-per-addr` sockets sharing the address with `SO_REUSEPORT`.
pub fn bind_listeners(addr: SocketAddr) -> std::io::Result<Vec<TcpListener>> {
    let n = crate::net::tuning::get().listeners_per_addr.max(1);
    (0..n).map(|_| bind_one(addr, n > 1)).collect()
}

/// Binds one listening socket (the demo's members and control port).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind_one(addr, false)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.set_tcp_nodelay(crate::net::tuning::get().nodelay)?;
    crate::net::tuning::apply_congestion(&sock)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    TcpListener::from_std(sock.into())
}

/// The tokio runtime: `threads` workers, else one per core.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == Some(1) {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads.filter(|n| *n > 0) {
        b.worker_threads(n);
    }
    b.enable_all().build()
}

/// What the running server owns besides the snapshot.
struct App {
    shared: Shared,
    path: PathBuf,
    opts: LoadOptions,
    listeners: HashMap<SocketAddr, Vec<JoinHandle<()>>>,
    /// The listening sockets' descriptors by address (what an upgrade hands over).
    listen_fds: HashMap<SocketAddr, Vec<std::os::fd::RawFd>>,
    /// Sockets handed over by the process this one upgraded (empty otherwise).
    inherited: upgrade::Inherited,
    shutdown: watch::Receiver<bool>,
    /// A hash of the running config's files (paths and contents): a file-triggered reload
    /// whose files hash the same does nothing.
    sources_hash: u64,
}

impl App {
    fn start_listener(&mut self, l: &crate::config::model::Listener) -> Result<(), String> {
        let tl = match self.inherited.take(l.addr) {
            Some(tl) => tl,
            None => bind_listeners(l.addr)
                .map_err(|e| format!("{}: cannot listen on {}: {e}", l.origin, l.addr))?,
        };
        self.listen_fds.insert(
            l.addr,
            tl.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect(),
        );
        let tls = self.shared.load().front_tls.contains_key(&l.addr);
        tracing::info!(
            "listening on {}{} ({})",
            l.addr,
            if tls { " with TLS" } else { "" },
            l.origin
        );
        let tasks = self.serve_all(tl, l.addr);
        self.listeners.insert(l.addr, tasks);
        Ok(())
    }

    /// One accept task per listening socket of `addr`.
    fn serve_all(&self, tl: Vec<TcpListener>, addr: SocketAddr) -> Vec<JoinHandle<()>> {
        tl.into_iter()
            .map(|l| {
                tokio::spawn(crate::server::serve(
                    l,
                    addr,
                    self.shared.clone(),
                    self.shutdown.clone(),
                ))
            })
            .collect()
    }

    /// SIGUSR2: starts the binary again with this process's arguments and hands it the
    /// listening sockets ([`upgrade`]). True when the new process serves (this one then
    /// drains and exits); on failure this one goes on serving.
    async fn upgrade(&mut self) -> bool {
        let Ok(exe) = std::env::current_exe() else {
            tracing::error!("upgrade: cannot find this process's binary");
            return false;
        };
        // After a package upgrade the file at that path is the new binary (the running one
        // shows as "(deleted)").
        let exe = std::path::PathBuf::from(
            exe.to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string(),
        );
        let sockets: Vec<(SocketAddr, std::os::fd::RawFd)> = self
            .listen_fds
            .iter()
            .flat_map(|(a, fds)| fds.iter().map(move |f| (*a, *f)))
            .collect();
        tracing::info!(
            "SIGUSR2: upgrading: starting {} with {} listening socket(s)",
            exe.display(),
            sockets.len()
        );
        match upgrade::hand_over(exe, sockets).await {
            Ok(pid) => {
                tracing::info!(
                    "upgrade: pid {pid} serves; this process stops accepting and drains"
                );
                true
            }
            Err(e) => {
                tracing::error!("upgrade failed, this process goes on serving: {e}");
                false
            }
        }
    }

    /// Reloads the config; on any error the running snapshot stays. This is exactly the
    /// code of `balancerd check` plus the snapshot build.
    /// Reloads the config. `force` (SIGHUP) reloads even when no file changed, so that the
    /// access log is reopened for logrotate; a file-triggered reload of unchanged files does
    /// nothing.
    fn reload(&mut self, why: &str, force: bool) {
        let loaded = config::load(&self.path, &self.opts);
        let fail = |detail: String| {
            tracing::error!(
                "reload ({why}) of {} failed; keeping the running config:\n{detail}",
                self.path.display()
            );
            STATS.reloads_failed.fetch_add(1, Relaxed);
            if let Ok(mut r) = STATS.last_reload.lock() {
                *r = ReloadResult {
                    at: Some(SystemTime::now()),
                    ok: false,
                    detail,
                };
            }
        };
        let Some(cfg) = loaded.config else {
            let detail: String = loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == config::diag::Severity::Error)
                .map(|d| d.render())
                .collect();
            fail(detail);
            return;
        };
        let hash = sources_hash(&cfg.sources);
        if !force && hash == self.sources_hash {
            tracing::info!("reload ({why}): the config files are unchanged; nothing to do");
            return;
        }
        let prev = self.shared.load_full();
        let snap = match Snapshot::build(cfg, Some(&prev)) {
            Ok(s) => s,
            Err(e) => {
                fail(e);
                return;
            }
        };
        // New listeners are bound before anything else changes.
        let new_addrs: BTreeSet<SocketAddr> = snap.listeners.iter().map(|l| l.addr).collect();
        let mut fresh = Vec::new();
        for l in &snap.listeners {
            if !self.listeners.contains_key(&l.addr) {
                match bind_listeners(l.addr) {
                    Ok(tl) => fresh.push((l.addr, tl)),
                    Err(e) => {
                        fail(format!("{}: cannot listen on {}: {e}", l.origin, l.addr));
                        return;
                    }
                }
            }
        }
        let report = change_report(&prev, &snap);
        self.shared.store(Arc::new(snap));
        self.sources_hash = hash;
        for (addr, tl) in fresh {
            tracing::info!("listening on {addr} (added by reload)");
            self.listen_fds.insert(
                addr,
                tl.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect(),
            );
            let tasks = self.serve_all(tl, addr);
            self.listeners.insert(addr, tasks);
        }
        let gone: Vec<SocketAddr> = self
            .listeners
            .keys()
            .filter(|a| !new_addrs.contains(a))
            .copied()
            .collect();
        for a in gone {
            self.listen_fds.remove(&a);
            if let Some(tasks) = self.listeners.remove(&a) {
                tasks.iter().for_each(JoinHandle::abort);
                tracing::info!("stopped listening on {a} (removed by reload)");
            }
        }
        STATS.reloads_ok.fetch_add(1, Relaxed);
        STATS.generation.fetch_add(1, Relaxed);
        tracing::info!("reloaded {} ({why}): {report}", self.path.display());
        if let Ok(mut r) = STATS.last_reload.lock() {
            *r = ReloadResult {
                at: Some(SystemTime::now()),
                ok: true,
                detail: report,
            };
        }
    }
}

/// One line: tenants, routes and members added, removed and changed.
pub fn change_report(old: &Snapshot, new: &Snapshot) -> String {
    fn routes(s: &Snapshot) -> BTreeSet<String> {
        s.main
            .routes
            .iter()
            .chain(s.vhosts.iter().flat_map(|v| v.host.routes.iter()))
            .map(|r| format!("{} -> {}", r.matcher.as_str(), r.target_text))
            .collect()
    }
    fn tenants(s: &Snapshot) -> BTreeSet<String> {
        s.main
            .routes
            .iter()
            .filter(|r| r.target != crate::config::model::RouteTarget::Exclude)
            .filter_map(|r| r.tenant().map(str::to_string))
            .collect()
    }
    fn members(s: &Snapshot) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for b in &s.balancers {
            for x in &b.members {
                let p = &x.spec.params;
                m.insert(
                    format!("{} {}", b.full_name, x.name),
                    format!(
                        "route={} status={} lf={} lbset={}",
                        p.route,
                        p.status.letters(),
                        p.loadfactor,
                        p.lbset
                    ),
                );
            }
        }
        m
    }
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> (Vec<String>, Vec<String>) {
        (
            b.difference(a).cloned().collect(),
            a.difference(b).cloned().collect(),
        )
    };
    let (ta, tr) = diff(&tenants(old), &tenants(new));
    let (ra, rr) = diff(&routes(old), &routes(new));
    let (mo, mn) = (members(old), members(new));
    let ok: BTreeSet<String> = mo.keys().cloned().collect();
    let nk: BTreeSet<String> = mn.keys().cloned().collect();
    let (ma, mr) = diff(&ok, &nk);
    let mc: Vec<String> = ok
        .intersection(&nk)
        .filter(|k| mo[*k] != mn[*k])
        .cloned()
        .collect();
    if ta.is_empty()
        && tr.is_empty()
        && ra.is_empty()
        && rr.is_empty()
        && ma.is_empty()
        && mr.is_empty()
        && mc.is_empty()
    {
        return "no routing changes".into();
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "tenants +[{}] -[{}]; routes +[{}] -[{}]; members +[{}] -[{}] ~[{}]",
        list(&ta),
        list(&tr),
        list(&ra),
        list(&rr),
        list(&ma),
        list(&mr),
        list(&mc)
    )
}

/// What a change must touch to start a reload: a file the config was read from, a file an
/// `Include` wildcard matches, or anything under a folder `Include`d whole.
struct WatchTargets {
    sources: BTreeSet<PathBuf>,
    patterns: Vec<glob::Pattern>,
    folders: Vec<PathBuf>,
}

impl WatchTargets {
    fn of(c: &config::Config) -> Self {
        let mut patterns = Vec::new();
        let mut folders = Vec::new();
        for p in &c.include_patterns {
            let p = lexical(p);
            if crate::config::has_wildcard(&p.to_string_lossy()) {
                if let Ok(g) = glob::Pattern::new(&p.to_string_lossy()) {
                    patterns.push(g);
                }
            } else {
                folders.push(p);
            }
        }
        WatchTargets {
            sources: c.sources.iter().map(|p| lexical(p)).collect(),
            patterns,
            folders,
        }
    }

    /// True when a change to `path` may change the config: a config file, a file an
    /// `Include` matches, or a link, a folder or a removed name (a Kubernetes ConfigMap swaps
    /// a `..data` link; a file may be reached through it). A regular file that is none of
    /// these (the process's own log beside its config) does not matter. What passes here is
    /// loaded, and reloads only if the config's files changed.
    fn matters(&self, path: &Path) -> bool {
        let path = lexical(path);
        if self.sources.contains(&path)
            || self.patterns.iter().any(|g| g.matches_path(&path))
            || self.folders.iter().any(|f| path.starts_with(f))
        {
            return true;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) => !m.file_type().is_file(),
            Err(_) => true,
        }
    }
}

/// `path` without `.` components (the watcher names `./a.conf` what the config read as
/// `a.conf`).
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// A hash of the config's files: their paths and contents (a file that cannot be read
/// hashes as empty, which differs from any content it had).
fn sources_hash(sources: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut sorted: Vec<&PathBuf> = sources.iter().collect();
    sorted.sort();
    for p in sorted {
        p.hash(&mut h);
        std::fs::read(p).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

/// The files and folders whose changes trigger a reload.
fn watch_set(cfg_sources: &[PathBuf], dirs: &[PathBuf]) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let mut parents = BTreeSet::new();
    for s in cfg_sources {
        if let Some(p) = s.parent() {
            parents.insert(if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            });
        }
    }
    (parents, dirs.iter().cloned().collect())
}

/// What a config file change looks like to inotify: content written, a file created,
/// removed or renamed in or out (editors save by renaming), permissions changed, or the
/// watched folder itself removed or moved. Reads and opens are not changes.
fn change_mask() -> inotify::WatchMask {
    use inotify::WatchMask as M;
    M::MODIFY
        | M::CLOSE_WRITE
        | M::CREATE
        | M::DELETE
        | M::MOVED_FROM
        | M::MOVED_TO
        | M::ATTRIB
        | M::DELETE_SELF
        | M::MOVE_SELF
}

/// The folders under `root` (itself included), without following links; at most
/// `MAX_WATCHED_DIRS`, so a mistaken `/` cannot exhaust the inotify watch limit.
fn dirs_under(root: &Path) -> Vec<PathBuf> {
    const MAX_WATCHED_DIRS: usize = 4096;
    let mut found = vec![root.to_path_buf()];
    let mut next = 0;
    while next < found.len() && found.len() < MAX_WATCHED_DIRS {
        if let Ok(entries) = std::fs::read_dir(&found[next]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    found.push(e.path());
                }
            }
        }
        next += 1;
    }
    found.truncate(MAX_WATCHED_DIRS);
    found
}

/// Changes to the config's files, read from inotify through the runtime's reactor.
///
/// Not `notify`'s watcher: it reads inotify on a thread of its own, and a second thread
/// makes the kernel count references on the shared file table in every socket call
/// (`fput` fell from 0.49% to 0.11% of the proxy's perf samples under small GETs). Read on
/// the runtime, a `--threads 1` process is single-threaded.
struct ConfigWatch {
    events: inotify::EventStream<Vec<u8>>,
    /// The folders watched with everything under them, by watch: a folder created in one
    /// gets a watch of its own.
    trees: HashMap<inotify::WatchDescriptor, PathBuf>,
    /// Every watched folder, by watch (to name the file an event is about).
    folders: HashMap<inotify::WatchDescriptor, PathBuf>,
}

impl ConfigWatch {
    /// Watches the folders holding config files, and every folder under the `Include`d
    /// ones. `None` (logged) when inotify is unavailable: reloads then need `SIGHUP`.
    fn start(parents: &BTreeSet<PathBuf>, dirs: &BTreeSet<PathBuf>) -> Option<ConfigWatch> {
        let events = inotify::Inotify::init()
            .and_then(|i| i.into_event_stream(vec![0u8; 4096]))
            .map_err(|e| tracing::warn!("file watching unavailable: {e}; reload with SIGHUP"))
            .ok()?;
        let mut watches = events.watches();
        let mut folders = HashMap::new();
        for p in parents {
            match watches.add(p, change_mask()) {
                Ok(wd) => {
                    folders.insert(wd, p.clone());
                }
                Err(e) => tracing::warn!("cannot watch {}: {e}", p.display()),
            }
        }
        let mut w = ConfigWatch {
            events,
            trees: HashMap::new(),
            folders,
        };
        for d in dirs {
            w.watch_tree(d);
        }
        Some(w)
    }

    /// Watches `root` and every folder under it.
    fn watch_tree(&mut self, root: &Path) {
        let mut watches = self.events.watches();
        for dir in dirs_under(root) {
            match watches.add(&dir, change_mask()) {
                Ok(wd) => {
                    self.folders.insert(wd.clone(), dir.clone());
                    self.trees.insert(wd, dir);
                }
                Err(e) => tracing::debug!("cannot watch {}: {e}", dir.display()),
            }
        }
    }

    /// Waits for the next change: `Some(Some(path))` names the file or folder it is about,
    /// `Some(None)` a change to a watched folder itself, `None` a broken watch (logged).
    async fn changed(&mut self) -> Option<Option<PathBuf>> {
        use futures_core::Stream;
        let next =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.events).poll_next(cx)).await;
        match next {
            Some(Ok(ev)) => {
                use inotify::EventMask as E;
                if ev.mask.contains(E::ISDIR)
                    && ev.mask.intersects(E::CREATE | E::MOVED_TO)
                    && let (Some(parent), Some(name)) = (self.trees.get(&ev.wd), &ev.name)
                {
                    let dir = parent.join(name);
                    self.watch_tree(&dir);
                }
                Some(match (self.folders.get(&ev.wd), &ev.name) {
                    (Some(dir), Some(name)) => Some(dir.join(name)),
                    _ => None,
                })
            }
            Some(Err(e)) => {
                tracing::warn!("file watching failed: {e}; reload with SIGHUP");
                None
            }
            None => None,
        }
    }
}

/// Writes the pid file, if one is configured; removed on drop.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn write(p: Option<&Path>) -> PidFile {
        if let Some(p) = p
            && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
        {
            tracing::warn!("cannot write PidFile {}: {e}", p.display());
            return PidFile(None);
        }
        PidFile(p.map(Path::to_path_buf))
    }
}

impl PidFile {
    /// Leaves the files in place at exit (a new process owns them after an upgrade).
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(ctl::socket_path(p));
        }
    }
}

/// The signals the server handles, registered before anything listens: a SIGHUP that
/// arrives early must reload, not kill the process (SIGHUP's default action).
struct Signals(
    #[cfg(unix)]
    Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
    #[cfg(not(unix))] Option<()>,
);

impl Signals {
    #[cfg(unix)]
    fn register() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::user_defined2()),
        ) {
            (Ok(h), Ok(t), Ok(i), Ok(u)) => Signals(Some((h, t, i, u))),
            _ => Signals(None),
        }
    }

    #[cfg(not(unix))]
    fn register() -> Signals {
        Signals(None)
    }
}

/// Raises the soft limit on open files to the hard one, as HAProxy does for its `maxconn`:
/// every client connection and member connection is a descriptor, and the usual soft limit
/// (1,024 under systemd and most shells) would refuse connections long before memory runs
/// out. Returns the limit in force.
fn raise_open_files() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid `rlimit` for getrlimit to fill and setrlimit to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Serves `config` until a stop signal.
pub async fn serve(config: config::Config, path: PathBuf, opts: LoadOptions) -> i32 {
    let signals = Signals::register();
    let open_files = raise_open_files();
    tracing::debug!("open-file limit: {open_files}");
    let (sources, dirs) = (config.sources.clone(), config.watch_dirs.clone());
    let mut targets = WatchTargets::of(&config);
    let snap = match Snapshot::build(config, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("balancerd: {e}");
            return 1;
        }
    };
    if snap.listeners.is_empty() {
        eprintln!(
            "balancerd: {}: no Listen directive, nothing to serve",
            path.display()
        );
        return 1;
    }
    let grace = snap.server.graceful_timeout;
    // Started by an upgrade: the old process's listening sockets.
    let inherited = upgrade::Inherited::from_env();
    let shared: Shared = crate::runtime::control::share(snap);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut app = App {
        shared: shared.clone(),
        path,
        opts,
        listeners: HashMap::new(),
        listen_fds: HashMap::new(),
        inherited,
        shutdown: stop_rx,
        sources_hash: sources_hash(&sources),
    };
    let ls = shared.load().listeners.clone();
    for l in &ls {
        if let Err(e) = app.start_listener(l) {
            eprintln!("balancerd: {e}");
            return 1;
        }
    }
    // Serving: the PidFile and the admin socket (`balancerd ctl`) beside it name this
    // process (after an upgrade, from now on: the old process leaves them alone).
    let mut pid_file = PidFile::write(shared.load().server.pid_file.as_deref());
    if let Some(p) = shared.load().server.pid_file.as_deref() {
        tokio::spawn(ctl::serve(ctl::socket_path(p), shared.clone()));
    }
    app.inherited.ready();
    upgrade::notify_systemd(&format!("READY=1\nMAINPID={}", std::process::id()));
    let hc = tokio::spawn(crate::runtime::health::run(shared.clone()));
    let (mut parents, mut wdirs) = watch_set(&sources, &dirs);
    let mut watcher = ConfigWatch::start(&parents, &wdirs);
    let stop = wait_loop(
        &mut app,
        &mut watcher,
        &mut parents,
        &mut wdirs,
        &mut targets,
        signals,
    )
    .await;
    // Not ready from now on; with `ShutdownDelay`, go on serving that long (probes see 503
    // and move traffic away), then drain. After an upgrade the new process serves already:
    // stop accepting at once, and leave the PidFile and admin socket to it.
    STATS.stopping.store(true, Relaxed);
    if stop == Stop::Signal {
        upgrade::notify_systemd("STOPPING=1");
    }
    let delay = app.shared.load().server.shutdown_delay;
    if stop == Stop::Upgraded {
        pid_file.disarm();
    } else if !delay.is_zero() {
        tracing::info!(
            "stopping: readiness is 503; serving {delay:?} more before draining (ShutdownDelay)"
        );
        tokio::time::sleep(delay).await;
    }
    // Draining.
    hc.abort();
    let _ = stop_tx.send(true);
    for (_, tasks) in app.listeners.drain() {
        tasks.iter().for_each(JoinHandle::abort);
    }
    let t0 = std::time::Instant::now();
    tracing::info!(
        "draining: {} connections open, grace {:?}",
        STATS.conns.load(Relaxed),
        grace
    );
    while (STATS.conns.load(Relaxed) > 0 || STATS.tunnels.load(Relaxed) > 0) && t0.elapsed() < grace
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = STATS.conns.load(Relaxed);
    if left > 0 {
        tracing::warn!("grace period over with {left} connections still open; exiting");
    } else {
        tracing::info!("all connections finished; exiting");
    }
    0
}

#[cfg(unix)]
async fn wait_loop(
    app: &mut App,
    watcher: &mut Option<ConfigWatch>,
    parents: &mut BTreeSet<PathBuf>,
    wdirs: &mut BTreeSet<PathBuf>,
    targets: &mut WatchTargets,
    signals: Signals,
) -> Stop {
    let Signals(Some((mut hup, mut term, mut int, mut usr2))) = signals else {
        let _ = tokio::signal::ctrl_c().await;
        return Stop::Signal;
    };
    let debounce = Duration::from_millis(250);
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let file_event = async {
            match watcher.as_mut() {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        let timer = async {
            match due {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup.recv() => app.reload("SIGHUP", true),
            changed = file_event => {
                match changed {
                    // Only a config file, or a file an Include matches, starts a reload (the
                    // process's own log in the config folder must not).
                    Some(path) if path.as_deref().is_none_or(|p| targets.matters(p)) => {
                        due = Some(tokio::time::Instant::now() + debounce);
                    }
                    Some(_) => {}
                    None => *watcher = None,
                }
                continue;
            }
            _ = timer => {
                due = None;
                app.reload("config files changed", false);
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping gracefully"); return Stop::Signal; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping gracefully"); return Stop::Signal; }
            _ = usr2.recv() => {
                if app.upgrade().await {
                    return Stop::Upgraded;
                }
                continue;
            }
        }
        // Includes may have changed: watch what the config is made of now.
        let cfg = config::load(&app.path, &app.opts).config;
        if let Some(c) = cfg {
            let (p, d) = watch_set(&c.sources, &c.watch_dirs);
            *targets = WatchTargets::of(&c);
            if p != *parents || d != *wdirs {
                *watcher = ConfigWatch::start(&p, &d);
                *parents = p;
                *wdirs = d;
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_loop(
    _app: &mut App,
    _w: &mut Option<ConfigWatch>,
    _p: &mut BTreeSet<PathBuf>,
    _d: &mut BTreeSet<PathBuf>,
    _t: &mut WatchTargets,
    _s: Signals,
) -> Stop {
    let _ = tokio::signal::ctrl_c().await;
    Stop::Signal
}

/// Why the serving loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM or SIGINT: drain and exit.
    Signal,
    /// A new process took over the listening sockets (SIGUSR2): drain and exit, leaving
    /// the PidFile and admin socket to it.
    Upgraded,
}

/// `balancerd upgrade`: asks the running instance (its `PidFile`) to start the binary again
/// and hand it the listening sockets (SIGUSR2), then waits until the PidFile names the new
/// process. Exit 0 when it does; 1 when no new process took over (the old one goes on
/// serving; its log says why).
pub fn signal_upgrade(path: &Path, opts: &LoadOptions) -> i32 {
    let Some(cfg) = load_or_report(path, opts) else {
        eprintln!(
            "balancerd upgrade: {} has errors; a new process would not start",
            path.display()
        );
        return 1;
    };
    let Some(pid_file) = cfg.server.pid_file else {
        eprintln!(
            "balancerd upgrade: {} sets no PidFile, so the running instance cannot be found; send it SIGUSR2",
            path.display()
        );
        return 1;
    };
    let read = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    };
    let Some(old) = read() else {
        eprintln!(
            "balancerd upgrade: cannot read a pid from {}",
            pid_file.display()
        );
        return 1;
    };
    if let Err(e) = send_signal(old, libc::SIGUSR2) {
        eprintln!("balancerd upgrade: cannot signal pid {old}: {e}");
        return 1;
    }
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(35) {
        if let Some(new) = read().filter(|p| *p != old) {
            println!("upgraded: pid {old} -> {new} (pid {old} drains and exits)");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("balancerd upgrade: no new process took over; pid {old} still serves (see its log)");
    1
}

/// `balancerd reload`: signals the running instance found through its `PidFile`.
pub fn signal_reload(path: &Path, opts: &LoadOptions) -> i32 {
    let Some(cfg) = load_or_report(path, opts) else {
        eprintln!(
            "balancerd reload: {} has errors; the running instance would keep its config",
            path.display()
        );
        return 1;
    };
    let Some(pid_file) = cfg.server.pid_file else {
        eprintln!(
            "balancerd reload: {} sets no PidFile, so the running instance cannot be found; send it SIGHUP",
            path.display()
        );
        return 1;
    };
    let pid = match std::fs::read_to_string(&pid_file).map(|s| s.trim().parse::<u32>()) {
        Ok(Ok(p)) => p,
        _ => {
            eprintln!(
                "balancerd reload: cannot read a pid from {}",
                pid_file.display()
            );
            return 1;
        }
    };
    match send_signal(pid, libc::SIGHUP) {
        Ok(()) => {
            println!("sent SIGHUP to balancerd (pid {pid})");
            0
        }
        Err(e) => {
            eprintln!("balancerd reload: could not signal pid {pid}: {e}");
            1
        }
    }
}

/// Sends `sig` to every process of the process group `pgid` (tests stop a real httpd and
/// its worker processes this way).
pub fn send_signal_group(pgid: u32, sig: i32) -> std::io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; it only reads its two integers.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `sig` to `pid` (no dependency on a `kill` binary being installed).
pub fn send_signal(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; it only reads its two integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
