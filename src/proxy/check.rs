//! Phase 1, **check**, for HTTP/2 requests (the HTTP/1.1 server decides framing itself
//! as it parses): request framing (`Content-Length` with `Transfer-Encoding`,
//! codings other than one `chunked`), the `Host` rules, and httpd's request limits (`LimitRequestLine`,
//! `LimitRequestFields`, `LimitRequestFieldSize`).

use super::handler::close;
use crate::h1::fields::FieldsView;
use crate::proxy::error_page::error_page;
use crate::runtime::Snapshot;
use crate::upstream::body::DownBody;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// Refuses ambiguous framing (request smuggling): both `Content-Length` and
/// `Transfer-Encoding`, anything but one `chunked`, or several `Content-Length`s.
pub(super) fn check_framing(h: &http::HeaderMap) -> Result<(), &'static str> {
    let te: Vec<&HeaderValue> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl = h.get_all(header::CONTENT_LENGTH).iter().count();
    if !te.is_empty() {
        if cl > 0 {
            return Err("Content-Length and Transfer-Encoding together");
        }
        if te.len() > 1
            || !te[0]
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err("Transfer-Encoding other than a single 'chunked'");
        }
    }
    if cl > 1 {
        return Err("more than one Content-Length");
    }
    Ok(())
}

/// The `Host` rules for an HTTP/2 request (the HTTP/1.1 server checks them as it parses):
/// one valid `Host` in an HTTP/1.1 request, at most one in HTTP/1.0, a valid one in HTTP/2
/// (where `:authority` usually stands in for it).
pub(super) fn check_host(parts: &http::request::Parts) -> Result<(), &'static str> {
    let mut count = 0;
    for v in parts.headers.get_all(header::HOST) {
        count += 1;
        if !crate::h1::host::valid_host(v.as_bytes()) {
            return Err("Bad request: the Host field is not one valid host[:port].");
        }
    }
    match parts.version {
        http::Version::HTTP_10 | http::Version::HTTP_11 => {
            crate::h1::host::check_host_count(count, parts.version == http::Version::HTTP_11)
        }
        _ if count > 1 => Err("Bad request: more than one Host field."),
        _ => Ok(()),
    }
}

pub(super) fn check_limits(
    parts: &http::request::Parts,
    fields: FieldsView<'_>,
    snap: &Snapshot,
) -> Option<Response<DownBody>> {
    let s = &snap.server;
    let target_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if s.limit_request_line > 0
        && target_len + parts.method.as_str().len() + 10 > s.limit_request_line as usize
    {
        return Some(close(error_page(
            StatusCode::URI_TOO_LONG,
            "The requested URL's length exceeds the capacity limit for this server.",
        )));
    }
    if s.limit_request_fields > 0 && fields.len() > s.limit_request_fields as usize {
        return Some(close(error_page(
            StatusCode::BAD_REQUEST,
            "The number of request header fields exceeds this server's limit.",
        )));
    }
    if s.limit_request_field_size > 0 {
        for (k, v, _) in fields.iter() {
            if k.len() + v.len() + 2 > s.limit_request_field_size as usize {
                return Some(close(error_page(
                    StatusCode::BAD_REQUEST,
                    "Size of a request header field exceeds server limit.",
                )));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in fields {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ambiguous_framing_is_refused_and_plain_framing_passes() {
        assert!(check_framing(&map(&[])).is_ok());
        assert!(check_framing(&map(&[("content-length", "5")])).is_ok());
        assert!(check_framing(&map(&[("transfer-encoding", " Chunked ")])).is_ok());
        for bad in [
            &[("content-length", "5"), ("transfer-encoding", "chunked")][..],
            &[("transfer-encoding", "gzip, chunked")][..],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ][..],
            &[("transfer-encoding", "identity")][..],
            &[("content-length", "5"), ("content-length", "5")][..],
        ] {
            assert!(check_framing(&map(bad)).is_err(), "{bad:?}");
        }
    }
}
