//! A second, independent look at request framing, below hyper.
//!
//! hyper resolves a request that carries both `Content-Length` and `Transfer-Encoding` the
//! RFC 9112 way (chunked wins, the connection closes afterwards) and silently folds repeated
//! identical `Content-Length`s; the handler cannot see either from the parsed headers. A
//! proxy in front of other servers must refuse such requests outright (request smuggling),
//! so this wrapper follows the byte stream of a client connection — heads, `Content-Length`
//! bodies and chunked bodies — and records, per request head in order, whether its framing
//! headers conflict. The handler takes one verdict per request.
//!
//! ```text
//!  head ──blank line──▶ body (CL bytes | chunked) ──end──▶ head ...
//!    │ Upgrade / unparseable / too many queued verdicts
//!    └──────────────────────────────────────────────▶ stopped (no more verdicts)
//! ```

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Verdicts for the requests of one connection, in order.
#[derive(Debug, Default)]
pub struct Verdicts {
    q: Mutex<VecDeque<bool>>,
}

impl Verdicts {
    /// The next request's verdict: true when its framing headers conflict.
    pub fn next_conflicts(&self) -> bool {
        self.q
            .lock()
            .map(|mut q| q.pop_front().unwrap_or(false))
            .unwrap_or(false)
    }

    fn push(&self, v: bool) -> bool {
        match self.q.lock() {
            Ok(mut q) if q.len() < 256 => {
                q.push_back(v);
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Stopped,
}

/// Follows one connection's request byte stream.
#[derive(Debug)]
struct Tracker {
    state: State,
    line: [u8; 64],
    line_len: usize,
    line_overflow: bool,
    line_empty: bool,
    saw_request_line: bool,
    cl: u32,
    te: u32,
    te_chunked: bool,
    cl_value: Option<u64>,
    upgrade: bool,
    chunk: u64,
    chunk_digits: bool,
    chunk_ext: bool,
    verdicts: Arc<Verdicts>,
}

impl Tracker {
    fn new(verdicts: Arc<Verdicts>) -> Self {
        Tracker {
            state: State::Head,
            line: [0; 64],
            line_len: 0,
            line_overflow: false,
            line_empty: true,
            saw_request_line: false,
            cl: 0,
            te: 0,
            te_chunked: false,
            cl_value: None,
            upgrade: false,
            chunk: 0,
            chunk_digits: false,
            chunk_ext: false,
            verdicts,
        }
    }

    fn reset_head(&mut self) {
        self.saw_request_line = false;
        self.cl = 0;
        self.te = 0;
        self.te_chunked = false;
        self.cl_value = None;
        self.upgrade = false;
    }

    fn header_line(&mut self) {
        let l = &self.line[..self.line_len];
        let lower = |p: &[u8]| l.len() >= p.len() && l[..p.len()].eq_ignore_ascii_case(p);
        if lower(b"content-length:") {
            self.cl += 1;
            let v = std::str::from_utf8(&l[15..]).unwrap_or("").trim();
            self.cl_value = v.parse().ok();
        } else if lower(b"transfer-encoding:") {
            self.te += 1;
            let v = std::str::from_utf8(&l[18..]).unwrap_or("").trim();
            self.te_chunked = v
                .rsplit(',')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if lower(b"upgrade:") {
            self.upgrade = true;
        }
    }

    fn end_of_head(&mut self) {
        let conflict = (self.cl > 0 && self.te > 0) || self.cl > 1 || self.te > 1;
        if !self.verdicts.push(conflict) || conflict || self.upgrade {
            // After a conflict or an upgrade the stream is not HTTP we can follow.
            self.state = State::Stopped;
            return;
        }
        self.state = if self.te > 0 {
            if self.te_chunked {
                State::ChunkSize
            } else {
                State::Stopped
            }
        } else {
            match self.cl_value {
                Some(0) | None if self.cl == 0 => State::Head,
                Some(n) => State::Body(n),
                None => State::Stopped,
            }
        };
        if matches!(self.state, State::Body(0)) {
            self.state = State::Head;
        }
        self.reset_head();
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Stopped => return,
                State::Body(n) => {
                    let take = (*n).min(data.len() as u64) as usize;
                    *n -= take as u64;
                    data = &data[take..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64) as usize;
                    *n -= take as u64;
                    data = &data[take..];
                    if *n == 0 {
                        self.state = State::ChunkDataEnd;
                    }
                }
                State::ChunkDataEnd => {
                    let c = data[0];
                    data = &data[1..];
                    if c == b'\n' {
                        self.state = State::ChunkSize;
                    }
                }
                State::ChunkSize => {
                    let c = data[0];
                    data = &data[1..];
                    match c {
                        b'\n' => {
                            if !self.chunk_digits {
                                self.state = State::Stopped;
                            } else if self.chunk == 0 {
                                self.state = State::Trailers;
                                self.line_empty = true;
                            } else {
                                self.state = State::ChunkData(self.chunk);
                            }
                            self.chunk = 0;
                            self.chunk_digits = false;
                            self.chunk_ext = false;
                        }
                        b'\r' => {}
                        b';' => self.chunk_ext = true,
                        _ if self.chunk_ext => {}
                        _ => match (c as char).to_digit(16) {
                            Some(d) if self.chunk < (1 << 56) => {
                                self.chunk = self.chunk * 16 + u64::from(d);
                                self.chunk_digits = true;
                            }
                            _ if c == b' ' || c == b'\t' => {}
                            _ => self.state = State::Stopped,
                        },
                    }
                }
                State::Trailers => {
                    let c = data[0];
                    data = &data[1..];
                    match c {
                        b'\n' => {
                            if self.line_empty {
                                self.state = State::Head;
                            }
                            self.line_empty = true;
                        }
                        b'\r' => {}
                        _ => self.line_empty = false,
                    }
                }
                State::Head => {
                    // Find the end of the current line in this chunk of data.
                    match memchr::memchr(b'\n', data) {
                        None => {
                            self.append_line(data);
                            data = &[];
                        }
                        Some(i) => {
                            self.append_line(&data[..i]);
                            data = &data[i + 1..];
                            self.line_done();
                        }
                    }
                }
            }
        }
    }

    /// Keeps the first 64 bytes of a line (enough to recognise a framing header); a line of
    /// nothing but CRs counts as empty.
    fn append_line(&mut self, part: &[u8]) {
        if self.line_empty && part.iter().any(|&c| c != b'\r') {
            self.line_empty = false;
        }
        let room = self.line.len() - self.line_len;
        let n = room.min(part.len());
        self.line[self.line_len..self.line_len + n].copy_from_slice(&part[..n]);
        self.line_len += n;
        if part.len() > n {
            self.line_overflow = true;
        }
    }

    fn line_done(&mut self) {
        let empty = self.line_empty;
        if empty {
            if self.saw_request_line {
                self.end_of_head();
            }
            // Blank lines before a request line are skipped (RFC 9112 §2.2).
        } else if !self.saw_request_line {
            self.saw_request_line = true;
        } else {
            self.header_line();
        }
        self.line_len = 0;
        self.line_overflow = false;
        self.line_empty = true;
    }
}

/// A client stream whose reads are followed by a framing tracker.
pub struct Tracked<S> {
    inner: S,
    tracker: Tracker,
}

impl<S> Tracked<S> {
    /// Wraps `inner`; verdicts go to the returned queue.
    pub fn new(inner: S) -> (Self, Arc<Verdicts>) {
        let v = Arc::new(Verdicts::default());
        (
            Tracked {
                inner,
                tracker: Tracker::new(v.clone()),
            },
            v,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r
            && !matches!(this.tracker.state, State::Stopped)
        {
            this.tracker.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(chunks: &[&[u8]]) -> Vec<bool> {
        let v = Arc::new(Verdicts::default());
        let mut t = Tracker::new(v.clone());
        for c in chunks {
            t.feed(c);
        }
        let q = v.q.lock().unwrap();
        q.iter().copied().collect()
    }

    #[test]
    fn follows_bodies_and_flags_conflicts() {
        assert_eq!(
            verdicts(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"]),
            vec![false, false]
        );
        // A body that looks like a head is skipped.
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut req =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        req.extend_from_slice(b"GET /3 HTTP/1.1\r\n\r\n");
        assert_eq!(verdicts(&[&req]), vec![false, false]);
        // Chunked body, split across reads.
        assert_eq!(
            verdicts(&[
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                b"lo\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"
            ]),
            vec![false, false]
        );
        assert_eq!(
            verdicts(&[
                b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            ]),
            vec![true]
        );
        assert_eq!(
            verdicts(&[b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"]),
            vec![true]
        );
    }
}
