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

use crate::balancer::member::MemberRt;
use crate::balancer::{BalancerRt, Pick, sticky};
use crate::config::model::{Handler, LocationSection, ReverseRules, Route, RouteMatch};
use crate::h1::fields::{FieldRole, Fields, FieldsView, field_str};
use crate::h1::framing::BodyFraming;
use crate::h1::head::ResponseHead;
use crate::h1::writer::HeadWriter;
use crate::proxy::access;
use crate::proxy::env::{BalancerVars, any_rule_applies, apply_rules};
use crate::proxy::error_page::error_page;
use crate::proxy::forward_headers::{UpstreamHead, max_forwards, write_upstream_headers};
use crate::proxy::rewrite::{map_cookie, map_location};
use crate::proxy::tunnel::ClientUpgrade;
use crate::route::{self, Matched, PathError};
use crate::runtime::{HostRt, Snapshot};
use crate::telemetry::stats::STATS;
use crate::upstream::body::{BusyGuard, ClientBody, DownBody, MemberDown, UpBody};
use crate::upstream::connect::{ConnectError, acquire, acquire_fresh};
use crate::upstream::error::{Decision, ErrorKind, Origin, Phase, ProxyError};
use crate::upstream::exchange::{self, MemberBody};
use crate::upstream::pool::PooledConn;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Body;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::task::Poll;
use std::time::{Duration, Instant};

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
    /// Framing verdicts from the byte-level tracker, one per request, for requests read by
    /// hyper; `None` when the server refused ambiguous framing itself (the plain HTTP/1.1
    /// server), so there is nothing left to check.
    pub framing: Option<Arc<crate::h1::framing_check::Verdicts>>,
    /// The response is written by balancerd's own HTTP/1.1 server, which can write a
    /// member's header fields through as received; hyper needs them in a `HeaderMap`.
    pub writes_member_fields: bool,
}

impl ConnInfo {
    /// Info for a connection served by hyper (TLS, HTTP/2), with its framing verdicts.
    pub fn new(peer: SocketAddr, framing: Option<Arc<crate::h1::framing_check::Verdicts>>) -> Self {
        let peer_ip = peer.ip().to_string();
        ConnInfo {
            peer,
            peer_ip_value: HeaderValue::from_str(&peer_ip)
                .unwrap_or(HeaderValue::from_static("unknown")),
            peer_ip,
            requests: AtomicU32::new(0),
            framing,
            writes_member_fields: false,
        }
    }

    /// Info for a connection served by the plain HTTP/1.1 server.
    pub fn plain(peer: SocketAddr) -> Self {
        ConnInfo {
            writes_member_fields: true,
            ..ConnInfo::new(peer, None)
        }
    }
}

