//! Body types on the request path. Bodies stream frame by frame (`Bytes`), never collected.
//!
//! * [`UpBody`]: what is sent to a member: nothing, or the client's body with a per-frame
//!   read timeout (a client that stops sending mid-body cannot hold a member forever).
//! * [`DownBody`]: what is sent to the client: a short body balancerd made, or the member's
//!   body ([`MemberBody`]), which returns the member connection to its pool when it ends and
//!   releases the member's busy count when it ends or is dropped.

use crate::h1::fields::Fields;
use crate::upstream::exchange::MemberBody;
use crate::upstream::peer::Peer;
use crate::util::deadline::{RateDeadline, ReadStage};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Error type of the bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the client sends it, from whichever server read the request.
#[derive(Debug)]
pub enum ClientBody {
    /// No body.
    Empty,
    /// Read by balancerd's HTTP/1.1 server (plain or TLS).
    H1(crate::h1::request_body::RequestBody),
    /// An HTTP/2 stream's data, read by balancerd's HTTP/2 server.
    H2(H2Body),
}

/// An HTTP/2 request stream's body: DATA frames as they arrive, each given back to the
/// flow-control window once read (the client may then send more), trailers dropped.
#[derive(Debug)]
pub struct H2Body {
    recv: h2::RecvStream,
    /// The request's `Content-Length`, when it had one (the h2 crate checks the DATA
    /// against it and fails the stream on a mismatch).
    length: Option<u64>,
}

impl H2Body {
    /// The body of a stream whose request declared `length` bytes (if it did).
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        H2Body { recv, length }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = self.get_mut();
        match ready!(me.recv.poll_data(cx)) {
            Some(Ok(data)) => {
                let _ = me.recv.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the client's HTTP/2 stream failed: {e}"),
            ))))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

/// The body sent to a member.
#[derive(Debug)]
pub enum UpBody {
    /// No body.
    Empty,
    /// The client's body, streamed. (Boxed: a request without a body, the common case,
    /// moves an `UpBody` of two words instead of the upload's state.)
    Client(Box<ClientUpload>),
}

/// The state of a client's body on its way to a member.
#[derive(Debug)]
pub struct ClientUpload {
    /// The client body.
    inner: ClientBody,
    /// Per-frame read timeout.
    timeout: Duration,
    /// The body's overall deadline (`RequestReadTimeout body=`), from the first read.
    stage: Option<ReadStage>,
    /// The running deadline of `stage`.
    deadline: Option<RateDeadline>,
    /// `LimitRequestBody` (0: none) and the bytes read so far.
    limit: u64,
    read: u64,
    /// Armed while waiting for a frame.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where to count bytes sent (bytraffic).
    member: Option<Arc<Peer>>,
    /// True once any frame was read: the body can no longer be replayed.
    touched: bool,
}

impl UpBody {
    /// Wraps a client body: `timeout` between reads, `stage` for the whole body, and at
    /// most `limit` bytes (`LimitRequestBody`; 0: no limit).
    pub fn client(
        inner: ClientBody,
        timeout: Duration,
        stage: Option<ReadStage>,
        limit: u64,
    ) -> Self {
        UpBody::Client(Box::new(ClientUpload {
            inner,
            timeout,
            stage,
            deadline: None,
            limit,
            read: 0,
            sleep: None,
            member: None,
            touched: false,
        }))
    }

    /// True when some of the client body has been read (a retry would lose it).
    pub fn touched(&self) -> bool {
        matches!(self, UpBody::Client(u) if u.touched)
    }

    /// For zero-copy forwarding: the rest of a plain client's `Content-Length` body of at
    /// least `min` bytes, as a socket run (see [`crate::h1::request_body::RequestBody::take_plain_run`]).
    /// The body counts as read from here on (no replay).
    pub fn take_plain_run(&mut self, min: u64) -> Option<PlainRun<'_>> {
        let UpBody::Client(u) = self else {
            return None;
        };
        let ClientUpload {
            inner: ClientBody::H1(body),
            timeout,
            stage,
            deadline,
            member,
            touched,
            ..
        } = &mut **u
        else {
            return None;
        };
        let (buffered, socket, rest) = body.take_plain_run(min)?;
        *touched = true;
        let mut deadline =
            deadline.or_else(|| stage.map(|s| RateDeadline::start(s, Instant::now())));
        if let Some(d) = deadline.as_mut() {
            d.on_bytes(buffered.len());
        }
        Some(PlainRun {
            buffered,
            socket,
            rest,
            timeout: *timeout,
            deadline,
            member: member.clone(),
        })
    }

    /// True when [`UpBody::take_plain_run`] would give a run.
    pub fn can_splice(&self, min: u64) -> bool {
        matches!(self, UpBody::Client(u) if matches!(&u.inner, ClientBody::H1(body) if body.can_splice(min)))
    }

    /// Ends a run taken with [`UpBody::take_plain_run`].
    pub fn plain_run_done(&mut self, moved_all: bool) {
        if let UpBody::Client(u) = self
            && let ClientBody::H1(body) = &mut u.inner
        {
            body.plain_run_done(moved_all);
        }
    }

    /// Counts the bytes sent to `member`.
    pub fn count_for(&mut self, m: &Arc<Peer>) {
        if let UpBody::Client(u) = self {
            u.member = Some(m.clone());
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Client(u) => {
                let ClientUpload {
                    inner,
                    timeout,
                    stage,
                    deadline,
                    limit,
                    read,
                    sleep,
                    member,
                    touched,
                } = &mut **u;
                if deadline.is_none()
                    && let Some(st) = stage
                {
                    *deadline = Some(RateDeadline::start(*st, Instant::now()));
                }
                match Pin::new(inner).poll_frame(cx) {
                    Poll::Ready(f) => {
                        *sleep = None;
                        *touched = true;
                        if let Some(Ok(fr)) = &f
                            && let Some(d) = fr.data_ref()
                        {
                            if let Some(m) = member.as_ref() {
                                m.transferred.fetch_add(d.len() as u64, Relaxed);
                            }
                            *read += d.len() as u64;
                            if *limit > 0 && *read > *limit {
                                return Poll::Ready(Some(Err(Box::new(
                                    crate::upstream::error::BodyTooLarge(*limit),
                                ))));
                            }
                            if let Some(dl) = deadline.as_mut() {
                                if dl.passed(Instant::now()) {
                                    return Poll::Ready(Some(Err(body_too_slow())));
                                }
                                dl.on_bytes(d.len());
                            }
                        }
                        Poll::Ready(f)
                    }
                    Poll::Pending => {
                        // Whichever comes first: `timeout` without a frame, or the body's
                        // deadline (which only moves when a frame arrives, and then the
                        // sleep is made afresh).
                        let s = sleep.get_or_insert_with(|| {
                            let idle = Instant::now() + *timeout;
                            let until = match deadline {
                                Some(d) if d.at() < idle => d.at(),
                                _ => idle,
                            };
                            Box::pin(tokio::time::sleep_until(until))
                        });
                        if s.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Some(Err(body_too_slow())));
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Client(u) => u.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Client(u) => u.inner.size_hint(),
        }
    }
}

/// The error a client body that stalls or falls below its minimum rate ends with (the
/// client is blamed: 408, no member marked).
fn body_too_slow() -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "timed out reading the request body from the client",
    ))
}

