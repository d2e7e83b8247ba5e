//! The built-in handlers behind their `<Location>`'s access rules: `server-status`
//! (`?auto` too) and `metrics` (the `admin` layer renders them).

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