fn close(mut r: Response<DownBody>) -> Response<DownBody> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Handles one request on `snap`. The plain HTTP/1.1 server hands the header fields over
/// as parsed (`raw`, with `req`'s `HeaderMap` empty); hyper's servers give them in `req`.
pub async fn handle(
    mut parts: http::request::Parts,
    body: ClientBody,
    mut raw: Option<Fields>,
    conn: &ConnInfo,
    snap: &Snapshot,
) -> Response<DownBody> {
    let started = Instant::now();
    let n = conn.requests.fetch_add(1, Relaxed) + 1;
    // Counted down on drop too: a request whose client left is cancelled mid-way.
    let _in_flight = InFlight::count();
    if snap.access_log.is_some() {
        to_map(&mut parts.headers, &mut raw);
    }
    // The access log needs the request head as it arrived (request rules may change it).
    // Boxed: it would otherwise take room in every request's state.
    let head = snap.access_log.as_ref().and_then(|_| {
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
    let mut resp = 'resp: {
        // The plan or the answer, taken apart before the wait (a `match` would keep the
        // whole result in the request's state while forwarding).
        let plan = match prepare(&mut parts, &mut raw, conn, snap, started) {
            Ok(plan) => plan,
            Err(resp) => break 'resp resp,
        };
        {
            let cx = Ctx {
                req: match &raw {
                    Some(r) => FieldsView::Raw(r),
                    None => FieldsView::Map(&parts.headers),
                },
                snap,
                host: plan.host,
                route: plan.route,
                balancer: plan.balancer,
                locations: &plan.locations,
                conn,
                started,
            };
            let (path, upgrade) = (plan.fwd_path.as_str(), plan.client_upgrade);
            forward(&cx, &parts, body, path, upgrade, &mut answered).await
        }
    };
    let took = answered.map_or_else(
        || started.elapsed(),
        |at| at.saturating_duration_since(started),
    );
    if let (Some(log), Some(parts)) = (&snap.access_log, &head) {
        let vars = resp.extensions_mut().remove::<BalancerVars>();
        log.log(&crate::telemetry::access_log::Entry {
            client: conn.peer.ip(),
            req: parts,
            status: resp.status().as_u16(),
            resp_headers: resp.headers(),
            vars: vars
                .as_ref()
                .map(|v| v as &dyn crate::telemetry::access_log::LogVars),
            took,
            server_name: &snap.server_name,
        });
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

/// Moves raw request fields into the request's `HeaderMap`, for what needs one.
fn to_map(headers: &mut http::HeaderMap, raw: &mut Option<Fields>) {
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

/// Refuses ambiguous framing (request smuggling): both `Content-Length` and
/// `Transfer-Encoding`, anything but one `chunked`, or several `Content-Length`s.
fn check_framing(h: &http::HeaderMap) -> Result<(), &'static str> {
    let te: Vec<&HeaderValue> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl = h.get_all(header::CONTENT_LENGTH).iter().count();
    if !te.is_empty() {
        if cl > 0 {
            return Err("Content-Length and Transfer-Encoding together");
        }
        if te.len() > 1
            || !te[0]
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err("Transfer-Encoding other than a single 'chunked'");
        }
    }
    if cl > 1 {
        return Err("more than one Content-Length");
    }
    Ok(())
}

fn check_limits(
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    snap: &Snapshot,
) -> Option<Response<DownBody>> {
    let s = &snap.server;
    let target_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if s.limit_request_line > 0
        && target_len + parts.method.as_str().len() + 10 > s.limit_request_line as usize
    {
        return Some(close(error_page(
            StatusCode::URI_TOO_LONG,
            "The requested URL's length exceeds the capacity limit for this server.",
        )));
    }
    if s.limit_request_fields > 0 && fields.len() > s.limit_request_fields as usize {
        return Some(close(error_page(
            StatusCode::BAD_REQUEST,
            "The number of request header fields exceeds this server's limit.",
        )));
    }
    if s.limit_request_field_size > 0 {
        for (k, v, _) in fields.iter() {
            if k.len() + v.len() + 2 > s.limit_request_field_size as usize {
                return Some(close(error_page(
                    StatusCode::BAD_REQUEST,
                    "Size of a request header field exceeds server limit.",
                )));
            }
        }
    }
    None
}

/// Where a request goes, when it is proxied: what [`prepare`] found.
struct Plan<'s> {
    host: &'s HostRt,
    route: &'s Route,
    balancer: &'s BalancerRt,
    /// The `<Location>` sections matching the path, outermost first.
    locations: Vec<&'s LocationSection>,
    /// The balancer-relative path, canonically encoded (raw with `nocanon`).
    fwd_path: route::ForwardPath,
    client_upgrade: Option<ClientUpgrade>,
}

/// Phases 1–3 (check, route, request filters): the plan for a proxied request, or the
/// response when there is nothing to forward (an error, a built-in handler).
#[allow(clippy::result_large_err)]
fn prepare<'s>(
    parts: &mut http::request::Parts,
    raw: &mut Option<Fields>,
    conn: &ConnInfo,
    snap: &'s Snapshot,
    started: Instant,
) -> Result<Plan<'s>, Response<DownBody>> {
    // Requests read by hyper get a second look at their framing; the plain server refused
    // ambiguous framing itself (`framing` is `None` there).
    if let Some(verdicts) = &conn.framing {
        if verdicts.next_conflicts() {
            tracing::info!(client = %conn.peer, "refused request: conflicting Content-Length / Transfer-Encoding");
            return Err(close(error_page(
                StatusCode::BAD_REQUEST,
                "Bad request framing: conflicting Content-Length and Transfer-Encoding.",
            )));
        }
        if let Err(why) = check_framing(&parts.headers) {
            tracing::info!(client = %conn.peer, "refused request: {why}");
            return Err(close(error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad request framing: {why}."),
            )));
        }
    }
    let fields = match &*raw {
        Some(r) => FieldsView::Raw(r),
        None => FieldsView::Map(&parts.headers),
    };
    if let Some(r) = check_limits(parts, fields, snap) {
        return Err(r);
    }
    let host_header = fields
        .role_value(FieldRole::Host)
        .and_then(field_str)
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let host = snap.host_for(host_header);
    let raw_path = parts.uri.path();
    let uri = match route::normalize(raw_path) {
        Ok(u) => u,
        Err(PathError::EncodedSlash) => {
            return Err(error_page(
                StatusCode::NOT_FOUND,
                "The requested URL was not found on this server.",
            ));
        }
        Err(PathError::BadRequest(why)) => {
            return Err(close(error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad request path: {why}."),
            )));
        }
    };
    let matched = host.route_index.find(&host.routes, &uri);
    let Some(Matched::Balancer {
        route: ri,
        balancer: bi,
        target_path,
        rest,
    }) = matched
    else {
        // Not proxied: a built-in handler of a matching <Location>, else 404.
        return Err(builtin(parts, fields, conn, snap, host, &uri));
    };
    if raw.as_ref().is_some_and(|r| r.has(FieldRole::MaxForwards)) {
        to_map(&mut parts.headers, raw);
    }
    if !max_forwards(&mut parts.headers, &parts.method) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Max-Forwards has reached zero.",
        ));
    }
    let r = &host.routes[ri];
    let b = &snap.balancers[bi];
    let locations: Vec<&LocationSection> = host
        .locations
        .iter()
        .filter(|l| location_matches(l, &uri))
        .collect();
    // Access rules: the innermost <Location> that has some, the balancer's <Proxy>
    // section, and any <Proxy *> section.
    let ip = conn.peer.ip();
    let loc_rules = locations
        .iter()
        .rev()
        .map(|l| &l.access)
        .find(|a| !a.is_open());
    let denied = loc_rules.is_some_and(|a| !access::allowed(a, ip))
        || b.access.as_ref().is_some_and(|a| !access::allowed(a, ip))
        || snap
            .proxy_access
            .as_ref()
            .is_some_and(|a| !access::allowed(a, ip));
    if denied {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "You don't have permission to access this resource.",
        ));
    }

    // The balancer-relative path, canonically re-encoded (or raw with nocanon).
    let mut fwd_path = route::ForwardPath::new();
    match &r.matcher {
        RouteMatch::Regex(re) => {
            route::canon_encode_into(&mut fwd_path, &route::map_regex(re, target_path, &uri))
        }
        RouteMatch::Prefix(p) => {
            let raw_rest = if r.nocanon {
                route::prefix_match(p, raw_path).map(|n| &raw_path[n..])
            } else {
                None
            };
            route::canon_encode_into(&mut fwd_path, target_path);
            match raw_rest {
                Some(raw) => route::PathSink::push_str(&mut fwd_path, raw),
                None => route::canon_encode_into(&mut fwd_path, rest),
            }
        }
    }
    if let Some(q) = parts.uri.query()
        && q.bytes().any(|c| c <= b' ' || c == 0x7f)
    {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Control characters or spaces in the query.",
        ));
    }

    // RequestHeader rules run before a member is chosen (BALANCER_* are not set yet).
    let has_req_rules = !host.request_headers.is_empty()
        || !b.request_headers.is_empty()
        || locations.iter().any(|l| !l.request_headers.is_empty());
    if has_req_rules {
        to_map(&mut parts.headers, raw);
        let req_rules = host
            .request_headers
            .iter()
            .chain(b.request_headers.iter())
            .chain(locations.iter().flat_map(|l| l.request_headers.iter()));
        let snapshot_headers = parts.headers.clone();
        apply_rules(
            req_rules,
            &mut parts.headers,
            None,
            &snapshot_headers,
            false,
            started,
        );
    }

    Ok(Plan {
        host,
        route: r,
        balancer: b,
        locations,
        fwd_path,
        client_upgrade: parts.extensions.remove::<ClientUpgrade>(),
    })
}

