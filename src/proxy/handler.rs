//! THE hot path: one request, phase by phase.
//!
//! 1. **check**: framing (`Content-Length` with `Transfer-Encoding`, non-`chunked` codings),
//!    limits, `Max-Forwards`.
//! 2. **route**: pick the server by `Host`, normalise the path, first matching `ProxyPass`.
//! 3. **request filters**: `RequestHeader` rules (before a member is chosen, as in httpd).
//! 4. **choose**: sticky route (URL parameter, then cookie), else the lbmethod.
//! 5. **connect**: a pooled or new connection; a connect failure marks the member in error
//!    and goes back to 4 (the client body is untouched until a connection exists).
//! 6. **forward**: stream the request; wait for the response head (`timeout`); a reused
//!    connection that dies before answering is retried once on a fresh one.
//! 7. **response filters**: hop-by-hop removal, `ProxyPassReverse*`, `Header` rules with the
//!    `BALANCER_*` variables, `failonstatus`; the body streams back; `101` becomes a tunnel.
//!
//! The phases live in files named for when they run: `check`, `routing`
//! (route and request filters), `builtin`, `choose` (choose and fail over),
//! `forward`, `respond` (response filters); the access-log line is written
//! here, at the end of [`handle`].

use super::choose::forward;
use super::routing::prepare;
use crate::balancer::BalancerRt;
use crate::config::model::{LocationSection, Route};
use crate::h1::fields::{Fields, FieldsView};
use crate::proxy::env::BalancerVars;
use crate::runtime::{HostRt, Snapshot};
use crate::telemetry::stats::STATS;
use crate::upstream::body::{ClientBody, DownBody};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Instant;

/// Facts about the client connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP as text (X-Forwarded-For).
    pub peer_ip: String,
    /// The same, ready to send (built once per connection).
    pub peer_ip_value: HeaderValue,
    /// Requests served on this connection (for `MaxKeepAliveRequests`).
    pub requests: AtomicU32,
    /// An HTTP/2 connection: its requests have not had the framing and `Host` checks of
    /// balancerd's HTTP/1.1 parser.
    pub http2: bool,
    /// The response is written by balancerd's own HTTP/1.1 server, which can write a
    /// member's header fields through as received; the HTTP/2 server needs them in a
    /// `HeaderMap`.
    pub writes_member_fields: bool,
    /// The port the connection arrived on (`%p`, `%{local}p` in the access log).
    pub local_port: u16,
    /// TLS protocol and cipher by OpenSSL's names (`%{SSL_PROTOCOL}x`); `None` for plain.
    pub tls: Option<(&'static str, &'static str)>,
    /// Where a member's interim (1xx) answers wait for the connection to write them; only
    /// on connections whose writer relays them (balancerd's own HTTP/1.1 server).
    pub interim: Option<crate::h1::interim::Interim>,
}

impl ConnInfo {
    /// Info for a connection served by the HTTP/2 server.
    pub fn h2(peer: SocketAddr) -> Self {
        let peer_ip = peer.ip().to_string();
        ConnInfo {
            peer,
            peer_ip_value: HeaderValue::from_str(&peer_ip)
                .unwrap_or(HeaderValue::from_static("unknown")),
            peer_ip,
            requests: AtomicU32::new(0),
            http2: true,
            writes_member_fields: false,
            local_port: 0,
            tls: None,
            interim: None,
        }
    }

    /// Info for a connection served by balancerd's HTTP/1.1 server (plain or TLS).
    pub fn h1(peer: SocketAddr) -> Self {
        ConnInfo {
            http2: false,
            writes_member_fields: true,
            interim: Some(crate::h1::interim::Interim::default()),
            ..ConnInfo::h2(peer)
        }
    }

    /// The same, over TLS with `names` (protocol, cipher).
    pub fn over_tls(self, names: Option<(&'static str, &'static str)>) -> Self {
        ConnInfo { tls: names, ..self }
    }

    /// The same, arrived on `port`.
    pub fn on_port(self, port: u16) -> Self {
        ConnInfo {
            local_port: port,
            ..self
        }
    }
}

