//! Releasing an address that leaves this node: `balancerd ctl release ADDRESS` resets every
//! client connection accepted on `ADDRESS` (the local address the client connected to,
//! such as a keepalived or Pacemaker virtual IP), so clients learn at once that their
//! connection is gone and reconnect to the node that now holds the address, instead of
//! waiting out their own timeouts on a connection nothing will ever answer.
//!
//! Each connection task registers its local IP at accept ([`Registration`]) and races its
//! server against [`Registration::released`]. A release bumps the address's generation and
//! wakes the waiters; a connection accepted before the bump aborts its socket (the client
//! receives a reset) and its task ends. Connections accepted after the release
//! (the address came back) are not touched.
//!
//! Invariants:
//! * A release touches only connections whose local IP is the address, accepted before it.
//! * The socket is reset only while its connection still owns it (the server future is
//!   alive when `released` aborts it; it is dropped right after).
//!
//! May import: what `server` may (`util` … `proxy`); it uses only `util`-level pieces.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex};
use tokio::sync::watch;

#[derive(Default)]
struct Entry {
    /// Open connections on the address.
    open: usize,
    /// Releases so far.
    generation: u64,
}

static ADDRESSES: LazyLock<Mutex<HashMap<IpAddr, Entry>>> = LazyLock::new(Default::default);
/// Bumped at every release: wakes every connection to look at its address's generation.
static SIGNAL: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);
/// Connections reset by releases (for the log and tests).
pub static RESET: AtomicU64 = AtomicU64::new(0);

/// One connection's place in the registry (removed on drop).
pub struct Registration {
    ip: IpAddr,
    generation: u64,
}

impl Registration {
    /// Registers a connection accepted on local address `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let mut map = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(ip).or_default();
        e.open += 1;
        Registration {
            ip,
            generation: e.generation,
        }
    }

    fn is_released(&self) -> bool {
        let map = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&self.ip)
            .is_some_and(|e| e.generation > self.generation)
    }

    /// Waits until the connection's address is released, then arms `fd` (the connection's
    /// socket, still owned by its server future) to be reset when it closes.
    pub async fn released(&self, fd: RawFd) {
        let mut rx = SIGNAL.subscribe();
        loop {
            if self.is_released() {
                break;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
        // Abort the connection now: `connect` with `AF_UNSPEC` makes Linux drop a connected
        // TCP socket with a reset (tcp_disconnect), before the server's halves are dropped
        // (dropping the write half would send a FIN first, and the client would read a
        // clean end instead of a reset).
        let unspec = libc::sockaddr {
            sa_family: libc::AF_UNSPEC as libc::sa_family_t,
            sa_data: [0; 14],
        };
        // The address may already be gone from this host (keepalived removes a VIP before
        // it runs `notify_backup`): then the kernel finds no route for a reset from it, and
        // the client would never hear of it. `IP_TRANSPARENT` (with CAP_NET_ADMIN) lets the
        // reset leave from an address that is not local; without the capability it fails
        // and the reset is sent only while the address is still here.
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `fd` is the socket of the connection this registration belongs to; the
        // caller's server future owns it and is still alive while this future is polled (it
        // is dropped only after this future completes), so the descriptor is open and ours.
        // `one` and `unspec` are valid for the lengths given.
        unsafe {
            let opt = (&one as *const libc::c_int).cast();
            libc::setsockopt(fd, libc::SOL_IP, libc::IP_TRANSPARENT, opt, len);
            libc::setsockopt(fd, libc::SOL_IPV6, libc::IPV6_TRANSPARENT, opt, len);
            libc::connect(
                fd,
                &unspec,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            );
        }
        RESET.fetch_add(1, Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&self.ip) {
            e.open = e.open.saturating_sub(1);
            if e.open == 0 && e.generation == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Releases `ip`: every connection accepted on it so far is reset. Returns how many were
/// open.
pub fn release(ip: IpAddr) -> usize {
    let open = {
        let mut map = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(ip).or_default();
        e.generation += 1;
        e.open
    };
    SIGNAL.send_modify(|g| *g += 1);
    tracing::warn!(address = %ip, "released: resetting {open} client connection(s) accepted on {ip}");
    open
}