/// The built-in handlers (`server-status`, `metrics`) behind their location's access rules.
fn builtin(
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    conn: &ConnInfo,
    snap: &Snapshot,
    host: &HostRt,
    uri: &str,
) -> Response<DownBody> {
    let matching: Vec<&LocationSection> = host
        .locations
        .iter()
        .filter(|l| location_matches(l, uri))
        .collect();
    let Some(handler) = matching.iter().rev().find_map(|l| l.handler) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The requested URL was not found on this server.",
        );
    };
    let rules = matching
        .iter()
        .rev()
        .map(|l| &l.access)
        .find(|a| !a.is_open());
    if rules.is_some_and(|a| !access::allowed(a, conn.peer.ip())) {
        return error_page(
            StatusCode::FORBIDDEN,
            "You don't have permission to access this resource.",
        );
    }
    let host_name = fields
        .role_value(FieldRole::Host)
        .and_then(field_str)
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(n, _)| n)
        })
        .unwrap_or(&snap.server_name);
    let (body, ctype) = match handler {
        Handler::ServerStatus => {
            if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
                return error_page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "server-status answers GET only.",
                );
            }
            if parts.uri.query().is_some_and(|q| q.contains("auto")) {
                (
                    crate::admin::status::auto(snap, host_name),
                    "text/plain; charset=ISO-8859-1",
                )
            } else {
                (
                    crate::admin::status::html(snap, host_name),
                    "text/html; charset=ISO-8859-1",
                )
            }
        }
        Handler::Metrics => (
            crate::admin::metrics::render(snap),
            "text/plain; version=0.0.4",
        ),
        Handler::BalancerManager => {
            return error_page(
                StatusCode::NOT_FOUND,
                "balancer-manager is not served by this version.",
            );
        }
    };
    let mut r = Response::new(DownBody::full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn location_matches(l: &LocationSection, uri: &str) -> bool {
    match &l.regex {
        Some(re) => re.is_match(uri),
        None => route::prefix_match(&l.path, uri).is_some(),
    }
}

struct Ctx<'a> {
    /// The request's header fields (raw, or in `parts.headers`).
    req: FieldsView<'a>,
    snap: &'a Snapshot,
    host: &'a HostRt,
    route: &'a Route,
    balancer: &'a BalancerRt,
    locations: &'a [&'a LocationSection],
    conn: &'a ConnInfo,
    started: Instant,
}

