//! Sticky-route extraction, exactly as mod_proxy_balancer does it (httpd-semantics §4):
//! the URL parameter first (a substring search for `NAME=` in the backend-bound path and
//! query), then the cookie; the route is the text after the first separator.
//!
//! Everything here borrows from the request head: no allocation.

use crate::config::model::StickySession;
use std::sync::Arc;

/// A session route found in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRoute<'a> {
    /// The cookie or parameter name used (`BALANCER_SESSION_STICKY`).
    pub sticky: &'a Arc<str>,
    /// The route (`BALANCER_SESSION_ROUTE`): the text after the first separator.
    pub route: &'a str,
}

/// `get_path_param`: searches `NAME=` in `path` then `?query` (as one string, like httpd's
/// balancer URL), and returns the value up to `?`/`&` (and `;` with scolonpathdelim).
pub fn url_param<'a>(
    path: &'a str,
    query: Option<&'a str>,
    name: &str,
    scolon: bool,
) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    let delims: &[u8] = if scolon { b";?&" } else { b"?&" };
    let parts: [&'a str; 2] = [path, query.unwrap_or("")];
    // Search the path, then the query (a name cannot span the '?' between them).
    for (pi, part) in parts.iter().enumerate() {
        if pi == 1 && query.is_none() {
            break;
        }
        let mut from = 0;
        while let Some(pos) = find_sub(&part[from..], name) {
            let after = from + pos + name.len();
            if part.as_bytes().get(after) == Some(&b'=') {
                // apr_strtok: skip leading delimiters, take up to the next one. In httpd's
                // string the path is followed by "?query".
                let mut v = &part[after + 1..];
                if pi == 0 {
                    if v.is_empty() {
                        // Value continues into "?query": strtok skips the '?'.
                        let q = query?;
                        return token(q, delims);
                    }
                    return token_in_path(v, query, delims);
                }
                v = v.trim_start_matches(|c: char| c.is_ascii() && delims.contains(&(c as u8)));
                return token(v, delims);
            }
            // Step past the first character of the match (names may be non-ASCII).
            from += pos + name.chars().next().map_or(1, char::len_utf8);
        }
    }
    None
}

/// Substring search: the needle's first byte by `memchr`, then a compare. The haystacks are
/// a path or a cookie header (bounded by the head limit) and the needle a cookie name, so this
/// beats setting up `memmem`'s searcher on every call (~300 instructions per request). A
/// match of a UTF-8 needle in UTF-8 text always starts on a char boundary.
fn find_sub(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let (&first, _) = n.split_first()?;
    let last_start = h.len().checked_sub(n.len())?;
    let mut from = 0;
    while from <= last_start {
        let at = from + memchr::memchr(first, &h[from..=last_start])?;
        if &h[at..at + n.len()] == n {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn token<'a>(s: &'a str, delims: &[u8]) -> Option<&'a str> {
    let s = s.trim_start_matches(|c: char| c.is_ascii() && delims.contains(&(c as u8)));
    if s.is_empty() {
        return None;
    }
    let end = s
        .bytes()
        .position(|b| delims.contains(&b))
        .unwrap_or(s.len());
    Some(&s[..end])
}

fn token_in_path<'a>(v: &'a str, query: Option<&'a str>, delims: &[u8]) -> Option<&'a str> {
    let t = v.trim_start_matches(|c: char| c.is_ascii() && delims.contains(&(c as u8)));
    if t.is_empty() {
        return query.and_then(|q| token(q, delims));
    }
    let end = t
        .bytes()
        .position(|b| delims.contains(&b))
        .unwrap_or(t.len());
    Some(&t[..end])
}

/// `get_cookie_param`: `NAME` at the start or after `;`, `,` or whitespace, optional
/// spaces, `=`, a non-empty value ending at `;` or `,`.
pub fn cookie_param<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    if name.is_empty() {
        return None;
    }
    let b = cookie_header.as_bytes();
    let mut from = 0;
    while let Some(pos) = find_sub(&cookie_header[from..], name) {
        let start = from + pos;
        from = start + name.chars().next().map_or(1, char::len_utf8);
        let ok_start =
            start == 0 || matches!(b[start - 1], b';' | b',') || b[start - 1].is_ascii_whitespace();
        if !ok_start {
            continue;
        }
        let mut i = start + name.len();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' && i + 1 < b.len() {
            let v = &cookie_header[i + 1..];
            let end = v
                .bytes()
                .position(|c| c == b';' || c == b',')
                .unwrap_or(v.len());
            return Some(&v[..end]);
        }
    }
    None
}

