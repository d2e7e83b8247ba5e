//! The balancer's own responses: short HTML error pages in httpd's style.

use crate::upstream::body::DownBody;
use http::{Response, StatusCode, header};

/// Marks a response as balancerd's own error page (what `ErrorDocument` may replace; a
/// member's error answer is never replaced), with the explanation it gave.
#[derive(Debug, Clone)]
pub struct OwnError(pub Box<str>);

/// An error page for `status`, explaining `detail` (HTML-escaped).
pub fn error_page(status: StatusCode, detail: &str) -> Response<DownBody> {
    let mut r = error_page_with(status, detail, "");
    r.extensions_mut().insert(OwnError(detail.into()));
    r
}

/// The page for `status` with `detail` and an extra sentence (`extra`, HTML-escaped; empty
/// for none), as httpd adds one when an `ErrorDocument` failed too.
pub fn error_page_with(status: StatusCode, detail: &str, extra: &str) -> Response<DownBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{} {}</title>\n</head><body>\n<h1>{}</h1>\n<p>{}</p>\n{}</body></html>\n",
        status.as_u16(),
        reason,
        reason,
        crate::util::html::escape_html(detail),
        if extra.is_empty() {
            String::new()
        } else {
            format!("<p>{}</p>\n", crate::util::html::escape_html(extra))
        }
    );
    let mut r = Response::new(DownBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=iso-8859-1"),
    );
    r
}
