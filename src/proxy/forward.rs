//! Phase 6, **forward**: the member's request head written straight from the client's
//! fields ([`build_request`]: target, `Host`, `X-Forwarded-*`, WebDAV `Destination`), then one
//! exchange with the member within its `timeout` ([`send`]), whose failure is a
//! [`ProxyError`] carrying whether the body can be sent again.

use super::handler::Ctx;
use crate::balancer::member::MemberRt;
use crate::config::model::{ProxySwitches, ProxyVia, Route, RouteMatch};
use crate::h1::fields::{FieldRole, FieldsView, field_str};
use crate::h1::framing::BodyFraming;
use crate::h1::head::ResponseHead;
use crate::h1::interim::Interim;
use crate::h1::writer::HeadWriter;
use crate::proxy::error_page::error_page;
use crate::proxy::forward_headers::{UpstreamHead, ViaAction, write_upstream_headers};
use crate::route::{self, Matched};
use crate::upstream::body::{DownBody, UpBody};
use crate::upstream::error::{ErrorKind, Phase, ProxyError};
use crate::upstream::exchange::{self};
use crate::upstream::pool::PooledConn;
use http::header::HeaderValue;
use http::{Response, StatusCode, Uri};
use hyper::body::Body;
use std::future::Future;
use std::task::Poll;
use std::time::Instant;

/// True when the client asks for a protocol upgrade that the route (`ProxyPass … upgrade=`)
/// or the member (`upgrade=`) allows; otherwise `Upgrade` is stripped as hop-by-hop.
pub(super) fn upgrade_allowed(r: &Route, m: &MemberRt, h: FieldsView<'_>) -> bool {
    let Some(proto) = h.role_value(FieldRole::Upgrade).and_then(field_str) else {
        return false;
    };
    let ok = |u: &str| u.eq_ignore_ascii_case(proto) || u == "*";
    r.upgrade.as_deref().is_some_and(ok) || m.spec.params.upgrade.as_deref().is_some_and(ok)
}

/// The member-bound request head, encoded, and how the body follows it.
pub(super) struct MemberRequest {
    pub(super) head: Vec<u8>,
    pub(super) framing: BodyFraming,
    pub(super) is_head: bool,
}