async fn forward(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    body: ClientBody,
    fwd_path: &str,
    client_upgrade: Option<ClientUpgrade>,
    answered: &mut Option<Instant>,
) -> Response<DownBody> {
    let b = cx.balancer;
    let query = if cx.route.noquery {
        None
    } else {
        parts.uri.query()
    };
    let snap = cx.snap;
    let session = b.params.sticky.as_ref().and_then(|s| {
        let cookies = cx.req.role_values(FieldRole::Cookie).filter_map(field_str);
        sticky::session_route(
            s,
            b.params.separator(),
            b.params.scolon_path_delim,
            fwd_path,
            query,
            cookies,
        )
    });
    let mut vars = BalancerVars::default();
    let body_timeout = snap.server.timeout;
    let mut up_body = Some(if body.is_end_stream() {
        UpBody::Empty
    } else {
        UpBody::client(body, body_timeout)
    });
    let mut attempts = 0u32;
    let default_timeout = snap.server.effective_proxy_timeout();

    loop {
        let pick = b.pick(session.map(|s| s.route));
        let (idx, route_changed) = match pick {
            Pick::Member {
                index,
                route_changed,
                ..
            } => (index, route_changed),
            Pick::NoFailover => {
                tracing::error!(balancer = %b.full_name, route = session.map_or("", |s| s.route), "all workers are in error state for the route (nofailover)");
                return own_error(
                    cx,
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is temporarily unable to service your request: the member holding your session is unavailable.",
                    true,
                );
            }
            Pick::NoMember => {
                if let Some(i) = Box::pin(wait_for_member(b, session.map(|s| s.route))).await {
                    (i, b.params.sticky.is_some())
                } else {
                    let what = if b.members.is_empty() {
                        "No members in balancer"
                    } else {
                        "All members are in error state"
                    };
                    tracing::error!(balancer = %b.full_name, "{what}");
                    let mut r = own_error(
                        cx,
                        Some(&vars),
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!(
                            "The server is temporarily unable to service your request ({what})."
                        ),
                        true,
                    );
                    if let Some(t) = b.retry_after() {
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from(t.as_secs().max(1)));
                    }
                    return r;
                }
            }
        };
        if route_changed {
            vars.route_changed = true;
        }
        let m = &b.members[idx];
        m.state.peer.busy.fetch_add(1, Relaxed);
        let busy = BusyGuard(m.state.peer.clone());
        vars.name = Some(b.full_name.clone());
        vars.worker_name = Some(m.name.clone());
        vars.worker_route = Some(m.route.clone());
        if let Some(s) = session {
            vars.session_sticky = Some(s.sticky.clone());
            // The route the client sent is usually the chosen member's: share its name.
            vars.session_route = Some(if *m.route == *s.route {
                m.route.clone()
            } else {
                Arc::from(s.route)
            });
        }

        let conn = match acquire(
            &m.spec,
            &m.state.peer,
            default_timeout,
            snap.upstream_tls.as_ref(),
        )
        .await
        {
            Ok(c) => c,
            Err(ConnectError::Dns(msg)) => {
                m.mark_error(&msg);
                return own_error(
                    cx,
                    Some(&vars),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &msg,
                    false,
                );
            }
            Err(e) => {
                drop(busy);
                if connect_failed(m, b, &mut attempts, &e) {
                    continue;
                }
                return no_member_reached(cx, &vars);
            }
        };

        let wants_upgrade = client_upgrade.is_some() && upgrade_allowed(cx.route, m, cx.req);
        let member_timeout = m.spec.params.timeout.unwrap_or(default_timeout);
        let Some(mut bodyv) = up_body.take() else {
            return own_error(
                cx,
                Some(&vars),
                StatusCode::BAD_GATEWAY,
                "The request body was lost.",
                true,
            );
        };
        bodyv.count_for(&m.state.peer);
        let head = match build_request(cx, parts, m, fwd_path, query, wants_upgrade, &bodyv) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        // A pooled connection was ready at once: the request's start is the send time
        // (one clock read fewer); a new connection may have taken a while.
        let sent_at = if conn.reused {
            cx.started
        } else {
            Instant::now()
        };
        let (result, conn) = send(conn, &head, bodyv, sent_at + member_timeout).await;
        let result = match result {
            Err((e, Some(recovered))) if e.decide(true, false) == Decision::RetryFresh => {
                // A reused connection died before answering: once more on a fresh one.
                tracing::debug!(member = %m.name, "reused connection failed ({e}); retrying on a fresh connection");
                drop(conn);
                match Box::pin(acquire_fresh(
                    &m.spec,
                    &m.state.peer,
                    default_timeout,
                    snap.upstream_tls.as_ref(),
                ))
                .await
                {
                    Ok(c) => {
                        // Rare path, boxed: keeps every request's future small.
                        let deadline = Instant::now() + member_timeout;
                        let (r2, c2) = Box::pin(send(c, &head, recovered, deadline)).await;
                        r2.map(|resp| (resp, c2)).map_err(|(e, _)| e)
                    }
                    Err(e) => {
                        drop(busy);
                        // The body was never read: the next member gets it whole.
                        up_body = Some(recovered);
                        if connect_failed(m, b, &mut attempts, &e) {
                            continue;
                        }
                        return no_member_reached(cx, &vars);
                    }
                }
            }
            Err((e, _)) => Err(e),
            Ok(resp) => Ok((resp, conn)),
        };
        return match result {
            Ok((resp, conn)) => {
                let now = Instant::now();
                *answered = Some(now);
                m.record(resp.status.as_u16(), now.saturating_duration_since(sent_at));
                respond(
                    cx,
                    parts,
                    m,
                    resp,
                    conn,
                    busy,
                    &vars,
                    client_upgrade,
                    wants_upgrade,
                    head.head,
                )
            }
            Err(e) => {
                vars.error = Some(e.kind.as_str());
                exchange_failed(cx, m, &vars, &e, b.params.fail_on_timeout, member_timeout)
            }
        };
    }
}

