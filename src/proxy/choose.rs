//! Phases 4–5, **choose and fail over**: the member by sticky route or lbmethod, a pooled or
//! new connection, and what follows a failure, as the [`ProxyError`]'s decision says: a
//! connect failure marks the member and chooses again (up to `maxattempts`), a reused
//! connection that died before answering is retried once on a fresh one, and anything else
//! is answered with the status the decision names (a client's fault never marks a member).
//!
//! ```text
//!   pick ──▶ acquire ──ok──▶ send ──head──▶ respond
//!    ▲          │ connect failed          │ failed
//!    └─ mark ◀──┘ (FailOver)              ├─ RetryFresh: once more, fresh connection
//!                                         └─ Answer {status, mark?, close?}
//! ```

use super::forward::{build_request, send, upgrade_allowed};
use super::handler::{Ctx, close};
use super::respond::{own_error, respond};
use crate::balancer::member::MemberRt;
use crate::balancer::{BalancerRt, Pick, sticky};
use crate::config::model::ProxySwitches;
use crate::h1::fields::{FieldRole, field_str};
use crate::proxy::env::BalancerVars;
use crate::proxy::tunnel::ClientUpgrade;
use crate::telemetry::stats::STATS;
use crate::upstream::body::{BusyGuard, ClientBody, DownBody, UpBody};
use crate::upstream::connect::{ConnectError, acquire, acquire_fresh};
use crate::upstream::error::{Decision, ErrorKind, Origin, ProxyError};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::Body;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the body)"
)]
pub(super) fn forward(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    body: ClientBody,
    fwd_path: &str,
    client_upgrade: Option<ClientUpgrade>,
    answered: &mut Option<Instant>,
) -> impl Future<Output = Response<DownBody>> {
    // An `async move` block, not an `async fn`: an `async fn` re-binds every argument as a
    // local, and the future then holds each twice (arguments are never overlapped with other
    // state).
    async move {
        let b = cx.balancer;
        let query = if cx.route.noquery {
            None
        } else if let Some(q) = cx.rewrite.and_then(|r| r.query.as_ref()) {
            q.as_deref()
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
        if let Some(r) = cx.rewrite
            && !r.env.is_empty()
        {
            vars.extra = r.env.clone();
        }
        let body_timeout = snap.server.timeout;
        let limit = snap.server.limit_request_body;
        let mut up_body = Some(if body.is_end_stream() {
            UpBody::Empty
        } else {
            // `LimitRequestBody`: a declared length over it is refused before anything is sent;
            // a chunked body is counted as it streams.
            if limit > 0 && body.size_hint().exact().is_some_and(|n| n > limit) {
                return own_error(
                    cx,
                    None,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "The request body is larger than this server accepts ({limit} bytes)."
                    ),
                    true,
                );
            }
            UpBody::client(body, body_timeout, snap.server.body_read_timeout, limit)
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
                        // The backup site takes it (`BackupSiteRedirect`), unless it came from there.
                        let backup = cx
                            .locations
                            .iter()
                            .rev()
                            .find_map(|l| l.backup_site.as_ref())
                            .or(b.backup_site.as_ref());
                        if let Some(site) = backup {
                            if let Some(r) = super::redirect::backup_site_redirect(site, parts) {
                                tracing::warn!(balancer = %b.full_name, "no member can serve: redirected to the backup site {}", site.url);
                                return r;
                            }
                            tracing::error!(balancer = %b.full_name, "no member can serve, and the request came from the backup site ({} in the query): 503", site.marker);
                        }
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

            // `proxy-initial-not-pooled`: a client connection's first request gets a fresh
            // member connection (no race with a pooled one the member is closing).
            let fresh = cx.switches.has(ProxySwitches::INITIAL_NOT_POOLED)
                && cx.conn.requests.load(Relaxed) == 1;
            // Matched where it is made: a named result would keep its room in the request's
            // state for the whole exchange.
            let mut conn = match if fresh {
                Box::pin(acquire_fresh(
                    &m.spec,
                    &m.state.peer,
                    default_timeout,
                    snap.upstream_tls.as_ref(),
                ))
                .await
            } else {
                acquire(
                    &m.spec,
                    &m.state.peer,
                    default_timeout,
                    snap.upstream_tls.as_ref(),
                )
                .await
            } {
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

            if cx.switches.closes_member() {
                conn.poolable = false;
            }
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
            // 1xx answers are relayed to a client that can take them: an HTTP/1.1
            // connection, or an HTTP/2 stream (its own queue, in the request).
            let interim = match parts.version {
                http::Version::HTTP_11 => cx.conn.interim.as_ref(),
                http::Version::HTTP_2 => parts
                    .extensions
                    .get::<crate::h1::interim::StreamInterim>()
                    .map(|q| &*q.0),
                _ => None,
            };
            let (result, conn) = send(conn, &head, bodyv, sent_at + member_timeout, interim).await;
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
                        Ok(mut c) => {
                            if cx.switches.closes_member() {
                                c.poolable = false;
                            }
                            // Rare path, boxed: keeps every request's future small.
                            let deadline = Instant::now() + member_timeout;
                            let (r2, c2) =
                                Box::pin(send(c, &head, recovered, deadline, interim)).await;
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
                Err((e, Some(recovered))) if e.decide(true, false) == Decision::FailOver => {
                    // Nothing of the request went out (an AJP member that did not answer its
                    // CPing): the member is in error, the next one gets the request whole.
                    drop(busy);
                    up_body = Some(recovered);
                    if connect_failed(m, b, &mut attempts, &ConnectError::Failed(e.detail.clone()))
                    {
                        continue;
                    }
                    return no_member_reached(cx, &vars);
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
                        member_timeout,
                    )
                }
                Err(e) => {
                    vars.error = Some(e.kind.as_str());
                    exchange_failed(cx, m, &vars, &e, b.params.fail_on_timeout, member_timeout)
                }
            };
        }
    }
}

/// The answer to a failed exchange, as the error's decision says: the status, whether the
/// member is marked and whether the client connection closes. The log line names who
/// caused it, so a client's fault is never logged against the member.
pub(super) fn exchange_failed(
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
pub(super) fn connect_failed(
    m: &MemberRt,
    b: &BalancerRt,
    attempts: &mut u32,
    e: &ConnectError,
) -> bool {
    m.mark_error(&e.to_string());
    if !m.usable() && *attempts < b.max_attempts {
        *attempts += 1;
        STATS.failovers.fetch_add(1, Relaxed);
        return true;
    }
    false
}

/// The 503 when no member could be reached.
pub(super) fn no_member_reached(cx: &Ctx<'_>, vars: &BalancerVars) -> Response<DownBody> {
    own_error(
        cx,
        Some(vars),
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is temporarily unable to service your request (no member could be reached).",
        true,
    )
}

/// The balancer `timeout`: wait (in 100 steps) for a member to become usable.
pub(super) async fn wait_for_member(b: &BalancerRt, route: Option<&str>) -> Option<usize> {
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
