//! `ErrorDocument`: what replaces balancerd's own error page (never a member's answer), as
//! httpd does it (pinned in `tests/httpd_diff.rs`):
//!
//! * **text**: the text is the body (`text/html; charset=iso-8859-1`), the status stays;
//! * **remote URL**: `302 Found` to it;
//! * **local path**: an internal `GET` of that path, routed like any request (through its
//!   `<Location>` access rules and `ProxyPass`); the client gets that answer, status
//!   included. When that fails too, the client gets the first error's status and page with
//!   httpd's "Additionally, …" sentence.
//!
//! Which one: the last matching `<Location>` that has one for the status, else the server's
//! (a virtual host's own before the main server's). `ErrorDocument N default` brings the
//! built-in page back.

use super::choose::forward;
use super::error_page::{OwnError, error_page_with};
use super::handler::ConnInfo;
use super::routing::{location_matches, prepare};
use crate::config::model::ErrorDocument;
use crate::h1::fields::FieldsView;
use crate::runtime::{HostRt, Snapshot};
use crate::upstream::body::{ClientBody, DownBody};
use http::{HeaderValue, Response, StatusCode, header};
use std::time::Instant;

/// The document for `status` on `path` of `host`.
fn find<'a>(host: &'a HostRt, path: &str, status: u16) -> Option<&'a ErrorDocument> {
    let in_location = host
        .locations
        .iter()
        .rev()
        .filter(|l| location_matches(l, path))
        .filter_map(|l| {
            l.error_documents
                .iter()
                .rev()
                .find(|(c, _)| *c == status)
                .map(|(_, d)| d)
        })
        .next();
    in_location.or_else(|| {
        host.error_documents
            .iter()
            .rev()
            .find(|(c, _)| *c == status)
            .map(|(_, d)| d)
    })
}

/// Replaces `resp` (balancerd's own error page) by the request's `ErrorDocument`, if any.
/// `original` is the request head as it arrived.
pub(super) async fn apply(
    resp: Response<DownBody>,
    original: &http::request::Parts,
    conn: &ConnInfo,
    snap: &Snapshot,
) -> Response<DownBody> {
    let status = resp.status();
    let host_header = original
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| original.uri.authority().map(|a| a.as_str()));
    let host = snap.host_for(host_header);
    let Some(doc) = find(host, original.uri.path(), status.as_u16()) else {
        return resp;
    };
    match doc {
        ErrorDocument::Default => resp,
        ErrorDocument::Text(text) => {
            let (mut head, _) = resp.into_parts();
            head.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=iso-8859-1"),
            );
            head.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(head, DownBody::full(text.clone()))
        }
        ErrorDocument::Remote(url) => {
            if HeaderValue::from_str(url).is_err() {
                return resp;
            }
            let mut r = super::redirect::moved(StatusCode::FOUND, url);
            if let Some(c) = resp.headers().get(header::CONNECTION) {
                r.headers_mut().insert(header::CONNECTION, c.clone());
            }
            r
        }
        ErrorDocument::Local(path) => {
            let Ok(uri) = path.parse::<http::Uri>() else {
                return resp;
            };
            let (mut parts, ()) = http::Request::new(()).into_parts();
            parts.method = http::Method::GET;
            parts.uri = uri;
            parts.version = original.version;
            parts.headers = original.headers.clone();
            for h in [
                header::CONTENT_LENGTH,
                header::TRANSFER_ENCODING,
                header::EXPECT,
            ] {
                parts.headers.remove(h);
            }
            let second = Box::pin(serve_internal(parts, conn, snap)).await;
            match second.extensions().get::<OwnError>() {
                None => second,
                Some(_) => {
                    let detail = resp
                        .extensions()
                        .get::<OwnError>()
                        .map_or("", |e| &e.0)
                        .to_string();
                    let s2 = second.status();
                    let mut r = error_page_with(
                        status,
                        &detail,
                        &format!(
                            "Additionally, a {} {} error was encountered while trying to use an ErrorDocument to handle the request.",
                            s2.as_u16(),
                            s2.canonical_reason().unwrap_or("")
                        ),
                    );
                    r.extensions_mut().insert(OwnError(detail.into()));
                    r
                }
            }
        }
    }
}

/// Serves an internal request (no body, no log line, no second `ErrorDocument`).
async fn serve_internal(
    mut parts: http::request::Parts,
    conn: &ConnInfo,
    snap: &Snapshot,
) -> Response<DownBody> {
    let started = Instant::now();
    let mut raw = None;
    let plan = match prepare(&mut parts, &mut raw, conn, snap, started) {
        Ok(plan) => plan,
        Err(resp) => return resp,
    };
    let cx = plan.ctx(FieldsView::Map(&parts.headers), snap, conn, started);
    let mut answered = None;
    forward(
        &cx,
        &parts,
        ClientBody::Empty,
        plan.fwd_path.as_str(),
        None,
        &mut answered,
    )
    .await
}
