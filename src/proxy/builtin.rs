//! The built-in handlers behind their `<Location>`'s access rules: `server-status`
//! (`?auto` too), `metrics` and `balancer-manager` (the `admin` layer renders them).

use super::handler::ConnInfo;
use super::routing::location_matches;
use crate::config::model::{Handler, LocationSection};
use crate::h1::fields::{FieldRole, FieldsView, field_str};
use crate::proxy::access;
use crate::proxy::error_page::error_page;
use crate::runtime::{HostRt, Snapshot};
use crate::upstream::body::DownBody;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// A request for the balancer-manager, allowed by its location's access rules: the handler
/// reads its form body and calls [`manager`].
#[derive(Clone)]
pub(super) struct ManagerCall {
    /// The host the client addressed, without the port.
    host: String,
    /// The whole `Host` field (with its port).
    authority: String,
}

/// Serves the balancer-manager (`admin::manager`): reads up to the form's limit of the
/// body of a POST, and answers the page with headers that keep it out of frames and caches.
pub(super) async fn manager(
    call: ManagerCall,
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    mut body: crate::upstream::body::ClientBody,
    conn: &ConnInfo,
    snap: &Snapshot,
) -> Response<DownBody> {
    use crate::admin::manager::{MAX_FORM, ManagerRequest, serve};
    use http_body_util::BodyExt;
    let post = parts.method == http::Method::POST;
    let mut form = Vec::new();
    if post {
        while form.len() < MAX_FORM {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        form.extend_from_slice(&d);
                    }
                }
                Some(Err(_)) => {
                    return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
                }
                None => break,
            }
        }
        form.truncate(MAX_FORM);
    }
    let value = |n: &str| fields.value(n).and_then(field_str);
    let answer = serve(
        snap,
        &ManagerRequest {
            post,
            query: parts.uri.query(),
            body: &form,
            path: parts.uri.path(),
            host: &call.host,
            authority: &call.authority,
            referer: value("referer"),
            origin: value("origin"),
            sec_fetch_site: value("sec-fetch-site"),
            wants_json: value("accept").is_some_and(|a| a.contains("application/json")),
            client: conn.peer.ip(),
        },
    );
    let mut r = Response::new(DownBody::full(answer.body));
    *r.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The built-in handlers (`server-status`, `metrics`) behind their location's access rules.
pub(super) fn builtin(
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
    let rules = matching
        .iter()
        .rev()
        .map(|l| &l.access)
        .find(|a| !a.is_open());
    // Access rules first (httpd checks access before any handler or redirect runs).
    if rules.is_some_and(|a| !access::allowed(a, conn.peer.ip())) {
        return error_page(
            StatusCode::FORBIDDEN,
            "You don't have permission to access this resource.",
        );
    }
    let Some(handler) = matching.iter().rev().find_map(|l| l.handler) else {
        if let Some(r) = super::redirect::location_redirect(
            &matching,
            parts,
            fields,
            conn.tls.is_some(),
            super::routing::canonical_name(snap, host),
        ) {
            return r;
        }
        return error_page(
            StatusCode::NOT_FOUND,
            "The requested URL was not found on this server.",
        );
    };
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
        Handler::Ready | Handler::Live => {
            if parts.method != http::Method::GET && parts.method != http::Method::HEAD {
                return error_page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "ready and live answer GET and HEAD only.",
                );
            }
            let (ok, body) = match handler {
                Handler::Ready => crate::admin::probe::ready(snap),
                _ => (true, "live\n".to_string()),
            };
            let mut r = Response::new(DownBody::full(body));
            if !ok {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
        Handler::BalancerManager => {
            if parts.method != http::Method::GET && parts.method != http::Method::POST {
                return error_page(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "balancer-manager answers GET and POST only.",
                );
            }
            // Served by `manager` once the form body is read (the handler sees this mark).
            let mut r = Response::new(DownBody::empty());
            let authority = fields
                .role_value(FieldRole::Host)
                .and_then(field_str)
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .unwrap_or("")
                .to_string();
            r.extensions_mut().insert(ManagerCall {
                host: host_name.to_string(),
                authority,
            });
            return r;
        }
    };
    let mut r = Response::new(DownBody::full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}
