//! Opening a connection to a member: DNS (with `--map-host` overrides), TCP connect with
//! `connectiontimeout`, TCP options and the TLS handshake.

use super::exchange::{MemberConn, MemberIo};
use super::peer::Peer;
use super::pool::PooledConn;
use crate::config::model::Member;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The host name does not resolve (httpd: 500 "DNS lookup failure", no failover).
    Dns(String),
    /// Refused, unreachable or timed out (httpd: 503 and failover).
    Failed(String),
    /// No free connection within `acquire` (`max` reached).
    Acquire,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Dns(s) | ConnectError::Failed(s) => f.write_str(s),
            ConnectError::Acquire => f.write_str("no free connection within the acquire time"),
        }
    }
}

static HOST_MAP: OnceLock<HashMap<String, SocketAddr>> = OnceLock::new();

/// Installs `host:port → address` overrides (from `--map-host`), once at start-up.
pub fn set_host_map(m: HashMap<String, SocketAddr>) {
    let _ = HOST_MAP.set(m);
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Some(m) = HOST_MAP.get()
        && let Some(a) = m.get(&format!("{host}:{port}")).or_else(|| m.get(host))
    {
        return Ok(vec![*a]);
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(it) => {
            let v: Vec<SocketAddr> = it.collect();
            if v.is_empty() {
                Err(ConnectError::Dns(format!("DNS lookup failure for: {host}")))
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(ConnectError::Dns(format!("DNS lookup failure for: {host}"))),
    }
}

/// The first address of a member host (for health checks).
pub async fn resolve_one(host: &str, port: u16) -> Result<SocketAddr, ConnectError> {
    resolve(host, port)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ConnectError::Dns(format!("DNS lookup failure for: {host}")))
}

/// A pooled connection if one is idle, else a new one.
pub async fn acquire(
    m: &Member,
    peer: &Arc<Peer>,
    default_timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<PooledConn, ConnectError> {
    let p = &m.params;
    let max_idle = p.ttl.unwrap_or(super::pool::DEFAULT_IDLE);
    if !p.disable_reuse
        && let Some((conn, permit)) = peer.pool.take(max_idle)
    {
        peer.pool
            .reused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(PooledConn {
            conn,
            reused: true,
            poolable: true,
            permit,
            member: peer.clone(),
        });
    }
    let permit = match peer.pool.semaphore(p.max) {
        Some(s) => {
            let wait = p.acquire.unwrap_or(Duration::ZERO);
            match s.clone().try_acquire_owned() {
                Ok(pm) => Some(pm),
                Err(_) if wait.is_zero() => return Err(ConnectError::Acquire),
                Err(_) => match tokio::time::timeout(wait, s.acquire_owned()).await {
                    Ok(Ok(pm)) => Some(pm),
                    _ => return Err(ConnectError::Acquire),
                },
            }
        }
        None => None,
    };
    open(m, peer, default_timeout, tls, permit).await
}

/// A new connection, bypassing the pool (the retry after a reused connection failed).
pub async fn acquire_fresh(
    m: &Member,
    peer: &Arc<Peer>,
    default_timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<PooledConn, ConnectError> {
    open(m, peer, default_timeout, tls, None).await
}

/// Opens a new connection (within `connectiontimeout`) and wraps it for checkout.
async fn open(
    m: &Member,
    peer: &Arc<Peer>,
    default_timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<PooledConn, ConnectError> {
    let p = &m.params;
    let timeout = p
        .connection_timeout
        .or(p.timeout)
        .unwrap_or(default_timeout);
    // Boxed: connecting (TCP, TLS, HTTP handshake) is rare with pooling, and its state would
    // otherwise be part of every request's future (and of every held long-poll).
    let conn = Box::pin(connect(m, timeout, tls)).await?;
    peer.pool
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(PooledConn {
        conn,
        reused: false,
        poolable: !p.disable_reuse,
        permit,
        member: peer.clone(),
    })
}

/// A new connection to a member (TCP, then TLS for `https://`) within `timeout`, outside the
/// pool (the health checker's).
pub async fn connect_member(
    m: &Member,
    timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<MemberConn, ConnectError> {
    connect(m, timeout, tls).await
}

async fn connect(
    m: &Member,
    timeout: Duration,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<MemberConn, ConnectError> {
    let url = &m.url;
    let tls = if url.is_tls() {
        match tls {
            Some(t) => Some(t.clone()),
            None => {
                return Err(ConnectError::Failed(format!(
                    "{}: https member but SSLProxyEngine is not On",
                    m.url
                )));
            }
        }
    } else {
        None
    };
    let addrs = resolve(&url.host, url.port).await?;
    let mut last = String::new();
    for a in addrs {
        // One deadline for TCP and TLS together (connectiontimeout).
        let attempt = async {
            let s = connect_tcp(a)
                .await
                .map_err(|e| format!("connect to {a} failed: {e}"))?;
            crate::net::tuning::apply(&s);
            if m.params.tcp_keepalive {
                let _ = socket2::SockRef::from(&s).set_keepalive(true);
            }
            match &tls {
                None => {
                    let mut c = MemberConn::new(MemberIo::Plain(s));
                    c.ajp = url.is_ajp();
                    if c.ajp {
                        c.ajp_ping = m.params.ping;
                    }
                    Ok(c)
                }
                Some(cfg) => {
                    let name = crate::net::tls::server_name(&url.host)?;
                    let ts = tokio_rustls::TlsConnector::from(cfg.clone())
                        .connect(name, s)
                        .await
                        .map_err(|e| format!("TLS handshake with {a} failed: {e}"))?;
                    Ok(MemberConn::new(MemberIo::Tls(Box::new(ts))))
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(sender)) => return Ok(sender),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("connect to {a} timed out after {timeout:?}"),
        }
    }
    Err(ConnectError::Failed(format!("{}: {last}", m.url)))
}

/// Opens a TCP connection with the socket options that must be set before connecting.
async fn connect_tcp(a: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if a.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    crate::net::tuning::apply_congestion(&sock)?;
    sock.connect(a).await
}
