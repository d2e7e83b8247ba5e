//! Socket options of client and member connections, chosen by measurement (README,
//! "Socket options"), and overridable from the command line to re-measure or tune a site.
//!
//! Defaults: `TCP_NODELAY` on both sides (a proxy writes whole heads; Nagle only delays
//! them), kernel-autotuned buffer sizes (a fixed size turns autotuning off and measured no
//! faster for 100 MB bodies), one listening socket per address (`SO_REUSEPORT` listeners
//! measured no better with tokio's work-stealing workers).

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
}

impl Default for SocketTuning {
    fn default() -> Self {
        SocketTuning {
            nodelay: true,
            buffer: None,
            listeners_per_addr: 1,
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