/// The rest of a client's request body as bytes on its socket, for zero-copy forwarding.
#[derive(Debug)]
pub struct PlainRun<'a> {
    /// Bytes of the body already read (sent first).
    pub buffered: Bytes,
    /// The client's socket.
    pub socket: &'a tokio::net::TcpStream,
    /// Bytes of the body still on the socket.
    pub rest: u64,
    /// How long the body may stall.
    pub timeout: Duration,
    /// The body's overall deadline (`RequestReadTimeout body=`), running.
    pub deadline: Option<RateDeadline>,
    /// Where to count the bytes sent (bytraffic).
    pub member: Option<Arc<Peer>>,
}

/// Decrements a member's in-flight count when the exchange ends.
#[derive(Debug)]
pub struct BusyGuard(pub Arc<Peer>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

/// The body sent to the client.
// The member's state is boxed although `Member` is the common case: a response is moved
// ~9 times on its way out (each `async fn` layer returns it), and at 344 bytes each move
// was a `memcpy` of ~64 instructions. Boxed, the response is ~150 bytes: 18.13k -> 17.89k
// instructions per proxied GET (20.52k -> 20.05k with browser-sized fields;
// `benches/profile/instructions.sh`). The box is a `Recycled` block, taken back from a
// per-thread cache: no allocator call in steady state.
#[derive(Debug)]
pub enum DownBody {
    /// A body balancerd made (error pages, status).
    Full(Option<Bytes>),
    /// A member's body; its connection goes back to the pool at the end.
    Member(crate::util::recycle::Recycled<MemberDown>),
}

/// Counts `n` bytes of a member's response body sent on: the member's own counter and the
/// process total (the streamed and the spliced paths both count here).
pub fn count_member_bytes(member: &Peer, n: usize) {
    member.read.fetch_add(n as u64, Relaxed);
    crate::telemetry::stats::STATS
        .bytes
        .fetch_add(n as u64, Relaxed);
}

/// A member's body with what the response needs of its member.
#[derive(Debug)]
pub struct MemberDown {
    /// The member's response body.
    pub inner: MemberBody,
    /// Released on drop.
    pub busy: Option<BusyGuard>,
    /// Counts bytes read.
    pub member: Arc<Peer>,
    /// The member's name, for logs.
    pub name: Arc<str>,
    /// The member's header fields when they go to the client as received (the plain
    /// HTTP/1.1 server writes them through); `None` when they are in the response's
    /// `HeaderMap`.
    pub fields: Option<Fields>,
    /// The request head's buffer: the plain server empties it and writes the response head
    /// into it, so one head buffer serves both directions of a request.
    pub head_buf: Vec<u8>,
}

impl DownBody {
    /// A short body.
    pub fn full(b: impl Into<Bytes>) -> Self {
        DownBody::Full(Some(b.into()))
    }

    /// No body.
    pub fn empty() -> Self {
        DownBody::Full(None)
    }
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            DownBody::Full(b) => Poll::Ready(b.take().map(|d| {
                crate::telemetry::stats::STATS
                    .bytes
                    .fetch_add(d.len() as u64, Relaxed);
                Ok(Frame::data(d))
            })),
            DownBody::Member(m) => match ready!(m.inner.poll_data(cx)) {
                Some(Ok(d)) => {
                    count_member_bytes(&m.member, d.len());
                    if m.inner.is_done() {
                        m.busy.take();
                    }
                    Poll::Ready(Some(Ok(Frame::data(d))))
                }
                None => {
                    m.busy.take();
                    Poll::Ready(None)
                }
                Some(Err(e)) => {
                    // The member broke mid-body: its connection is dropped, the client's
                    // is aborted.
                    tracing::warn!(member = %m.name, "member connection broke while sending the response body: {e}");
                    Poll::Ready(Some(Err(e.into())))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownBody::Full(b) => b.is_none(),
            DownBody::Member(m) => m.inner.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            DownBody::Full(None) => SizeHint::with_exact(0),
            DownBody::Member(m) => m.inner.size_hint(),
        }
    }
}
