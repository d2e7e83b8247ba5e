//! The balancer's own responses: short HTML error pages in httpd's style.

use crate::upstream::body::DownBody;
use http::{Response, StatusCode, header};

/// An error page for `status`, explaining `detail` (HTML-escaped).
pub fn error_page(status: StatusCode, detail: &str) -> Response<DownBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{} {}</title>\n</head><body>\n<h1>{}</h1>\n<p>{}</p>\n</body></html>\n",
        status.as_u16(),
        reason,
        reason,
        crate::util::html::escape_html(detail)
    );
    let mut r = Response::new(DownBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=iso-8859-1"),
    );
    r
}