/// The answer to a failed exchange, as the error's decision says: the status, whether the
/// member is marked and whether the client connection closes. The log line names who
/// caused it, so a client's fault is never logged against the member.
fn exchange_failed(
    cx: &Ctx<'_>,
    m: &MemberRt,
    vars: &BalancerVars,
    e: &ProxyError,
    fail_on_timeout: bool,
    member_timeout: std::time::Duration,
) -> Response<DownBody> {
    // The body was read (or the exchange got that far): no replay from here.
    let Decision::Answer {
        status,
        mark_member,
        close: close_client,
    } = e.decide(false, fail_on_timeout)
    else {
        // Unreachable for a non-replayable request; answer as a member failure.
        return own_error(
            cx,
            Some(vars),
            StatusCode::BAD_GATEWAY,
            "Error reading from remote server.",
            true,
        );
    };
    if mark_member {
        m.mark_error(&e.detail);
    }
    let text = match e.kind {
        ErrorKind::MemberTimeout => {
            tracing::error!(member = %m.name, error = e.kind.as_str(), "timeout waiting for the member's response after {:?}", member_timeout);
            "The member did not answer in time."
        }
        _ if e.origin() == Origin::Client => {
            tracing::info!(member = %m.name, error = e.kind.as_str(), fault = "client", "request failed by the client: {}", e.detail);
            match e.kind {
                ErrorKind::ClientBodyTimeout => "The request body did not arrive in time.",
                _ => "The request body was malformed or cut off.",
            }
        }
        _ => {
            tracing::error!(member = %m.name, error = e.kind.as_str(), fault = e.origin().as_str(), "error reading from the member: {}", e.detail);
            "Error reading from remote server."
        }
    };
    let r = own_error(cx, Some(vars), status, text, true);
    if close_client { close(r) } else { r }
}

