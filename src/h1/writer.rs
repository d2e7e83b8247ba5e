//! The head writer of the HTTP/1.1 codec, for both directions: a request line (towards a
//! member) or a status line (towards a client), then header fields written straight into one
//! buffer (names and values as given, no `HeaderMap`), ended by the body's framing field. A
//! request head's buffer is sized once from the client's fields ([`HeadWriter::room_for`]); a
//! response head reuses the request head's buffer ([`HeadWriter::response`]).

use super::fields::FieldsView;
use super::framing::BodyFraming;

use std::cell::RefCell;

thread_local! {
    /// The `Date` value, formatted once a second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [b' '; 29])) };
}

/// A head being written: request or status line, then header fields.
pub struct HeadWriter {
    out: Vec<u8>,
    /// Where the request target lies in `out`.
    target: std::ops::Range<usize>,
}

impl HeadWriter {
    /// Starts a head with its request line; `room` is the expected size of the fields.
    pub fn new(method: &http::Method, target: &str, room: usize) -> Self {
        Self::with_target(method, &[target.as_bytes()], room)
    }

    /// Starts a head whose request target is `target`'s pieces joined (the member's base
    /// path, the forwarded path, the query): written in place, never assembled apart.
    pub fn with_target(method: &http::Method, target: &[&[u8]], room: usize) -> Self {
        let target_len: usize = target.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(method.as_str().len() + target_len + room + 64);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        let start = out.len();
        for piece in target {
            out.extend_from_slice(piece);
        }
        let target = start..out.len();
        out.extend_from_slice(b" HTTP/1.1\r\n");
        HeadWriter { out, target }
    }

    /// Makes the request line say `HTTP/1.0` (`force-proxy-request-1.0`).
    pub fn http10(&mut self) {
        let at = self.target.end + " HTTP/1.".len();
        if let Some(minor) = self.out.get_mut(at) {
            *minor = b'0';
        }
    }

    /// Starts a response head (`HTTP/1.x CODE REASON`) in `buf`, emptied first: its room is
    /// reused (the request head's buffer, which the member's head was written into).
    #[inline]
    pub fn response(mut buf: Vec<u8>, status: http::StatusCode) -> Self {
        buf.clear();
        if buf.capacity() == 0 {
            buf.reserve(512);
        }
        // The status line names the version the server speaks, whatever the request's
        // (RFC 9110 §6.2; httpd and nginx answer an HTTP/1.0 request with `HTTP/1.1`); the
        // request's version decides only the framing and keep-alive.
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(status.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        buf.extend_from_slice(b"\r\n");
        HeadWriter {
            out: buf,
            target: 0..0,
        }
    }

    /// A `Date` field with the current time (formatted once a second per thread).
    pub fn date(&mut self) {
        let out = &mut self.out;
        with_date(|text| {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        });
    }

    /// The request target as written (between the method and the version).
    pub fn target(&self) -> &[u8] {
        self.out.get(self.target.clone()).unwrap_or(&[])
    }

    /// Room to reserve for `client`'s fields plus the few balancerd adds.
    pub fn room_for(client: FieldsView<'_>) -> usize {
        match client {
            FieldsView::Raw(r) => r.head_len() + 160,
            FieldsView::Map(m) => {
                m.iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum::<usize>()
                    + 160
            }
        }
    }

    /// One field.
    #[inline]
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A list field: the client's values and ours joined with ", " on one line (httpd's
    /// apr_table_mergen); nothing when there are none.
    pub fn list_header<'v>(
        &mut self,
        name: &[u8],
        theirs: impl Iterator<Item = &'v [u8]>,
        ours: Option<&'v [u8]>,
    ) {
        let start = self.out.len();
        let mut first = true;
        for v in theirs.chain(ours) {
            if first {
                self.out.extend_from_slice(name);
                self.out.extend_from_slice(b": ");
                first = false;
            } else {
                self.out.extend_from_slice(b", ");
            }
            self.out.extend_from_slice(v);
        }
        if self.out.len() > start {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Ends the head: the body framing field (`content-length: N`, `transfer-encoding:
    /// chunked`, or none) and the blank line. The head stays a `Vec`: it is only ever
    /// borrowed for writing, and `Bytes::from` a `Vec` with spare room allocates.
    pub fn finish(mut self, framing: BodyFraming) -> Vec<u8> {
        match framing {
            BodyFraming::None | BodyFraming::UntilClose => {}
            BodyFraming::Length(n) => {
                let mut digits = [0u8; 20];
                let mut i = digits.len();
                let mut v = n;
                loop {
                    i -= 1;
                    digits[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                self.header(b"content-length", &digits[i..]);
            }
            BodyFraming::Chunked => self
                .out
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        self.out.extend_from_slice(b"\r\n");
        self.out
    }
}

/// Runs `f` on the current time as an HTTP date (formatted once a second per thread).
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let secs = crate::util::clock::coarse_unix_secs();
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let s = httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            );
            if s.len() == text.len() {
                text.copy_from_slice(s.as_bytes());
                *at = secs;
            }
        }
        f(&text[..])
    })
}

/// The current time as a `Date` field value (for the HTTP/2 server's responses).
pub fn date_value() -> http::HeaderValue {
    with_date(|text| {
        http::HeaderValue::from_bytes(text).unwrap_or(http::HeaderValue::from_static(""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_target_is_written_from_its_pieces_and_read_back() {
        let mut w = HeadWriter::with_target(
            &http::Method::PUT,
            &[b"/base", b"/rec ord", b"?", b"q=1"],
            0,
        );
        assert_eq!(w.target(), b"/base/rec ord?q=1");
        w.header(b"host", b"h");
        // Still the target once fields follow it.
        assert_eq!(w.target(), b"/base/rec ord?q=1");
        let head = w.finish(BodyFraming::Length(0));
        assert_eq!(
            head,
            b"PUT /base/rec ord?q=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
        );
    }
}