#[allow(clippy::result_large_err)]
pub(super) fn build_request(
    cx: &Ctx<'_>,
    parts: &http::request::Parts,
    m: &MemberRt,
    fwd_path: &str,
    query: Option<&str>,
    wants_upgrade: bool,
    body: &UpBody,
) -> Result<MemberRequest, Response<DownBody>> {
    let url = &m.spec.url;
    // The client's host: the authority of an absolute-form target or of an HTTP/2 request
    // (it takes the place of Host: RFC 9112 §3.2.2), else its Host field.
    let client_host = crate::h1::host::request_authority(&parts.uri, cx.req);
    let host = if cx.snap.server.preserve_host {
        // An HTTP/1.0 request without Host: the server's name, as httpd sends it.
        client_host.or_else(|| {
            Some(
                cx.host
                    .server_name
                    .as_deref()
                    .unwrap_or(&cx.snap.server_name)
                    .as_bytes(),
            )
        })
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
    let switches = cx.switches;
    let framing = match body {
        // A body keeps the client's framing. (`proxy-sendchunked` changes nothing here: httpd
        // 2.4 reads it only when an input filter resized the body, and balancerd has none.)
        UpBody::Client(_) => match body.size_hint().exact() {
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
    let via = via_value(cx, parts);
    let force_10 = switches.has(ProxySwitches::FORCE_1_0);
    if force_10 {
        if framing == BodyFraming::Chunked {
            // HTTP/1.0 has no chunked bodies; httpd would spool the body to count it.
            return Err(error_page(
                StatusCode::LENGTH_REQUIRED,
                "A request body without Content-Length cannot be sent to this member (force-proxy-request-1.0).",
            ));
        }
        w.http10();
    }
    write_upstream_headers(
        cx.req,
        &UpstreamHead {
            host,
            add_forwarded: cx.snap.server.add_headers,
            client_ip: cx.conn.peer_ip_value.as_bytes(),
            client_host,
            server_name: cx.snap.server_name_value.as_bytes(),
            close: m.spec.params.disable_reuse
                || force_10
                || switches.has(ProxySwitches::NO_KEEPALIVE),
            upgrade: if wants_upgrade {
                cx.req.role_value(FieldRole::Upgrade)
            } else {
                None
            },
            replace: mapped_destination
                .as_deref()
                .map(|v| (DESTINATION, v.as_bytes())),
            via: match (&via, cx.snap.server.proxy_via) {
                (Some(v), _) => ViaAction::Merge(v.as_bytes()),
                (None, ProxyVia::Block) => ViaAction::Block,
                (None, _) => ViaAction::Pass,
            },
            underscores: cx.snap.server.underscores_in_headers,
        },
        &mut w,
    );
    let mut head = w.finish(framing);
    if m.spec.url.is_ajp() {
        head = ajp_head(cx, m, client_host, &head)?;
    }
    Ok(MemberRequest {
        head,
        framing,
        is_head: parts.method == http::Method::HEAD,
    })
}

/// The request head recoded as an AJP13 forward-request packet (out of line: only `ajp://`
/// members take this path).
#[cold]
#[inline(never)]
#[allow(clippy::result_large_err)]
fn ajp_head(
    cx: &Ctx<'_>,
    m: &MemberRt,
    client_host: Option<&[u8]>,
    head: &[u8],
) -> Result<Vec<u8>, Response<DownBody>> {
    let host_name = client_host
        .and_then(|h| std::str::from_utf8(h).ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n))
        .unwrap_or(&cx.snap.server_name);
    let info = crate::upstream::ajp::RequestInfo {
        remote_addr: &cx.conn.peer_ip,
        server_name: host_name,
        server_port: cx.conn.local_port,
        is_ssl: cx.conn.tls.is_some(),
        secret: m.spec.params.secret.as_deref(),
    };
    crate::upstream::ajp::forward_request(head, &info).map_err(|e| {
        error_page(
            StatusCode::BAD_REQUEST,
            &format!("The request cannot be forwarded: {e}."),
        )
    })
}

/// `ProxyVia On|Full`: this hop as httpd names it in `Via`: the request's protocol version,
/// the server's `ServerName` and the port the client addressed (from `Host`: none there is
/// the scheme's default; no `Host`: the port it connected to) unless it is the scheme's
/// default; `Full` adds a comment.
#[inline]
pub(super) fn via_value(cx: &Ctx<'_>, parts: &http::request::Parts) -> Option<String> {
    match cx.snap.server.proxy_via {
        ProxyVia::On => Some(via_text(cx, parts, false)),
        ProxyVia::Full => Some(via_text(cx, parts, true)),
        ProxyVia::Off | ProxyVia::Block => None,
    }
}

#[cold]
#[inline(never)]
fn via_text(cx: &Ctx<'_>, parts: &http::request::Parts, full: bool) -> String {
    let version = if parts.version == http::Version::HTTP_10 {
        "1.0"
    } else {
        "1.1"
    };
    let name = cx
        .host
        .server_name
        .as_deref()
        .unwrap_or(&cx.snap.server_name);
    let default = if cx.conn.tls.is_some() { 443 } else { 80 };
    let port = match cx.req.role_value(FieldRole::Host).and_then(field_str) {
        Some(h) => h
            .rsplit_once(':')
            .filter(|(h, _)| !h.starts_with('[') || h.ends_with(']'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(default),
        None => cx.conn.local_port,
    };
    let mut v = format!("{version} {name}");
    if port != default && port != 0 {
        v.push_str(&format!(":{port}"));
    }
    if full {
        v.push_str(concat!(" (balancerd/", env!("CARGO_PKG_VERSION"), ")"));
    }
    v
}

/// WebDAV `Destination`: the public URL mapped to the member's own URL, when it routes to
/// the same balancer (httpd leaves it alone, so MOVE behind a prefix fails there).
pub(super) fn map_destination(cx: &Ctx<'_>, dest: &str, m: &MemberRt) -> Option<String> {
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
pub(super) type SendResult = Result<ResponseHead, (ProxyError, Option<UpBody>)>;

/// Sends one request and waits for the response head; on failure reports whether the body
/// came back (so the request can be replayed) and whether the connection was a reused one.
pub(super) async fn send(
    mut conn: PooledConn,
    req: &MemberRequest,
    mut body: UpBody,
    deadline: Instant,
    interim: Option<&Interim>,
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
            interim,
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
