//! Phase 7, **response filters**: `ProxyPassReverse*` on `Location` and cookies, `Header`
//! rules with the `BALANCER_*` variables, `failonstatus`, the body streamed back, `101` turned
//! into a tunnel; and the balancer's own answers ([`own_error`]) with the same rules.

use super::handler::{Ctx, close};
use crate::balancer::member::MemberRt;
use crate::config::model::ReverseRules;
use crate::h1::fields::{FieldRole, FieldsView, field_str};
use crate::h1::head::ResponseHead;
use crate::proxy::env::{BalancerVars, any_rule_applies, apply_rules};
use crate::proxy::error_page::error_page;
use crate::proxy::rewrite::{map_cookie, map_location};
use crate::proxy::tunnel::ClientUpgrade;
use crate::telemetry::stats::STATS;
use crate::upstream::body::{BusyGuard, DownBody, MemberDown};
use crate::upstream::exchange::MemberBody;
use crate::upstream::pool::PooledConn;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use std::sync::atomic::Ordering::Relaxed;

#[allow(clippy::too_many_arguments)]
pub(super) fn respond(
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
    member_timeout: std::time::Duration,
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
    let via = super::forward::via_value(cx, parts);
    // Nothing to change (the usual case): the plain server writes the member's fields
    // through as they arrived, with no HeaderMap built.
    let pass_through = cx.conn.writes_member_fields
        && !switching
        && head.connection_named.is_empty()
        && !any_reverse
        && !cx.snap.logging
        && via.is_none()
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
        if let Some(v) = via.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            headers.append(http::header::VIA, v);
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
        Some(c) => MemberBody::new(c, head.framing, head.keep_alive, member_timeout),
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
    if cx.snap.logging {
        r.extensions_mut().insert(vars.clone());
    }
    r
}

/// `ProxyPassReverse` and the cookie maps (this balancer's, the locations', the server's)
/// applied to a member's `Location`, `Content-Location`, `URI` and `Set-Cookie` fields.
pub(super) fn reverse_map(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    headers: &mut http::HeaderMap,
) {
    let mut rule_sets: Vec<&ReverseRules> = Vec::with_capacity(2 + cx.locations.len());
    rule_sets.push(&cx.balancer.reverse);
    rule_sets.extend(cx.locations.iter().map(|l| &l.reverse));
    rule_sets.push(&cx.host.reverse);
    let canonical = cx
        .host
        .server_name
        .as_deref()
        .unwrap_or(&cx.snap.server_name);
    let client_host = if cx.snap.server.use_canonical_name {
        canonical
    } else {
        cx.req
            .role_value(FieldRole::Host)
            .and_then(field_str)
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            // No Host (an HTTP/1.0 client): httpd names the server by its ServerName.
            .unwrap_or(canonical)
    };
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
pub(super) fn own_error(
    cx: &Ctx<'_>,
    vars: Option<&BalancerVars>,
    status: StatusCode,
    detail: &str,
    close_conn: bool,
) -> Response<DownBody> {
    let mut r = error_page(status, detail);
    if let Some(v) = vars.filter(|_| cx.snap.logging) {
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
pub(super) fn scopeguard_tunnel() -> impl Drop {
    struct G;
    impl Drop for G {
        fn drop(&mut self) {
            STATS.tunnels.fetch_sub(1, Relaxed);
        }
    }
    G
}