/// A connect failure (httpd's 503 case): the member goes into error, and the request moves
/// to the next pick while the member is unusable and `maxattempts` allows. Returns true to
/// fail over.
fn connect_failed(m: &MemberRt, b: &BalancerRt, attempts: &mut u32, e: &ConnectError) -> bool {
    m.mark_error(&e.to_string());
    if !m.usable() && *attempts < b.max_attempts {
        *attempts += 1;
        STATS.failovers.fetch_add(1, Relaxed);
        return true;
    }
    false
}

/// The 503 when no member could be reached.
fn no_member_reached(cx: &Ctx<'_>, vars: &BalancerVars) -> Response<DownBody> {
    own_error(
        cx,
        Some(vars),
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is temporarily unable to service your request (no member could be reached).",
        true,
    )
}

/// The balancer `timeout`: wait (in 100 steps) for a member to become usable.
async fn wait_for_member(b: &BalancerRt, route: Option<&str>) -> Option<usize> {
    let total = b.params.timeout?;
    let step = (total / 100).max(Duration::from_millis(1));
    let mut waited = Duration::ZERO;
    while waited < total {
        tokio::time::sleep(step).await;
        if let Pick::Member { index, .. } = b.pick(route) {
            return Some(index);
        }
        waited += step;
    }
    None
}

/// True when the client asks for a protocol upgrade that the route (`ProxyPass … upgrade=`)
/// or the member (`upgrade=`) allows; otherwise `Upgrade` is stripped as hop-by-hop.
fn upgrade_allowed(r: &Route, m: &MemberRt, h: FieldsView<'_>) -> bool {
    let Some(proto) = h.role_value(FieldRole::Upgrade).and_then(field_str) else {
        return false;
    };
    let ok = |u: &str| u.eq_ignore_ascii_case(proto) || u == "*";
    r.upgrade.as_deref().is_some_and(ok) || m.spec.params.upgrade.as_deref().is_some_and(ok)
}

/// The member-bound request head, encoded, and how the body follows it.
struct MemberRequest {
    head: Vec<u8>,
    framing: BodyFraming,
    is_head: bool,
}

#[allow(clippy::result_large_err)]
fn build_request(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    m: &MemberRt,
    fwd_path: &str,
    query: Option<&str>,
    wants_upgrade: bool,
    body: &UpBody,
) -> Result<MemberRequest, Response<DownBody>> {
    let url = &m.spec.url;
    // The client's host: its Host header, or the :authority of an HTTP/2 request.
    let client_host: Option<&[u8]> = cx
        .req
        .role_value(FieldRole::Host)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()));
    let host = if cx.snap.server.preserve_host {
        client_host.or(Some(b""))
    } else {
        m.host_header.as_ref().map(HeaderValue::as_bytes)
    };
    const DESTINATION: &str = "destination";
    let mapped_destination = if parts.method.as_str() == "COPY" || parts.method.as_str() == "MOVE" {
        cx.req
            .value(DESTINATION)
            .and_then(field_str)
            .and_then(|d| map_destination(cx, d, m))
            .filter(|d| HeaderValue::from_str(d).is_ok())
    } else {
        None
    };
    let framing = match body {
        UpBody::Client { inner, .. } => match inner.size_hint().exact() {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Chunked,
        },
        UpBody::Empty => {
            let m = &parts.method;
            if cx.req.role_value(FieldRole::ContentLength).is_some()
                || *m == http::Method::POST
                || *m == http::Method::PUT
                || m.as_str() == "PATCH"
            {
                BodyFraming::Length(0)
            } else {
                BodyFraming::None
            }
        }
    };
    // The target is written straight into the head, then checked there.
    let q: [&[u8]; 2] = match query {
        Some(q) => [b"?", q.as_bytes()],
        None => [b"", b""],
    };
    let mut w = HeadWriter::with_target(
        &parts.method,
        &[url.path.as_bytes(), fwd_path.as_bytes(), q[0], q[1]],
        HeadWriter::room_for(cx.req),
    );
    let target = w.target();
    if target.iter().any(|&c| c <= b' ' || c == 0x7f) || !target.starts_with(b"/") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "The request cannot be forwarded.",
        ));
    }
    write_upstream_headers(
        cx.req,
        &UpstreamHead {
            host,
            add_forwarded: cx.snap.server.add_headers,
            client_ip: cx.conn.peer_ip_value.as_bytes(),
            client_host,
            server_name: cx.snap.server_name_value.as_bytes(),
            close: m.spec.params.disable_reuse,
            upgrade: if wants_upgrade {
                cx.req.role_value(FieldRole::Upgrade)
            } else {
                None
            },
            replace: mapped_destination
                .as_deref()
                .map(|v| (DESTINATION, v.as_bytes())),
        },
        &mut w,
    );
    Ok(MemberRequest {
        head: w.finish(framing),
        framing,
        is_head: parts.method == http::Method::HEAD,
    })
}

