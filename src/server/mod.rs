//! Client connections: accept, TCP options, TLS (certificate by SNI from the current
//! snapshot, ALPN), then balancerd's own HTTP/1.1 server ([`h1`], plain and TLS clients) or
//! its HTTP/2 server ([`http2`], ALPN `h2`), with the limits and timeouts of the current
//! snapshot.
//!
//! Timeouts: a TLS handshake must finish within 10 s; [`h1`] has the HTTP/1.1 ones
//! (KeepAliveTimeout, RequestReadTimeout); an HTTP/2 connection with no stream open for
//! KeepAliveTimeout gets GOAWAY.
//!
//! Layer 11. Owns: accepting, TLS handshakes, balancerd's HTTP/1.1 server ([`h1`]) and
//! HTTP/2 server ([`http2`]); both hand each request to `proxy::handler::handle` and never
//! look inside it.
//!
//! May import: every layer below it (`util` … `proxy`).

pub mod h1;
pub mod http2;
pub mod release;

use crate::net::client_io;
use crate::proxy::handler::ConnInfo;
use crate::runtime::Shared;
use crate::server::release::Guarded;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the task is dropped or shutdown is signalled; on shutdown,
/// every connection finishes its in-flight request and closes (idle ones at once).
pub async fn serve(listener: TcpListener, addr: SocketAddr, shared: Shared, shutdown: Shutdown) {
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        crate::net::tuning::apply(&stream);
        let tls = shared.load().front_tls.get(&addr).cloned();
        // The address the client connected to, for `ctl release` (a VIP leaving this node).
        let local_ip = stream.local_addr().map_or(addr.ip(), |a| a.ip());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        // One task per connection, sized for what it serves: a plain connection's task does
        // not carry the TLS handshake and HTTP/2 states.
        let reg = release::Registration::new(local_ip);
        let Some(cfg) = tls else {
            let (rd, wr) = client_io::split_tcp(stream);
            let info = ConnInfo::h1(peer).on_port(addr.port());
            let serve = h1::serve(rd, wr, info, shared, shutdown);
            tokio::spawn(Guarded::new(serve, reg, fd, ConnCount::open()));
            continue;
        };
        let serve = serve_tls(stream, cfg, peer, addr.port(), shared, shutdown);
        tokio::spawn(Guarded::new(serve, reg, fd, ConnCount::open()));
    }
}

/// A TLS connection: the handshake (bounded in time), then HTTP/2 or HTTP/1.1 by ALPN.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    peer: SocketAddr,
    port: u16,
    shared: Shared,
    shutdown: Shutdown,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    // Boxed: the handshake's state (kilobytes) is freed when it ends instead of staying in
    // the connection's task for its whole life.
    let handshake = Box::pin(tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT,
        acceptor.accept(stream),
    ));
    // Taken out of the result at once: a `match` around the serving would keep the stream's
    // room (a kilobyte) twice in the connection's state.
    let s = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "TLS handshake timed out");
            return;
        }
    };
    let (s, h2, names) = negotiated(s);
    if h2 {
        let info = ConnInfo::h2(peer).on_port(port).over_tls(names);
        Box::pin(http2::serve(s, info, shared, shutdown)).await;
    } else {
        let (rd, wr) = client_io::split_tls(s);
        let info = ConnInfo::h1(peer).on_port(port).over_tls(names);
        h1::serve(rd, wr, info, shared, shutdown).await;
    }
}

/// A handshaken stream with what was agreed: HTTP/2 by ALPN, and the protocol and cipher by
/// OpenSSL's names. (A plain function: a stream borrowed in the task's body would keep its
/// room there, a kilobyte, after it moved on.)
fn negotiated(
    s: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> (
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    bool,
    Option<(&'static str, &'static str)>,
) {
    let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
    let names = crate::net::tls::openssl_names(s.get_ref().1);
    (s, h2, names)
}

/// Counts open client connections for the status page and metrics.
struct ConnCount;

impl ConnCount {
    fn open() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        crate::telemetry::stats::STATS.conns.fetch_add(1, Relaxed);
        crate::telemetry::stats::STATS
            .conns_total
            .fetch_add(1, Relaxed);
        ConnCount
    }
}

impl Drop for ConnCount {
    fn drop(&mut self) {
        crate::telemetry::stats::STATS
            .conns
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The stop signal every connection watches.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;