pub(super) fn close(mut r: Response<DownBody>) -> Response<DownBody> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Handles one request on `snap`. The plain HTTP/1.1 server hands the header fields over
/// as parsed (`raw`, with `req`'s `HeaderMap` empty); the HTTP/2 server gives them in `req`.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the body)"
)]
pub fn handle(
    mut parts: http::request::Parts,
    mut body: ClientBody,
    mut raw: Option<Fields>,
    conn: &ConnInfo,
    snap: &Snapshot,
) -> impl Future<Output = Response<DownBody>> {
    // An `async move` block, not an `async fn`: an `async fn` re-binds every argument as a
    // local, and the future then holds each twice (arguments are never overlapped with other
    // state).
    async move {
        let started = Instant::now();
        let n = conn.requests.fetch_add(1, Relaxed) + 1;
        // Counted down on drop too: a request whose client left is cancelled mid-way.
        let _in_flight = InFlight::count();
        let keep_head = snap.logging || snap.error_documents;
        if keep_head {
            to_map(&mut parts.headers, &mut raw);
        }
        // The access log needs the request head as it arrived (request rules may change it).
        // Boxed: it would otherwise take room in every request's state.
        let head = keep_head.then_some(()).and_then(|()| {
            let mut b = Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .version(parts.version);
            if let Some(h) = b.headers_mut() {
                *h = parts.headers.clone();
            }
            b.body(()).ok().map(|r| Box::new(r.into_parts().0))
        });
        // Everything up to the member choice is synchronous; only forwarding waits. (One async
        // layer less: each layer kept its own copy of the request and was copied when awaited.)
        // When the member's response head arrived: read once for the member's statistics and
        // reused for the request's duration (one clock read fewer per request).
        let mut answered: Option<Instant> = None;
        // The balancer-manager's call, answered after the block below: its wait kept apart
        // from forwarding's, so that neither keeps the other's locals in the request's state.
        let mut manager_call = None;
        let mut resp = 'resp: {
            // The plan or the answer, taken apart before the wait (a `match` would keep the
            // whole result in the request's state while forwarding).
            let mut plan = match prepare(&mut parts, &mut raw, conn, snap, started) {
                Ok(plan) => plan,
                Err(mut resp) => {
                    manager_call = resp
                        .extensions_mut()
                        .remove::<super::builtin::ManagerCall>();
                    break 'resp resp;
                }
            };
            {
                let req = match &raw {
                    Some(r) => FieldsView::Raw(r),
                    None => FieldsView::Map(&parts.headers),
                };
                let upgrade = plan.client_upgrade.take();
                let cx = plan.ctx(req, snap, conn, started);
                let path = plan.fwd_path.as_str();
                // Taken out of the argument itself: a local would be a second copy.
                let body = std::mem::replace(&mut body, ClientBody::Empty);
                forward(&cx, &parts, body, path, upgrade, &mut answered).await
            }
        };
        if let Some(call) = manager_call {
            let req = match &raw {
                Some(r) => FieldsView::Raw(r),
                None => FieldsView::Map(&parts.headers),
            };
            let body = std::mem::replace(&mut body, ClientBody::Empty);
            resp = Box::pin(super::builtin::manager(call, &parts, req, body, conn, snap)).await;
        }
        if snap.error_documents
            && let Some(original) = &head
            && resp
                .extensions()
                .get::<super::error_page::OwnError>()
                .is_some()
        {
            // Boxed: a rare path, kept out of every request's state.
            resp = Box::pin(super::error_document::apply(resp, original, conn, snap)).await;
        }
        let took = answered.map_or_else(
            || started.elapsed(),
            |at| at.saturating_duration_since(started),
        );
        if let Some(parts) = head.as_ref().filter(|_| snap.logging) {
            let vars = resp.extensions_mut().remove::<BalancerVars>();
            // The server the request was for: a virtual host logs to its own files.
            let host_header = parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()));
            let host = snap.host_for(host_header);
            let entry = crate::telemetry::access_log::Entry {
                client: conn.peer.ip(),
                client_port: conn.peer.port(),
                local_port: conn.local_port,
                req: parts,
                status: resp.status().as_u16(),
                resp_headers: resp.headers(),
                vars: vars
                    .as_ref()
                    .map(|v| v as &dyn crate::telemetry::access_log::LogVars),
                took,
                server_name: host.server_name.as_deref().unwrap_or(&snap.server_name),
                tls: conn.tls,
            };
            for log in &host.access_logs {
                log.log(&entry);
            }
        }
        STATS.requests.fetch_add(1, Relaxed);
        STATS.by_class[(resp.status().as_u16() / 100).min(5) as usize].fetch_add(1, Relaxed);
        STATS
            .duration_us
            .fetch_add(took.as_micros() as u64, Relaxed);
        let max = snap.server.max_keepalive_requests;
        if !snap.server.keepalive || (max > 0 && n >= max) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Moves raw request fields into the request's `HeaderMap`, for what needs one.
pub(super) fn to_map(headers: &mut http::HeaderMap, raw: &mut Option<Fields>) {
    if let Some(r) = raw.take() {
        *headers = r.to_header_map();
    }
}

/// One request in flight, for the status page and metrics.
struct InFlight;

impl InFlight {
    fn count() -> Self {
        STATS.in_flight.fetch_add(1, Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        STATS.in_flight.fetch_sub(1, Relaxed);
    }
}

pub(super) struct Ctx<'a> {
    /// The request's header fields (raw, or in `parts.headers`).
    pub(super) req: FieldsView<'a>,
    pub(super) snap: &'a Snapshot,
    pub(super) host: &'a HostRt,
    pub(super) route: &'a Route,
    pub(super) balancer: &'a BalancerRt,
    pub(super) locations: &'a [&'a LocationSection],
    pub(super) conn: &'a ConnInfo,
    pub(super) started: Instant,
    /// `SetEnv proxy-*` switches in effect for this request.
    pub(super) switches: crate::config::model::ProxySwitches,
    /// What a `RewriteRule` changed beyond the route (its query, its `E=` variables).
    pub(super) rewrite: Option<&'a super::routing::Rewritten>,
}