/// `find_session_route` (the extraction half): URL parameter first, then the cookies, then
/// the route after the first separator (`None` = `stickysessionsep=Off`: the whole value).
pub fn session_route<'a, I>(
    sticky: &'a StickySession,
    sep: Option<u8>,
    scolon: bool,
    path: &'a str,
    query: Option<&'a str>,
    cookies: I,
) -> Option<SessionRoute<'a>>
where
    I: IntoIterator<Item = &'a str>,
{
    let (value, used) = match url_param(path, query, &sticky.url_param, scolon) {
        Some(v) => (v, &sticky.url_param),
        None => {
            let v = cookies
                .into_iter()
                .find_map(|c| cookie_param(c, &sticky.cookie))?;
            (v, &sticky.cookie)
        }
    };
    let route = match sep {
        Some(s) => {
            let i = value.bytes().position(|c| c == s)?;
            &value[i + 1..]
        }
        None => value,
    };
    if route.is_empty() {
        return None;
    }
    Some(SessionRoute {
        sticky: used,
        route,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: &str, u: &str) -> StickySession {
        StickySession {
            cookie: c.into(),
            url_param: u.into(),
        }
    }

    #[test]
    fn substring_search_finds_the_first_match() {
        assert_eq!(find_sub("ROUTEID=.B", "ROUTEID"), Some(0));
        assert_eq!(find_sub("a; RROUTEID=.B", "ROUTEID"), Some(4));
        assert_eq!(find_sub("xROUTEI", "ROUTEID"), None, "a prefix at the end");
        assert_eq!(
            find_sub("abcROUTEID", "ROUTEID"),
            Some(3),
            "at the very end"
        );
        assert_eq!(
            find_sub("ROUTE", "ROUTEID"),
            None,
            "needle longer than haystack"
        );
        assert_eq!(find_sub("abc", ""), None);
        assert_eq!(find_sub("RRRRRRRRROUTEID", "ROUTEID"), Some(8));
        assert_eq!(find_sub("xéé=1", "é="), Some(3));
    }

    #[test]
    fn cookies_as_httpd() {
        assert_eq!(cookie_param("ROUTEID=.B", "ROUTEID"), Some(".B"));
        assert_eq!(cookie_param("XROUTEID=.B", "ROUTEID"), None);
        assert_eq!(cookie_param("a=b; ROUTEID = .B", "ROUTEID"), Some(" .B"));
        assert_eq!(cookie_param("a=b,ROUTEID=.C; x=1", "ROUTEID"), Some(".C"));
        assert_eq!(cookie_param("ROUTEID=", "ROUTEID"), None);
        assert_eq!(cookie_param("ROUTEID=\"x.B\"", "ROUTEID"), Some("\"x.B\""));
        // Non-ASCII names: stepping past a partial match must stay on char boundaries.
        assert_eq!(cookie_param("éx=1; é=.B", "é"), Some(".B"));
        assert_eq!(url_param("/éx/é=.B", None, "é", false), Some(".B"));
    }

    #[test]
    fn url_params_as_httpd() {
        assert_eq!(
            url_param("/api/x;ROUTEID=.B", None, "ROUTEID", false),
            Some(".B")
        );
        assert_eq!(
            url_param("/api/fooROUTEID=.B", None, "ROUTEID", false),
            Some(".B")
        );
        assert_eq!(
            url_param("/api/x", Some("a=1&ROUTEID=.B&c=2"), "ROUTEID", false),
            Some(".B")
        );
        assert_eq!(
            url_param("/x;jsessionid=abc.R2;foo=1", None, "jsessionid", false),
            Some("abc.R2;foo=1")
        );
        assert_eq!(
            url_param("/x;jsessionid=abc.R2;foo=1", None, "jsessionid", true),
            Some("abc.R2")
        );
        assert_eq!(url_param("/x", Some("y"), "ROUTEID", false), None);
    }

    #[test]
    fn routes_after_first_separator() {
        let st = s("ROUTEID", "ROUTEID");
        let r = |c: &'static str| {
            session_route(&st, Some(b'.'), false, "/api", None, [c]).map(|r| r.route)
        };
        assert_eq!(r("ROUTEID=.B"), Some("B"));
        assert_eq!(r("ROUTEID=x.y.B"), Some("y.B"));
        assert_eq!(r("ROUTEID=B"), None);
        assert_eq!(r("ROUTEID=B."), None);
        // URL first, then cookie.
        let got = session_route(
            &st,
            Some(b'.'),
            false,
            "/api",
            Some("ROUTEID=.B"),
            ["ROUTEID=.A"],
        )
        .unwrap();
        assert_eq!(got.route, "B");
        let j = s("JSESSIONID", "jsessionid");
        let got = session_route(
            &j,
            Some(b'.'),
            false,
            "/rcs/x;jsessionid=abc.RCS2",
            None,
            [],
        )
        .unwrap();
        assert_eq!((&**got.sticky, got.route), ("jsessionid", "RCS2"));
        let got = session_route(&j, None, false, "/rcs", None, ["JSESSIONID=abc.RCS2"]).unwrap();
        assert_eq!(got.route, "abc.RCS2");
    }
}
