//! Start-up and lifecycle: load the config, build the first snapshot, bind the listeners,
//! serve; `SIGHUP` reloads (the same code as `check`; a broken config keeps the running
//! one), `SIGTERM`/`SIGINT` stop.
//!
//! ```text
//!  load ──ok──▶ serve ◀──────────────┐
//!   │             │ SIGHUP            │ swap snapshot (member state carried over)
//!   ✗ exit 1      ├──▶ load ──ok──────┘
//!                 │         └─✗──▶ log diagnostics, keep serving the old snapshot
//!                 └ SIGTERM/SIGINT ──▶ exit 0
//! ```

use crate::config::{self, LoadOptions};
use crate::runtime::{Shared, Snapshot};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

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

/// Binds one listener with the socket options a proxy wants.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_tcp_nodelay(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    TcpListener::from_std(sock.into())
}

/// The tokio runtime: `threads` workers, else one per core.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads.filter(|n| *n > 0) {
        b.worker_threads(n);
    }
    b.enable_all().build()
}

/// Serves `config` until a stop signal; reloads `path` on SIGHUP.
pub async fn serve(config: config::Config, path: PathBuf, opts: LoadOptions) -> i32 {
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
    let shared: Shared = Arc::new(ArcSwap::from_pointee(snap));
    let mut tasks = Vec::new();
    for l in shared.load().listeners.iter() {
        match bind(l.addr) {
            Ok(tl) => {
                let tls = shared.load().front_tls.contains_key(&l.addr);
                tracing::info!(
                    "listening on {}{} ({})",
                    l.addr,
                    if tls { " with TLS" } else { "" },
                    l.origin
                );
                tasks.push(tokio::spawn(crate::http::server::serve(
                    tl,
                    l.addr,
                    shared.clone(),
                )));
            }
            Err(e) => {
                eprintln!("{}: error: cannot listen on {}: {e}", l.origin, l.addr);
                return 1;
            }
        }
    }
    wait_for_signals(shared, &path, &opts).await;
    for t in tasks {
        t.abort();
    }
    0
}

#[cfg(unix)]
async fn wait_for_signals(shared: Shared, path: &Path, opts: &LoadOptions) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&shared, path, opts),
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return; }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_shared: Shared, _path: &Path, _opts: &LoadOptions) {
    let _ = tokio::signal::ctrl_c().await;
}

/// Reloads the config; on any error the running snapshot stays.
pub fn reload(shared: &Shared, path: &Path, opts: &LoadOptions) {
    let loaded = config::load(path, opts);
    for d in &loaded.diagnostics {
        tracing::warn!("{}", d.render().trim_end());
    }
    match loaded.config {
        Some(c) => {
            let prev = shared.load_full();
            match Snapshot::build(c, Some(&prev)) {
                Ok(snap) => {
                    shared.store(Arc::new(snap));
                    tracing::info!("reloaded {}", path.display());
                }
                Err(e) => tracing::error!(
                    "reload of {} failed: {e}; keeping the running config",
                    path.display()
                ),
            }
        }
        None => tracing::error!(
            "reload of {} failed; keeping the running config",
            path.display()
        ),
    }
}
