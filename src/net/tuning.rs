//! Socket options of client and member connections, chosen by measurement (README,
//! "Socket options"), and overridable from the command line to re-measure or tune a site.
//!
//! Defaults: `TCP_NODELAY` on both sides (a proxy writes whole heads; Nagle only delays
//! them), kernel-autotuned buffer sizes (a fixed size turns autotuning off and measured no
//! faster for 100 MB bodies), one listening socket per address (`SO_REUSEPORT` listeners
//! measured no better with tokio's work-stealing workers), and the system's TCP congestion
//! control unless `--congestion` names one (README: on a host whose default is `bbr` without
//! an `fq` qdisc, the kernel paces every socket with timers; `cubic` on the proxy's own legs
//! took 20 concurrent 100 MB GETs from ~0.45x to ~0.9x the direct rate).

use std::sync::OnceLock;

/// The socket options in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketTuning {
    /// `TCP_NODELAY` on client and member connections.
    pub nodelay: bool,
    /// `SO_SNDBUF` and `SO_RCVBUF` in bytes; `None` leaves the kernel's autotuning on.
    pub buffer: Option<usize>,
    /// Listening sockets per address (`SO_REUSEPORT` when more than one).
    pub listeners_per_addr: usize,
    /// `TCP_CONGESTION` for client and member connections; `None` keeps the system's.
    pub congestion: Option<String>,
}

impl Default for SocketTuning {
    fn default() -> Self {
        SocketTuning {
            nodelay: true,
            buffer: None,
            listeners_per_addr: 1,
            congestion: None,
        }
    }
}

static TUNING: OnceLock<SocketTuning> = OnceLock::new();

/// Installs the options, once at start-up (later calls are ignored).
pub fn set(t: SocketTuning) {
    let _ = TUNING.set(t);
}

/// The options in force.
pub fn get() -> &'static SocketTuning {
    TUNING.get_or_init(SocketTuning::default)
}

/// Applies the per-connection options to an accepted or connected stream.
pub fn apply(s: &tokio::net::TcpStream) {
    let t = get();
    let _ = s.set_nodelay(t.nodelay);
    if let Some(b) = t.buffer {
        let r = socket2::SockRef::from(s);
        let _ = r.set_send_buffer_size(b);
        let _ = r.set_recv_buffer_size(b);
    }
}

/// Applies `--congestion` to a socket before it connects or listens. It must come first:
/// a connection born under `bbr` keeps the kernel's per-socket pacing timers after a switch
/// (`bbr` turns pacing on when it starts and nothing turns it off), and accepted connections
/// take the listening socket's algorithm.
pub fn apply_congestion(s: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    match &get().congestion {
        Some(cc) => set_congestion(s, cc),
        None => Ok(()),
    }
}

/// Checks at start-up that the kernel lets this process use `algo`, so a typo stops the
/// proxy with a reason instead of failing every listening socket and connection.
pub fn check_congestion(algo: &str) -> Result<(), String> {
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("cannot open a probe socket: {e}"))?;
    set_congestion(&probe, algo).map_err(|e| {
        let list = |f: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/{f}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        };
        format!(
            "the kernel refused it ({e}); allowed for this process: {} \
             (net.ipv4.tcp_allowed_congestion_control); available: {}",
            list("tcp_allowed_congestion_control"),
            list("tcp_available_congestion_control")
        )
    })
}

/// Sets `TCP_CONGESTION` on one socket.
fn set_congestion(s: &impl std::os::fd::AsFd, algo: &str) -> std::io::Result<()> {
    socket2::SockRef::from(s).set_tcp_congestion(algo.as_bytes())
}