/// WebDAV `Destination`: the public URL mapped to the member's own URL, when it routes to
/// the same balancer (httpd leaves it alone, so MOVE behind a prefix fails there).
fn map_destination(cx: &Ctx<'_>, dest: &str, m: &MemberRt) -> Option<String> {
    let u: Uri = dest.parse().ok()?;
    let path = u.path();
    let norm = route::normalize(path).ok()?;
    match cx.host.route_index.find(&cx.host.routes, &norm)? {
        Matched::Balancer {
            balancer,
            target_path,
            rest,
            route: ri,
        } => {
            if !std::ptr::eq(&cx.snap.balancers[balancer], cx.balancer) {
                return None;
            }
            let mut out = m.spec.url.to_string();
            let mut p = String::new();
            match &cx.host.routes[ri].matcher {
                RouteMatch::Regex(re) => {
                    route::canon_encode_into(&mut p, &route::map_regex(re, target_path, &norm))
                }
                RouteMatch::Prefix(_) => {
                    route::canon_encode_into(&mut p, target_path);
                    route::canon_encode_into(&mut p, rest);
                }
            }
            out.push_str(&p);
            Some(out)
        }
        Matched::Excluded => None,
    }
}

/// The member's response head, or the failure with the request body when it can be sent
/// again (nothing of it was read).
type SendResult = Result<ResponseHead, (ProxyError, Option<UpBody>)>;

