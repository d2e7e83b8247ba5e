//! `balancerd demo`: serves the shipped example config with built-in demo members on
//! loopback, in the same process, and prints the curl commands that show tenant routing,
//! the `ROUTEID` cookie, stickiness and hot-standby failover.
//!
//! Each demo member answers `member <url> route <route>: <METHOD> <path>`; RCS members set a
//! `JSESSIONID=<n>.<route>; Path=/rcs` cookie like the real RCS. A control port stops and
//! starts members: `curl -s http://127.0.0.1:8099/stop/9141`.

use crate::config::{LoadOptions, model::Config};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Port of the demo's member control endpoint.
pub const CONTROL_PORT: u16 = 8099;

#[derive(Clone)]
struct MemberInfo {
    url: String,
    route: String,
    rcs: bool,
    /// Cleared by /stop: open connections are then dropped, as when a process dies.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

type Running = Arc<Mutex<HashMap<u16, (SocketAddr, MemberInfo, Option<JoinHandle<()>>)>>>;

static SESSION: AtomicU64 = AtomicU64::new(1000);

async fn member_service(
    info: MemberInfo,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if !info.alive.load(Relaxed) {
        return Err(std::io::Error::other("member stopped"));
    }
    let body = format!(
        "member {} route {}: {} {}\n",
        info.url,
        if info.route.is_empty() {
            "-"
        } else {
            &info.route
        },
        req.method(),
        req.uri()
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        "x-demo-member",
        http::HeaderValue::from_str(&info.url).unwrap_or(http::HeaderValue::from_static("?")),
    );
    let has_session = req
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("JSESSIONID=")));
    if info.rcs && !has_session {
        let id = SESSION.fetch_add(1, Relaxed);
        let c = format!("JSESSIONID={id}.{}; Path=/rcs", info.route);
        if let Ok(v) = http::HeaderValue::from_str(&c) {
            r.headers_mut().insert(http::header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

async fn start_member(addr: SocketAddr, info: MemberInfo) -> std::io::Result<JoinHandle<()>> {
    let l = crate::app::bind(addr)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let info = info.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| member_service(info.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    }))
}

async fn start_member_alive(addr: SocketAddr, info: MemberInfo) -> std::io::Result<JoinHandle<()>> {
    info.alive.store(true, Relaxed);
    start_member(addr, info).await
}

async fn control(
    running: Running,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_matches('/').split('/');
    let (verb, port) = (
        parts.next().unwrap_or(""),
        parts.next().and_then(|p| p.parse::<u16>().ok()),
    );
    let msg = match (verb, port) {
        ("stop", Some(p)) => {
            let stopped = {
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                r.get_mut(&p).map(|(_, i, h)| {
                    i.alive.store(false, Relaxed);
                    h.take()
                })
            };
            match stopped {
                Some(h) => {
                    // Answered once the listener is closed: a connection attempt right after
                    // the answer is refused, as with a process that died.
                    if let Some(h) = h {
                        h.abort();
                        let _ = h.await;
                    }
                    format!("member on port {p} stopped\n")
                }
                None => format!("no demo member on port {p}\n"),
            }
        }
        ("start", Some(p)) => {
            let entry = running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&p)
                .map(|(a, i, _)| (*a, i.clone()));
            match entry {
                Some((a, i)) => match start_member_alive(a, i).await {
                    Ok(h) => {
                        if let Some(e) = running
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_mut(&p)
                        {
                            e.2 = Some(h);
                        }
                        format!("member on port {p} started\n")
                    }
                    Err(e) => format!("cannot start member on port {p}: {e}\n"),
                },
                None => format!("no demo member on port {p}\n"),
            }
        }
        _ => "use /stop/PORT or /start/PORT\n".to_string(),
    };
    Ok(Response::new(Full::new(Bytes::from(msg))))
}

/// Runs the demo on `path`.
pub async fn run(config: Config, path: PathBuf, opts: LoadOptions) -> i32 {
    let running: Running = Arc::new(Mutex::new(HashMap::new()));
    for b in &config.balancers {
        let rcs = b
            .params
            .sticky
            .as_ref()
            .is_some_and(|s| &*s.cookie == "JSESSIONID");
        for m in &b.members {
            let ip: Option<std::net::IpAddr> = if m.url.host == "localhost" {
                Some([127, 0, 0, 1].into())
            } else {
                m.url.host.parse().ok()
            };
            let Some(ip) = ip.filter(|i| i.is_loopback()) else {
                eprintln!("demo: member {} is not on loopback; not started", m.url);
                continue;
            };
            let addr = SocketAddr::new(ip, m.url.port);
            let info = MemberInfo {
                url: m.url.to_string(),
                route: m.params.route.clone(),
                rcs,
                alive: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            };
            match start_member(addr, info.clone()).await {
                Ok(h) => {
                    running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(m.url.port, (addr, info, Some(h)));
                }
                Err(e) => eprintln!("demo: cannot start member {}: {e}", m.url),
            }
        }
    }
    let ctl_addr = SocketAddr::from(([127, 0, 0, 1], CONTROL_PORT));
    match crate::app::bind(ctl_addr) {
        Ok(l) => {
            let running = running.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    let running = running.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| control(running.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
        }
        Err(e) => eprintln!("demo: control port {ctl_addr} unavailable: {e}"),
    }
    let front = config
        .listeners
        .first()
        .map(|l| l.addr.to_string())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    println!(
        r#"balancerd demo: {} served on http://{front} with {} demo members on loopback.

Tenant routing (tenant 1 and tenant 2 reach their own members):
  curl -s http://{front}/t1/api/v2/me
  curl -s http://{front}/t2/api/v2/me
Balancing and the ROUTEID cookie (set on every balanced pick, path=/t1):
  for i in 1 2 3; do curl -si http://{front}/t1/api/x | grep -iE '^set-cookie|^member'; done
Stickiness (the route after the '.' picks the member; no new cookie):
  curl -s -b 'ROUTEID=.T1RWS2' http://{front}/t1/api/x
RCS: JSESSIONID=<id>.<route>, cookie path rewritten from /rcs to /t1/rcs:
  curl -si http://{front}/t1/rcs/x | grep -iE '^set-cookie|^member'
  curl -s 'http://{front}/t1/rcs/x;jsessionid=1.RCS2_Application_Name'
Hot-standby failover (WebDAV primary :9141, standby :9142):
  curl -s http://{front}/t1/recordings/a.wav
  curl -s http://127.0.0.1:{CONTROL_PORT}/stop/9141; curl -s http://{front}/t1/recordings/a.wav
  curl -s http://127.0.0.1:{CONTROL_PORT}/start/9141   # back in use once its retry (5 s) has passed
Ctrl-C stops the demo."#,
        path.display(),
        running.lock().map(|r| r.len()).unwrap_or(0),
    );
    crate::app::serve(config, path, opts).await
}
