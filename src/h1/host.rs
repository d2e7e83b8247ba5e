//! The `Host` field's rules (RFC 9112 §3.2, RFC 9110 §7.2, RFC 3986 §3.2.2), shared by the
//! HTTP/1.1 server's head parser and the check phase of HTTP/2 requests: an
//! HTTP/1.1 request has exactly one `Host`, and its value is one authority (`host[:port]`).
//! Everything else is a 400: the server, the tenant and `X-Forwarded-Host` are chosen from
//! this value, so an ambiguous one must never reach routing or a member.
//!
//! May import: nothing outside `h1`.

use super::fields::{FieldRole, FieldsView};

/// The authority a request names: an absolute-form target's (or HTTP/2's `:authority`),
/// which takes the place of `Host` (RFC 9112 §3.2.2), else its `Host` field.
pub fn request_authority<'a>(uri: &'a http::Uri, fields: FieldsView<'a>) -> Option<&'a [u8]> {
    match uri.authority() {
        Some(a) => Some(a.as_str().as_bytes()),
        None => fields.role_value(FieldRole::Host),
    }
}

/// Why a request's `Host` fields are refused (the text of the 400 page).
pub type HostRefusal = &'static str;

/// Checks the `Host` fields of one request: `count` of them, `value` the first (already
/// checked with [`valid_host`] where it was read), `http11` for an HTTP/1.1 request.
/// An HTTP/1.0 request may leave `Host` out (the server's name stands in).
pub fn check_host_count(count: u32, http11: bool) -> Result<(), HostRefusal> {
    match count {
        0 if http11 => Err("Bad request: an HTTP/1.1 request must carry a Host field."),
        0 | 1 => Ok(()),
        _ => Err("Bad request: more than one Host field."),
    }
}

/// True when `v` (surrounding whitespace allowed) is one authority as RFC 3986 writes it:
/// `reg-name`, IPv4 or `[IPv6]`, with an optional numeric port, or empty (a request whose
/// target has no authority). Stricter than RFC 3986 in one place: a `,` is refused although
/// `reg-name` allows it, because a `Host` of `a, b` is the list form two fields fold into
/// (RFC 9110 §5.3), which a server must refuse (RFC 9112 §3.2); no DNS name contains one.
pub fn valid_host(v: &[u8]) -> bool {
    // The common case in one pass: reg-name bytes and at most one ':' followed by digits
    // (a table lookup a byte); anything else (`[`, `%`, spaces) takes the full reading.
    let mut colon = None;
    for (i, &b) in v.iter().enumerate() {
        if b == b':' && colon.is_none() {
            colon = Some(i);
        } else if !REG_NAME[b as usize] || (colon.is_some() && !b.is_ascii_digit()) {
            return valid_host_slow(v);
        }
    }
    true
}

/// [`valid_host`] for what its one pass does not settle.
#[cold]
fn valid_host_slow(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        // IP-literal: hex digits, ':' and '.' (an embedded IPv4), then ']' and the port.
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let lit = &rest[..end];
        if lit.is_empty()
            || !lit
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        let after = &rest[end + 1..];
        match after.split_first() {
            None => return true,
            Some((b':', port)) => (&v[..0], port),
            Some(_) => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &v[v.len()..]),
        }
    };
    port.iter().all(u8::is_ascii_digit) && valid_reg_name(host)
}

/// The bytes `reg-name` allows besides `%` escapes: unreserved and sub-delims, without `,`.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

/// `reg-name` of RFC 3986 (unreserved, pct-encoded and sub-delims) without `,`: one table
/// lookup a byte (the `Host` of every request passes here).
fn valid_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        let b = h[i];
        if !REG_NAME[b as usize] {
            if b != b'%'
                || !(h.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && h.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 2;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_that_pass() {
        for h in [
            "",
            "x",
            "example.com",
            "example.com:8443",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::1]",
            "my_host.local",
            "caf%C3%A9.example",
            " spaced.example ",
            "host:",
        ] {
            assert!(valid_host(h.as_bytes()), "{h:?}");
        }
    }

    #[test]
    fn authorities_that_are_refused() {
        for h in [
            "a b",
            "a/b",
            "a, b",
            "a,b",
            "[::1",
            "[::1]x",
            "[]",
            "[zz::1]",
            "a:b",
            "a:80:90",
            "user@host",
            "a?b",
            "a#b",
            "a\\b",
            "%zz",
            "%4",
        ] {
            assert!(!valid_host(h.as_bytes()), "{h:?}");
        }
    }

    #[test]
    fn counts() {
        assert!(check_host_count(0, true).is_err());
        assert!(check_host_count(0, false).is_ok());
        assert!(check_host_count(1, true).is_ok());
        assert!(check_host_count(2, true).is_err());
        assert!(check_host_count(2, false).is_err());
    }
}