/// Sends one request and waits for the response head; on failure reports whether the body
/// came back (so the request can be replayed) and whether the connection was a reused one.
async fn send(
    mut conn: PooledConn,
    req: &MemberRequest,
    mut body: UpBody,
    deadline: Instant,
) -> (SendResult, Option<PooledConn>) {
    let reused = conn.reused;
    let mut timer = conn.conn.take_timer(deadline.into());
    let outcome = {
        let fut = exchange::exchange(
            &mut conn.conn,
            &req.head,
            &mut body,
            req.framing,
            req.is_head,
        );
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            timer.as_mut().poll(cx).map(|()| None)
        })
        .await
    };
    conn.conn.put_timer(timer);
    match outcome {
        None => {
            let mut e = ProxyError::new(
                ErrorKind::MemberTimeout,
                Phase::ResponseHead,
                "no response head in time",
            )
            .sent(true);
            e.reused = reused;
            (Err((e, None)), None)
        }
        Some(Ok((head, body_sent))) => {
            if !body_sent {
                // The member answered before the whole body was sent: the rest is not sent,
                // and the connection cannot carry another request.
                conn.poolable = false;
            }
            (Ok(head), Some(conn))
        }
        Some(Err(mut e)) => {
            e.reused = reused;
            let recovered = (!e.answer_started && !body.touched()).then_some(body);
            (Err((e, recovered)), None)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    m: &MemberRt,
    head: ResponseHead,
    conn: Option<PooledConn>,
    busy: BusyGuard,
    vars: &BalancerVars,
    client_upgrade: Option<ClientUpgrade>,
    wants_upgrade: bool,
    head_buf: Vec<u8>,
) -> Response<DownBody> {
    let b = cx.balancer;
    let status = head.status;
    if b.params.fail_on_status.contains(&status.as_u16()) {
        m.mark_error(&format!("status {} matches failonstatus", status.as_u16()));
    }
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut conn = conn;
    if switching {
        match (wants_upgrade, client_upgrade, conn.take()) {
            (true, Some(client), Some(pc)) => {
                // The member connection becomes the tunnel.
                let name = m.name.clone();
                tokio::spawn(async move {
                    STATS.tunnels.fetch_add(1, Relaxed);
                    let _t = scopeguard_tunnel();
                    let PooledConn {
                        conn: mc, permit, ..
                    } = pc;
                    let (mut up, early) = mc.into_tunnel();
                    match client.connection().await {
                        Ok(mut c) => {
                            use tokio::io::AsyncWriteExt;
                            if early.is_empty() || c.write_all(&early).await.is_ok() {
                                let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
                            }
                        }
                        Err(e) => tracing::debug!(member = %name, "upgrade failed: {e}"),
                    }
                    drop(permit);
                });
            }
            _ => {
                return own_error(
                    cx,
                    Some(vars),
                    StatusCode::BAD_GATEWAY,
                    "The member switched protocols without being asked to.",
                    true,
                );
            }
        }
    }
    // ProxyPassReverse and the cookie maps: this balancer's, the location's, the server's.
    let any_reverse = !b.reverse.is_empty()
        || !cx.host.reverse.is_empty()
        || cx.locations.iter().any(|l| !l.reverse.is_empty());
    let rules = || {
        cx.host
            .response_headers
            .iter()
            .chain(b.response_headers.iter())
            .chain(cx.locations.iter().flat_map(|l| l.response_headers.iter()))
    };
    // Nothing to change (the usual case): the plain server writes the member's fields
    // through as they arrived, with no HeaderMap built.
    let pass_through = cx.conn.writes_member_fields
        && !switching
        && head.connection_named.is_empty()
        && !any_reverse
        && cx.snap.access_log.is_none()
        && !any_rule_applies(rules(), Some(vars));
    let mut headers = http::HeaderMap::new();
    let mut fields = None;
    if pass_through {
        fields = Some(head.fields);
    } else {
        // Hop-by-hop fields are left out; those the member's Connection named go now.
        headers = head.fields.passed_header_map();
        for name in &head.connection_named {
            headers.remove(name);
        }
        if any_reverse {
            reverse_map(cx, parts, &mut headers);
        }
        // The rules' conditions may read request fields: a map of raw ones, for them.
        let req_map;
        let req_headers = match cx.req {
            FieldsView::Map(m) => m,
            FieldsView::Raw(r) => {
                req_map = r.to_header_map();
                &req_map
            }
        };
        apply_rules(
            rules(),
            &mut headers,
            Some(vars),
            req_headers,
            false,
            cx.started,
        );
    }
    let inner = match conn {
        Some(c) => MemberBody::new(c, head.framing, head.keep_alive),
        None => MemberBody::none(),
    };
    let mut r = Response::new(DownBody::Member(crate::util::recycle::Recycled::new(
        MemberDown {
            inner,
            busy: Some(busy),
            member: m.state.peer.clone(),
            name: m.name.clone(),
            fields,
            head_buf,
        },
    )));
    *r.status_mut() = status;
    // The client gets its own protocol version, whatever the member spoke.
    *r.version_mut() = parts.version;
    *r.headers_mut() = headers;
    if cx.snap.access_log.is_some() {
        r.extensions_mut().insert(vars.clone());
    }
    r
}

/// `ProxyPassReverse` and the cookie maps (this balancer's, the locations', the server's)
/// applied to a member's `Location`, `Content-Location`, `URI` and `Set-Cookie` fields.
fn reverse_map(cx: &Ctx<'_>, parts: &http::request::Parts, headers: &mut http::HeaderMap) {
    let mut rule_sets: Vec<&ReverseRules> = Vec::with_capacity(2 + cx.locations.len());
    rule_sets.push(&cx.balancer.reverse);
    rule_sets.extend(cx.locations.iter().map(|l| &l.reverse));
    rule_sets.push(&cx.host.reverse);
    let client_host = cx
        .req
        .role_value(FieldRole::Host)
        .and_then(field_str)
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    for h in ["location", "content-location", "uri"] {
        if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok())
            && let Some(nv) = map_location(v, &rule_sets, &cx.snap.balancers, client_host)
            && let Ok(hv) = HeaderValue::from_str(&nv)
        {
            headers.insert(h, hv);
        }
    }
    if headers.contains_key(header::SET_COOKIE) {
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| map_cookie(s, &rule_sets))
                    .and_then(|s| HeaderValue::from_str(&s).ok())
                    .unwrap_or_else(|| v.clone())
            })
            .collect();
        headers.remove(header::SET_COOKIE);
        for c in cookies {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

/// One of balancerd's own error responses, with the `always` header rules applied.
fn own_error(
    cx: &Ctx<'_>,
    vars: Option<&BalancerVars>,
    status: StatusCode,
    detail: &str,
    close_conn: bool,
) -> Response<DownBody> {
    let mut r = error_page(status, detail);
    if let (Some(v), Some(_)) = (vars, &cx.snap.access_log) {
        r.extensions_mut().insert(v.clone());
    }
    let rules = cx
        .host
        .response_headers
        .iter()
        .chain(cx.balancer.response_headers.iter())
        .chain(cx.locations.iter().flat_map(|l| l.response_headers.iter()));
    let empty = http::HeaderMap::new();
    apply_rules(rules, r.headers_mut(), vars, &empty, true, cx.started);
    if close_conn && status == StatusCode::SERVICE_UNAVAILABLE {
        return close(r);
    }
    r
}

/// Decrements the open-tunnel count when a tunnel task ends.
fn scopeguard_tunnel() -> impl Drop {
    struct G;
    impl Drop for G {
        fn drop(&mut self) {
            STATS.tunnels.fetch_sub(1, Relaxed);
        }
    }
    G
}
