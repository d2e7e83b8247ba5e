//! Client connections: accept, TCP options, and hyper's HTTP/1.1 server with the limits
//! and timeouts of the current snapshot.
//!
//! Timeouts: hyper's header-read timer runs from the moment it waits for a request head, so
//! it bounds both the idle time between keep-alive requests and a slow header (slowloris).
//! It is set to `KeepAliveTimeout`.

use crate::http::handler::{ConnInfo, handle};
use crate::runtime::Shared;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            serve_conn(stream, peer, shared).await;
        });
    }
}

/// Serves one client connection.
pub async fn serve_conn(stream: TcpStream, peer: std::net::SocketAddr, shared: Shared) {
    let _ = stream.set_nodelay(true);
    let snap = shared.load();
    let s = &snap.server;
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(s.keepalive_timeout)
        .keep_alive(s.keepalive)
        .max_buf_size(
            (s.limit_request_line as usize
                + s.limit_request_fields as usize * s.limit_request_field_size as usize)
                .clamp(8192, 4 << 20),
        );
    if s.limit_request_fields > 0 {
        b.max_headers(s.limit_request_fields as usize + 1);
    }
    drop(snap);
    let (io, verdicts) = crate::net::framing::Tracked::new(stream);
    let info = Arc::new(ConnInfo::new(peer, verdicts));
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let info = info.clone();
        async move {
            let snap = shared.load_full();
            Ok::<_, Infallible>(handle(req, &info, &snap).await)
        }
    });
    if let Err(e) = b
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await
    {
        tracing::debug!(client = %peer, "connection ended: {e}");
    }
}
