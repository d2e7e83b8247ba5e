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
        escape_html(detail)
    );
    let mut r = Response::new(DownBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=iso-8859-1"),
    );
    r
}

/// Escapes `& < > " '` for HTML output.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}
