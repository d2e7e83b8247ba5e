//! Phases 1–3 put together before anything waits: **check** ([`super::check`]), **route**
//! (the server by `Host`, the normalised path, the first matching `ProxyPass`, `<Location>`
//! sections and their access rules, built-in handlers), and **request filters**
//! (`RequestHeader` rules, before a member is chosen, as in httpd). The result is a
//! [`Plan`] for a proxied request or the answer when there is nothing to forward.

use super::builtin::builtin;
use super::check::{check_framing, check_host, check_limits};
use super::handler::{ConnInfo, close, to_map};
use super::redirect::{location_redirect, server_redirect};
use super::rewrite_engine::{self, Outcome, RequestFacts};
use crate::balancer::BalancerRt;
use crate::config::model::{EncodedSlashes, LocationSection, ProxySwitches, Route, RouteMatch};
use crate::h1::fields::{FieldRole, Fields, FieldsView, field_str};
use crate::h1::host::request_authority;
use crate::proxy::access;
use crate::proxy::env::apply_rules;
use crate::proxy::error_page::error_page;
use crate::proxy::forward_headers::max_forwards;
use crate::proxy::tunnel::ClientUpgrade;
use crate::route::{self, Matched, PathError};
use crate::runtime::{HostRt, Snapshot};
use crate::upstream::body::DownBody;
use http::{Response, StatusCode};
use std::time::Instant;

/// Where a request goes, when it is proxied: what [`prepare`] found.
pub(super) struct Plan<'s> {
    pub(super) host: &'s HostRt,
    pub(super) route: &'s Route,
    pub(super) balancer: &'s BalancerRt,
    /// The `<Location>` sections matching the path, outermost first.
    pub(super) locations: Vec<&'s LocationSection>,
    /// The balancer-relative path, canonically encoded (raw with `nocanon`).
    pub(super) fwd_path: route::ForwardPath,
    pub(super) client_upgrade: Option<ClientUpgrade>,
    /// `SetEnv proxy-*` of the server, the balancer's `<Proxy>` and the `<Location>`s.
    pub(super) switches: ProxySwitches,
    /// What a `RewriteRule` changed beyond the route (boxed: most requests have none).
    pub(super) rewrite: Option<Box<Rewritten>>,
}

impl<'s> Plan<'s> {
    /// The context the forwarding phases read, for this plan and request.
    #[inline]
    pub(super) fn ctx<'a>(
        &'a self,
        req: FieldsView<'a>,
        snap: &'s Snapshot,
        conn: &'a ConnInfo,
        started: Instant,
    ) -> super::handler::Ctx<'a>
    where
        's: 'a,
    {
        super::handler::Ctx {
            req,
            snap,
            host: self.host,
            route: self.route,
            balancer: self.balancer,
            locations: &self.locations,
            conn,
            started,
            switches: self.switches,
            rewrite: self.rewrite.as_deref(),
        }
    }
}

/// The query a `RewriteRule` gave the request and the variables its `E=` set.
#[derive(Debug, Default)]
pub(super) struct Rewritten {
    /// `Some(None)`: the rule removed the query; `None`: the query is the client's.
    pub(super) query: Option<Option<String>>,
    pub(super) env: Vec<(String, String)>,
}

/// The `ServerName` self-referential URLs name under `UseCanonicalName On`; `None` when
/// the client's `Host` names the server (Off, httpd's default).
pub(super) fn canonical_name<'s>(snap: &'s Snapshot, host: &'s HostRt) -> Option<&'s str> {
    snap.server
        .use_canonical_name
        .then(|| host.server_name.as_deref().unwrap_or(&snap.server_name))
}

