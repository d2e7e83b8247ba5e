//! Releasing an address that leaves this node: `balancerd ctl release ADDRESS` resets every
//! client connection accepted on `ADDRESS` (the local address the client connected to,
//! such as a keepalived or Pacemaker virtual IP), so clients learn at once that their
//! connection is gone and reconnect to the node that now holds the address, instead of
//! waiting out their own timeouts on a connection nothing will ever answer.
//!
//! Each connection task registers its local IP at accept ([`Registration`]) and races its
//! server against [`Registration::released`]. A release sets the flag of every connection
//! registered on the address and wakes its task, which aborts its socket (the client
//! receives a reset) and ends. Connections accepted after the release (the address came
//! back) are not touched.
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
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, Waker};

/// One connection in the registry: its release flag and the waker of its task.
struct Conn {
    released: Arc<AtomicBool>,
    waker: Option<Waker>,
}

static ADDRESSES: LazyLock<Mutex<HashMap<IpAddr, HashMap<u64, Conn>>>> =
    LazyLock::new(Default::default);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Connections reset by releases (for the log and tests).
pub static RESET: AtomicU64 = AtomicU64::new(0);

/// One connection's place in the registry (removed on drop).
pub struct Registration {
    ip: IpAddr,
    id: u64,
    released: Arc<AtomicBool>,
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<IpAddr, HashMap<u64, Conn>>> {
    ADDRESSES.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registration {
    /// Registers a connection accepted on local address `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let released = Arc::new(AtomicBool::new(false));
        lock().entry(ip).or_default().insert(
            id,
            Conn {
                released: released.clone(),
                waker: None,
            },
        );
        Registration { ip, id, released }
    }

    /// Ready once the connection's address is released. Polled beside the server at every
    /// wake-up of the connection's task, so a poll after the first costs one atomic load
    /// (`registered` remembers that the waker is stored; a release sets the flag and wakes
    /// it).
    pub fn poll_released(&self, cx: &mut Context<'_>, registered: &mut bool) -> Poll<()> {
        if self.released.load(Acquire) {
            return Poll::Ready(());
        }
        if !*registered {
            *registered = true;
            if let Some(c) = lock().get_mut(&self.ip).and_then(|m| m.get_mut(&self.id)) {
                c.waker = Some(cx.waker().clone());
            }
            if self.released.load(Acquire) {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }

    /// Aborts `fd`, the connection's socket (still owned by its server future), with a
    /// reset. Only [`Guarded`] calls it, with the socket of the connection it serves.
    fn reset(&self, fd: RawFd) {
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
        // server future of the `Guarded` that calls this owns it and is alive (it is dropped
        // only with the `Guarded`), so the descriptor is open and ours.
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

pin_project_lite::pin_project! {
    /// A connection's task: its server future, ended when the connection's address is
    /// released (the socket reset first), and `held` (the connection counter), dropped with
    /// it. One plain struct instead of an `async` block around `select!`: the block kept
    /// the captured pieces and a second copy of the server future in the task.
    pub struct Guarded<F, H> {
        #[pin]
        serve: F,
        reg: Registration,
        fd: RawFd,
        registered: bool,
        held: H,
    }
}

impl<F, H> Guarded<F, H> {
    /// `serve` for the connection on `fd`, accepted on the address of `reg`.
    pub fn new(serve: F, reg: Registration, fd: RawFd, held: H) -> Self {
        Guarded {
            serve,
            reg,
            fd,
            registered: false,
            held,
        }
    }
}

impl<F: Future<Output = ()>, H> Future for Guarded<F, H> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.reg.poll_released(cx, this.registered).is_ready() {
            this.reg.reset(*this.fd);
            return Poll::Ready(());
        }
        this.serve.poll(cx)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = lock();
        if let Some(m) = map.get_mut(&self.ip) {
            m.remove(&self.id);
            if m.is_empty() {
                map.remove(&self.ip);
            }
        }
    }
}

/// Releases `ip`: every connection accepted on it so far is reset. Returns how many were
/// open.
pub fn release(ip: IpAddr) -> usize {
    let open = {
        let map = lock();
        let conns = map.get(&ip);
        for c in conns.into_iter().flat_map(|m| m.values()) {
            c.released.store(true, Release);
            if let Some(w) = &c.waker {
                w.wake_by_ref();
            }
        }
        conns.map_or(0, HashMap::len)
    };
    tracing::warn!(address = %ip, "released: resetting {open} client connection(s) accepted on {ip}");
    open
}
