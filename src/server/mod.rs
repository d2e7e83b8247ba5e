//! Client connections: accept, TCP options, TLS (certificate by SNI from the current
//! snapshot, ALPN), then balancerd's own HTTP/1.1 server ([`h1`], plain and TLS clients) or
//! hyper's HTTP/2 server (ALPN `h2`), with the limits and timeouts of the current snapshot.
//!
//! Timeouts: a TLS handshake must finish within 10 s; [`h1`] has the HTTP/1.1 ones
//! (KeepAliveTimeout, RequestReadTimeout); HTTP/2 pings an idle connection every
//! KeepAliveTimeout (at least 5 s).
//!
//! Layer 11. Owns: accepting, TLS handshakes, balancerd's HTTP/1.1 server ([`h1`]) and
//! hyper's HTTP/2 server; both hand each request to `proxy::handler::handle` and never look
//! inside it.
//!
//! May import: every layer below it (`util` … `proxy`).

pub mod h1;
pub mod release;

use crate::net::client_io;
use crate::proxy::handler::{ConnInfo, handle};
use crate::proxy::tunnel::ClientUpgrade;
use crate::runtime::Shared;
use crate::server::release::Guarded;
use crate::upstream::body::ClientBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
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
        Box::pin(serve_http2(s, peer, port, names, shared, shutdown)).await;
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

/// Drives a connection; when shutdown is signalled, asks it to finish gracefully (the
/// in-flight request completes, an idle connection closes) and drives it to the end.
async fn until_shutdown<C, T>(
    conn: C,
    shutdown: &mut Shutdown,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) -> T
where
    C: std::future::Future<Output = T>,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}

/// A request as hyper read it, in the handler's terms.
fn from_hyper(req: http::Request<hyper::body::Incoming>) -> http::Request<ClientBody> {
    let mut req = req.map(ClientBody::Hyper);
    if let Some(on) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() {
        req.extensions_mut().insert(ClientUpgrade::Hyper(on));
    }
    req
}

/// The stop signal every connection watches.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

async fn serve_http2<S>(
    stream: S,
    peer: SocketAddr,
    local_port: u16,
    tls: Option<(&'static str, &'static str)>,
    shared: Shared,
    mut shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let keepalive = shared.load().server.keepalive_timeout;
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .keep_alive_interval(Some(keepalive.max(Duration::from_secs(5))))
        .max_concurrent_streams(256);
    let info = Arc::new(ConnInfo::h2(peer).on_port(local_port).over_tls(tls));
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let info = info.clone();
        async move {
            let snap = shared.load_full();
            let (parts, body) = from_hyper(req).into_parts();
            // Boxed: hyper keeps the service future's slot for the connection's lifetime, so
            // an idle keep-alive connection would otherwise carry the handler's ~6 KiB state.
            Ok::<_, Infallible>(Box::pin(handle(parts, body, None, &info, &snap)).await)
        }
    });
    let conn = b.serve_connection(TokioIo::new(stream), svc);
    let r = until_shutdown(conn, &mut shutdown, |c| c.graceful_shutdown()).await;
    if let Err(e) = r {
        tracing::debug!(client = %peer, "h2 connection ended: {e}");
    }
}