/// Phases 1–3 (check, route, request filters): the plan for a proxied request, or the
/// response when there is nothing to forward (an error, a built-in handler).
#[allow(clippy::result_large_err)]
pub(super) fn prepare<'s>(
    parts: &mut http::request::Parts,
    raw: &mut Option<Fields>,
    conn: &ConnInfo,
    snap: &'s Snapshot,
    started: Instant,
) -> Result<Plan<'s>, Response<DownBody>> {
    // HTTP/2 requests get the framing and Host checks here; balancerd's HTTP/1.1 server
    // made them as it parsed the head.
    if conn.http2 {
        if let Err(why) = check_framing(&parts.headers) {
            tracing::info!(client = %conn.peer, "refused request: {why}");
            return Err(close(error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad request framing: {why}."),
            )));
        }
        if let Err(why) = check_host(parts) {
            tracing::info!(client = %conn.peer, "refused request: {why}");
            return Err(close(error_page(StatusCode::BAD_REQUEST, why)));
        }
    }
    let fields = match &*raw {
        Some(r) => FieldsView::Raw(r),
        None => FieldsView::Map(&parts.headers),
    };
    if let Some(r) = check_limits(parts, fields, snap) {
        return Err(r);
    }
    // An absolute-form target's authority takes the place of Host (RFC 9112 §3.2.2): it
    // chooses the server; balancerd never connects to it.
    let host_header = request_authority(&parts.uri, fields).and_then(field_str);
    let host = snap.host_for(host_header);
    let raw_path = parts.uri.path();
    let uri = match route::normalize_with(raw_path, snap.server.allow_encoded_slashes) {
        Ok(u) => u,
        Err(PathError::EncodedSlash) => {
            return Err(error_page(
                StatusCode::NOT_FOUND,
                "The requested URL was not found on this server.",
            ));
        }
        // `OPTIONS *` asks about the server itself: httpd answers 200 with no body (measured
        // on httpd 2.4.67), it is never proxied. Checked only here, where `*` lands as a path
        // that does not start with '/', so other requests pay nothing for it.
        Err(PathError::BadRequest(_))
            if raw_path == "*" && parts.method == http::Method::OPTIONS =>
        {
            let mut r = Response::new(DownBody::empty());
            r.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("0"),
            );
            return Err(r);
        }
        Err(PathError::BadRequest(why)) => {
            return Err(close(error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad request path: {why}."),
            )));
        }
    };
    // Workspace's entry URL (`SiteRedirect`) goes to the local site before anything else.
    if !snap.site_redirects.is_empty()
        && let Some(r) =
            super::redirect::site_redirect(&snap.site_redirects, host_header, parts, &uri)
    {
        return Err(r);
    }
    // mod_rewrite runs before ProxyPass (httpd's translate order).
    let mut rewrite_env = Vec::new();
    let mut proxy_rule = None;
    let mut new_path = None;
    let mut rewritten_query = None;
    if !host.rewrite.is_empty() {
        let facts = RequestFacts {
            fields,
            parts,
            tls: conn.tls.is_some(),
            peer: conn.peer,
            local_port: conn.local_port,
            server_name: host.server_name.as_deref().unwrap_or(&snap.server_name),
            canonical: canonical_name(snap, host),
        };
        let (out, env) = rewrite_engine::run(&host.rewrite, &uri, &facts);
        rewrite_env = env;
        match out {
            Outcome::Unchanged => {}
            Outcome::NewPath(p, q) => {
                new_path = Some(p);
                rewritten_query = Some(q);
            }
            Outcome::Proxy(rule, rest, q) => {
                proxy_rule = Some((rule, rest));
                rewritten_query = Some(q);
            }
            Outcome::Redirect(code, url) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
                return Err(super::redirect::moved(status, &url));
            }
            Outcome::Forbidden => {
                return Err(error_page(
                    StatusCode::FORBIDDEN,
                    "You don't have permission to access this resource.",
                ));
            }
            Outcome::Gone => {
                return Err(error_page(
                    StatusCode::GONE,
                    "The requested resource is no longer available on this server and there is no forwarding address. Please remove all references to this resource.",
                ));
            }
        }
    }
    let uri: std::borrow::Cow<'_, str> = match new_path {
        Some(p) => std::borrow::Cow::Owned(p),
        None => uri,
    };
    let matched = match &proxy_rule {
        Some((rule, rest)) => rule.proxy.as_ref().map(|t| Matched::Balancer {
            route: usize::MAX,
            balancer: t.balancer,
            target_path: "",
            rest: rest.as_str(),
        }),
        None => host.route_index.find(&host.routes, &uri),
    };
    let Some(Matched::Balancer {
        route: ri,
        balancer: bi,
        target_path,
        rest,
    }) = matched
    else {
        // Not proxied: a server-level redirect, else a built-in handler of a matching
        // <Location> (or its redirect), else 404.
        if !host.redirects.is_empty()
            && let Some(r) = server_redirect(
                host,
                parts,
                fields,
                conn.tls.is_some(),
                canonical_name(snap, host),
            )
        {
            return Err(r);
        }
        return Err(builtin(parts, fields, conn, snap, host, &uri));
    };
    if parts.method == http::Method::TRACE && !snap.server.trace_enable {
        return Err(trace_disabled());
    }
    if raw.as_ref().is_some_and(|r| r.has(FieldRole::MaxForwards)) {
        to_map(&mut parts.headers, raw);
    }
    if !max_forwards(&mut parts.headers, &parts.method) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Max-Forwards has reached zero.",
        ));
    }
    let r = match &proxy_rule {
        Some((rule, _)) => match &rule.proxy {
            Some(t) => &t.route,
            None => &host.routes[ri],
        },
        None => &host.routes[ri],
    };
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
    // A <Location>'s Redirect wins over its ProxyPass (mod_alias fixups run first).
    if locations.iter().any(|l| l.redirect.is_some()) {
        let view = match &*raw {
            Some(r) => FieldsView::Raw(r),
            None => FieldsView::Map(&parts.headers),
        };
        if let Some(r) = location_redirect(
            &locations,
            parts,
            view,
            conn.tls.is_some(),
            canonical_name(snap, host),
        ) {
            return Err(r);
        }
    }

    // The balancer-relative path, canonically re-encoded (or raw with nocanon).
    let mut fwd_path = route::ForwardPath::new();
    let keep_2f = snap.server.allow_encoded_slashes == EncodedSlashes::NoDecode;
    let encode = |out: &mut route::ForwardPath, s: &str| {
        if keep_2f {
            route::canon_encode_keep_2f(out, s)
        } else {
            route::canon_encode_into(out, s)
        }
    };
    match &r.matcher {
        RouteMatch::Regex(re) => encode(&mut fwd_path, &route::map_regex(re, target_path, &uri)),
        RouteMatch::Prefix(p) => {
            let raw_rest = if r.nocanon {
                route::prefix_match(p, raw_path).map(|n| &raw_path[n..])
            } else {
                None
            };
            encode(&mut fwd_path, target_path);
            match raw_rest {
                Some(raw) => route::PathSink::push_str(&mut fwd_path, raw),
                None => encode(&mut fwd_path, rest),
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

    let switches = locations
        .iter()
        .fold(host.proxy_switches | b.proxy_switches, |s, l| {
            s | l.proxy_switches
        });
    Ok(Plan {
        host,
        route: r,
        balancer: b,
        locations,
        fwd_path,
        client_upgrade: parts.extensions.remove::<ClientUpgrade>(),
        switches,
        rewrite: (rewritten_query.is_some() || !rewrite_env.is_empty()).then(|| {
            Box::new(Rewritten {
                query: rewritten_query,
                env: rewrite_env,
            })
        }),
    })
}

pub(super) fn location_matches(l: &LocationSection, uri: &str) -> bool {
    match &l.regex {
        Some(re) => re.is_match(uri),
        None => route::prefix_match(&l.path, uri).is_some(),
    }
}

/// `TraceEnable Off`: TRACE is refused with 405, as httpd refuses it.
fn trace_disabled() -> Response<DownBody> {
    let mut r = error_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "The requested method TRACE is not allowed for this URL.",
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(""));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(path: &str, regex: Option<&str>) -> LocationSection {
        LocationSection::new(
            path.to_string(),
            regex.map(|r| regex::Regex::new(r).unwrap()),
            crate::config::diag::Origin::new(&std::sync::Arc::from("t.conf"), 1, 1),
        )
    }

    #[test]
    fn locations_match_by_segment_prefix_or_by_regex() {
        let l = location("/server-status", None);
        assert!(location_matches(&l, "/server-status"));
        assert!(location_matches(&l, "/server-status/x"));
        assert!(!location_matches(&l, "/server-statusx"));
        let r = location("", Some("^/t[0-9]+/metrics$"));
        assert!(location_matches(&r, "/t12/metrics"));
        assert!(!location_matches(&r, "/t12/metrics/x"));
    }
}
