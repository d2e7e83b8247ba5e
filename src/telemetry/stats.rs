//! Process-wide counters for `/server-status` and the metrics page. Plain atomics, updated
//! on the request path without locks.

use std::sync::LazyLock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::time::{Instant, SystemTime};

/// The result of the last reload.
#[derive(Debug, Clone, Default)]
pub struct ReloadResult {
    /// When it ran.
    pub at: Option<SystemTime>,
    /// True when the new config was taken.
    pub ok: bool,
    /// What changed, or the diagnostics that kept the old config.
    pub detail: String,
}

/// The counters.
#[derive(Debug)]
pub struct Stats {
    /// Process start.
    pub started: Instant,
    /// Wall-clock start.
    pub started_wall: SystemTime,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests by status class (1xx..5xx at 1..=5).
    pub by_class: [AtomicU64; 6],
    /// Response body bytes sent.
    pub bytes: AtomicU64,
    /// Body bytes moved socket to socket (splice): request bodies, response bodies.
    pub spliced: [AtomicU64; 2],
    /// Sum of request durations, µs.
    pub duration_us: AtomicU64,
    /// Requests in progress.
    pub in_flight: AtomicI64,
    /// Open client connections.
    pub conns: AtomicI64,
    /// Open upgraded tunnels (WebSocket).
    pub tunnels: AtomicI64,
    /// Client connections accepted.
    pub conns_total: AtomicU64,
    /// Failovers (a request moved to another member).
    pub failovers: AtomicU64,
    /// Reloads that succeeded / failed.
    pub reloads_ok: AtomicU64,
    /// Reloads that kept the old config.
    pub reloads_failed: AtomicU64,
    /// Config generation (1 at start, +1 per successful reload).
    pub generation: AtomicU64,
    /// The last reload.
    pub last_reload: Mutex<ReloadResult>,
    /// Stopping (SIGTERM): the readiness handler answers 503 from this moment on.
    pub stopping: AtomicBool,
}

/// The process's counters.
pub static STATS: LazyLock<Stats> = LazyLock::new(|| Stats {
    started: Instant::now(),
    started_wall: SystemTime::now(),
    requests: AtomicU64::new(0),
    by_class: Default::default(),
    bytes: AtomicU64::new(0),
    spliced: Default::default(),
    duration_us: AtomicU64::new(0),
    in_flight: AtomicI64::new(0),
    conns: AtomicI64::new(0),
    tunnels: AtomicI64::new(0),
    conns_total: AtomicU64::new(0),
    failovers: AtomicU64::new(0),
    reloads_ok: AtomicU64::new(0),
    reloads_failed: AtomicU64::new(0),
    generation: AtomicU64::new(1),
    last_reload: Mutex::new(ReloadResult::default()),
    stopping: AtomicBool::new(false),
});
