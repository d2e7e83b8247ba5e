//! A request body read from a client connection of balancerd's HTTP/1.1 server (plain or
//! TLS), frame by frame: `Content-Length` or chunked (through the one chunked decoder), with
//! `Expect: 100-continue` answered when the body is first wanted. The connection's read side
//! moves into the body and goes back to the connection through a [`ReturnSlot`] when the body
//! ends or is dropped; on a plain connection a `Content-Length` run can instead be handed to
//! splice(2) ([`RequestBody::take_plain_run`]).

use super::body::{BodyDecoder, Step};
use super::framing::BodyFraming;
use crate::net::client_io::ClientRead;
use crate::net::read::{SMALL_READ, poll_fill};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::net::TcpStream;

/// Largest read of a request body.
const MAX_BODY_READ: usize = 64 * 1024;

/// The socket's read side and the bytes read but not yet used, handed back by a request
/// body when it ends or is dropped.
#[derive(Debug)]
pub struct Returned {
    /// The read side.
    pub rd: ClientRead,
    /// Bytes read past the body (a pipelined request).
    pub buf: BytesMut,
    /// True when the body was read to its end (the connection can carry another request).
    pub complete: bool,
}

/// Where a request body hands the read side back.
pub type ReturnSlot = Arc<Mutex<Option<Returned>>>;

/// Where the answer to `Expect: 100-continue` stands. It is sent when the body is first
/// wanted (hyper's behaviour: the client waits for it before sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// Not asked for, or sent.
    No,
    /// Asked for, not sent yet.
    Wanted,
    /// Queued on a TLS connection, not pushed out to the socket yet.
    Flushing,
}

/// A request body read from a client connection, frame by frame.
#[derive(Debug)]
pub struct RequestBody {
    rd: Option<ClientRead>,
    buf: BytesMut,
    body: BodyDecoder,
    expect_continue: Continue,
    back: ReturnSlot,
    next_read: usize,
}

impl RequestBody {
    /// A body of `framing` (`Length` or `Chunked`) read from `rd`, starting with the bytes
    /// already in `buf`; the read side goes back through `back` when the body ends or is
    /// dropped.
    pub fn new(
        rd: Option<ClientRead>,
        buf: BytesMut,
        framing: BodyFraming,
        expect_continue: bool,
        back: ReturnSlot,
    ) -> Self {
        RequestBody {
            rd,
            buf,
            // A request body is never close-delimited (RFC 9112 §6.3: that is a response's).
            body: match framing {
                BodyFraming::UntilClose => BodyDecoder::Done,
                f => BodyDecoder::new(f),
            },
            expect_continue: if expect_continue {
                Continue::Wanted
            } else {
                Continue::No
            },
            back,
            next_read: SMALL_READ,
        }
    }

    /// Gives the read side back; `complete` when the body was read to its end.
    fn hand_back(&mut self, complete: bool) {
        if let Some(rd) = self.rd.take() {
            let buf = std::mem::take(&mut self.buf);
            if let Ok(mut slot) = self.back.lock() {
                *slot = Some(Returned { rd, buf, complete });
            }
        }
    }

    /// For zero-copy forwarding ([`crate::net::splice`]): when the rest of the body is a
    /// `Content-Length` run of at least `min` bytes, the bytes already read (to send first),
    /// the client's socket, and how many bytes of the body follow on it. Answers `Expect:
    /// 100-continue` (the body is wanted now). Call [`RequestBody::plain_run_done`] after.
    pub fn take_plain_run(&mut self, min: u64) -> Option<(Bytes, &TcpStream, u64)> {
        if !self.can_splice(min) {
            return None;
        }
        let rd = self.rd.as_ref()?;
        if self.expect_continue == Continue::Wanted {
            // A plain socket: sent at once.
            rd.send_continue();
            self.expect_continue = Continue::No;
        }
        let (buffered, rest) = self.body.take_run(&mut self.buf, min)?;
        Some((buffered, rd.tcp()?, rest))
    }

    /// True when [`RequestBody::take_plain_run`] would give a run: a `Content-Length` rest of
    /// at least `min` bytes on a plain connection.
    pub fn can_splice(&self, min: u64) -> bool {
        self.body.length_left().is_some_and(|left| left >= min)
            && self.rd.as_ref().is_some_and(|r| r.tcp().is_some())
    }

    /// Ends a run taken with [`RequestBody::take_plain_run`]; the connection can carry
    /// another request only when every byte moved.
    pub fn plain_run_done(&mut self, moved_all: bool) {
        self.body.finish();
        self.hand_back(moved_all);
    }

    /// Ends the body with an error of `kind`: `InvalidData` for a malformed body,
    /// `UnexpectedEof` for a client that closed early, the socket's own kind otherwise (the
    /// member exchange tells the client's faults apart by it).
    fn fail(
        &mut self,
        kind: io::ErrorKind,
        why: String,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.body.finish();
        self.hand_back(false);
        Poll::Ready(Some(Err(io::Error::new(kind, why))))
    }

    /// Reads more of the body into `buf`.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(rd) = self.rd.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.expect_continue == Continue::Wanted {
            rd.send_continue();
            self.expect_continue = Continue::Flushing;
        }
        if self.expect_continue == Continue::Flushing {
            ready!(rd.poll_flush_continue(cx))?;
            self.expect_continue = Continue::No;
        }
        let want = self.body.read_size(self.next_read);
        let n = ready!(poll_fill(rd, cx, &mut self.buf, want))?;
        if n >= want && want < MAX_BODY_READ {
            self.next_read = (want * 2).min(MAX_BODY_READ);
        }
        Poll::Ready(Ok(n))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let me = self.get_mut();
        loop {
            match me.body.decode(&mut me.buf) {
                Ok(Step::Data(d)) => {
                    if me.body.is_done() {
                        me.hand_back(true);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::End) => {
                    me.hand_back(true);
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    return me.fail(io::ErrorKind::InvalidData, format!("{e} from the client"));
                }
            }
            match ready!(me.poll_more(cx)) {
                Ok(0) => {
                    return me.fail(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the request body ended".into(),
                    );
                }
                Ok(_) => {}
                Err(e) => return me.fail(e.kind(), format!("reading the request body: {e}")),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let complete = self.body.is_done();
        self.hand_back(complete);
    }
}
