//! mod_alias redirects as httpd applies them (pinned in `tests/httpd_diff.rs`): a server-level
//! `Redirect`/`RedirectMatch` is tried only when no `ProxyPass` took the request (mod_proxy
//! translates first); a `<Location>`'s `Redirect` wins over its `ProxyPass`, after the
//! location's access rules. A prefix keeps the rest of the path; the query string is added
//! when the target has none; a target that is a path is made absolute with the request's
//! host.

use super::error_page::error_page_with;
use crate::config::model::{LocationSection, RedirectMatcher};
use crate::h1::fields::{FieldRole, FieldsView, field_str};
use crate::route;
use crate::runtime::HostRt;
use crate::upstream::body::DownBody;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// The answer of the first server-level redirect matching `raw_path`, if any.
pub(super) fn server_redirect(
    host: &HostRt,
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    tls: bool,
    canonical: Option<&str>,
) -> Option<Response<DownBody>> {
    let raw_path = parts.uri.path();
    for r in &host.redirects {
        let target = match &r.matcher {
            RedirectMatcher::Prefix(p) => {
                let Some(n) = route::prefix_match(p.trim_end_matches('/'), raw_path)
                    .or_else(|| route::prefix_match(p, raw_path))
                else {
                    continue;
                };
                r.target.as_ref().map(|t| format!("{t}{}", &raw_path[n..]))
            }
            RedirectMatcher::Regex(re) => {
                let Some(c) = re.captures(raw_path) else {
                    continue;
                };
                r.target.as_ref().map(|t| {
                    let mut out = String::new();
                    c.expand(&t.replace('\\', "\\\\"), &mut out);
                    out
                })
            }
        };
        return Some(answer(r.status, target, parts, fields, tls, canonical));
    }
    None
}

/// The answer of the innermost matching `<Location>` that has a `Redirect`, if any.
pub(super) fn location_redirect(
    locations: &[&LocationSection],
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    tls: bool,
    canonical: Option<&str>,
) -> Option<Response<DownBody>> {
    let (status, target) = locations.iter().rev().find_map(|l| l.redirect.as_ref())?;
    Some(answer(
        *status,
        target.clone(),
        parts,
        fields,
        tls,
        canonical,
    ))
}

/// `canonical`: the `ServerName` under `UseCanonicalName On` (else the client's `Host`
/// names the server in a path target made absolute).
fn answer(
    status: u16,
    target: Option<String>,
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    tls: bool,
    canonical: Option<&str>,
) -> Response<DownBody> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    let Some(mut url) = target else {
        let why = if status == 410 {
            "The requested resource is no longer available on this server and there is no forwarding address. Please remove all references to this resource."
        } else {
            "The server refused the request."
        };
        return error_page_with(code, why, "");
    };
    if url.starts_with('/') {
        let host = canonical
            .or_else(|| fields.role_value(FieldRole::Host).and_then(field_str))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        url = format!("{}://{host}{url}", if tls { "https" } else { "http" });
    }
    if let Some(q) = parts.uri.query()
        && !url.contains('?')
    {
        url.push('?');
        url.push_str(q);
    }
    moved(code, &url)
}

/// A redirect to `url` with `status` and httpd's short page: what `Redirect`, `RewriteRule
/// [R]` and an `ErrorDocument` URL answer.
pub(super) fn moved(status: StatusCode, url: &str) -> Response<DownBody> {
    let mut r = error_page_with(status, "The document has moved.", "");
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// True when the query has a parameter called `name` (with or without a value).
pub(super) fn has_param(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next().is_some_and(|k| k == name))
    })
}

/// `SiteRedirect`: the answer when the request is for a site's common entry URL (its host,
/// without a port, and a path under the entry path): the local site's URL with the same path
/// and query, plus `param=backup-host` unless the query names `param` already.
pub(super) fn site_redirect(
    rules: &[crate::config::model::SiteRedirect],
    host: Option<&str>,
    parts: &http::request::Parts,
    normalised: &str,
) -> Option<Response<DownBody>> {
    let host = host?;
    let name = match host.strip_prefix('[') {
        Some(_) => host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let rule = rules.iter().find(|r| {
        r.entry_host.eq_ignore_ascii_case(name)
            && (r.entry_path == "/" || route::prefix_match(&r.entry_path, normalised).is_some())
    })?;
    let query = parts.uri.query();
    let add = (!has_param(query, &rule.param))
        .then_some((rule.param.as_str(), rule.backup_host.as_str()));
    let url = same_path_on(&rule.local, parts, add);
    let code = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::FOUND);
    Some(moved(code, &url))
}

/// `BackupSiteRedirect`: the redirect to the same path and query on the backup site, marked
/// so the other site does not send it back; `None` when the request carries the mark already
/// (it came from the other site: 503, never a loop).
pub(super) fn backup_site_redirect(
    site: &crate::config::model::BackupSite,
    parts: &http::request::Parts,
) -> Option<Response<DownBody>> {
    if has_param(parts.uri.query(), &site.marker) {
        return None;
    }
    let url = same_path_on(&site.url, parts, Some((&site.marker, "1")));
    let code = StatusCode::from_u16(site.status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    Some(moved(code, &url))
}

/// `base` + the request's path and query, with `name=value` added to the query when given.
fn same_path_on(base: &str, parts: &http::request::Parts, add: Option<(&str, &str)>) -> String {
    let mut url = format!("{base}{}", parts.uri.path());
    let query = parts.uri.query().filter(|q| !q.is_empty());
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    if let Some((name, value)) = add {
        url.push(if query.is_some() { '&' } else { '?' });
        url.push_str(name);
        url.push('=');
        url.push_str(value);
    }
    url
}
