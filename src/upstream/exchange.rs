//! The HTTP/1.1 client side of one exchange with a member, written for a proxy.
//!
//! hyper's client connection runs a task per connection and talks to it through a request
//! channel and a response oneshot, with its own read and write buffers: per request that is a
//! second task wake-up and ~12k instructions, and per held long-poll ~16 KiB. Here the
//! request's own task does the work:
//!
//! * **send**: the request head is encoded once into one buffer and written together with the
//!   first body frame (vectored write); the body streams frame by frame, re-framed as
//!   `Content-Length` or `chunked`. The response is read *while* the body is sent, so a member
//!   that answers early (401, 413) is heard at once; the rest of the body is then not sent and
//!   the connection is not reused.
//! * **response head**: parsed with `httparse` from the connection's read buffer; header values
//!   are slices of that buffer (no copy). Interim `1xx` answers are skipped; `101` hands the
//!   connection over as a tunnel.
//! * **response body**: [`MemberBody`] yields the bytes as they arrive (`Content-Length`,
//!   `chunked` decoded, or until close), reading in sizes that grow with the transfer (8 KiB to
//!   64 KiB), and gives the connection back to the pool after the last byte.
//! * **memory**: a plain connection waiting for an answer holds no read buffer (it waits for
//!   readiness first), so a held long-poll costs its socket and a few hundred bytes of state.

use super::body::{PlainRun, UpBody};
use super::error::{ErrorKind, Phase, ProxyError, client_body_kind};
use super::pool::PooledConn;
use crate::h1::body::{BodyDecoder, Step};
use crate::h1::chunked::chunk_size_line;
use crate::h1::framing::BodyFraming;
use crate::h1::head::{ResponseHead, parse_response};
use crate::h1::interim::Interim;
use crate::net::read::{SMALL_READ, poll_fill};
use crate::net::splice::{SPLICE_MIN, SpliceError, SpliceRun};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, SizeHint};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// First read size (a head, a small body: through the worker's scratch buffer); doubled
/// while reads fill it, up to [`MAX_READ`].
const FIRST_READ: usize = SMALL_READ;
/// Largest read (a 100 MB download moves in 64 KiB steps: as fast as 256 KiB steps here, and
/// a quarter of the memory per download).
const MAX_READ: usize = 64 * 1024;

/// The byte stream to a member: TCP, or TLS over TCP.
#[derive(Debug)]
pub enum MemberIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (boxed: the session state is large and rare).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for MemberIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MemberIo::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MemberIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MemberIo::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberIo::Plain(s) => crate::net::send::poll_send_vectored(s, cx, bufs),
            MemberIo::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberIo::Plain(s) => Pin::new(s).poll_flush(cx),
            MemberIo::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MemberIo::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// One connection to a member: the stream and its read buffer.
#[derive(Debug)]
pub struct MemberConn {
    io: MemberIo,
    /// Bytes read and not consumed yet (empty between exchanges).
    rbuf: BytesMut,
    /// The response timer, kept from one exchange to the next (see [`Self::take_timer`]).
    timer: Option<Pin<Box<Sleep>>>,
    /// The member speaks AJP13 (`ajp://`), not HTTP/1.1.
    pub ajp: bool,
    /// `ping=` of an AJP member: a CPing must be answered within this before each request.
    pub ajp_ping: Option<std::time::Duration>,
}

impl MemberConn {
    /// Wraps a connected stream.
    pub fn new(io: MemberIo) -> Self {
        MemberConn {
            io,
            rbuf: BytesMut::new(),
            timer: None,
            ajp: false,
            ajp_ping: None,
        }
    }

    /// The timer for the response to the next request, set to `deadline`; give it back with
    /// [`Self::put_timer`]. One timer serves every exchange on the connection: moving it to a
    /// later deadline is one atomic update (the timer wheel moves it only when the old
    /// deadline comes), where a new timer per request was a wheel insert and removal, ~600
    /// instructions.
    pub fn take_timer(&mut self, deadline: tokio::time::Instant) -> Pin<Box<Sleep>> {
        match self.timer.take() {
            Some(mut t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Keeps the response timer for the next exchange.
    pub fn put_timer(&mut self, timer: Pin<Box<Sleep>>) {
        self.timer = Some(timer);
    }

    /// True when an idle connection can carry a request: the member has not closed it, reset
    /// it or sent stray bytes. Costs no system call unless the socket was signalled readable.
    pub fn idle_usable(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut one = [0u8; 1];
        match &mut self.io {
            MemberIo::Plain(s) => {
                matches!(s.try_read(&mut one), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            MemberIo::Tls(s) => {
                let mut cx = Context::from_waker(Waker::noop());
                let mut rb = ReadBuf::new(&mut one);
                Pin::new(&mut **s).poll_read(&mut cx, &mut rb).is_pending()
            }
        }
    }

    /// Prepares the connection for the pool: drops the read buffer's spare room, so an idle
    /// connection holds no buffer.
    pub fn park(&mut self) {
        self.rbuf = BytesMut::new();
    }

    /// The stream and any bytes the member sent after the `101` head (the tunnel's start).
    pub fn into_tunnel(self) -> (MemberIo, Bytes) {
        (self.io, self.rbuf.freeze())
    }
}

/// One buffer of an [`Outgoing`] write: the request head, borrowed from the caller (which
/// keeps it for a replay), or body bytes.
enum Piece<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl Piece<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Borrowed(b) => b,
            Piece::Owned(b) => b,
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Piece::Borrowed(b) => *b = &b[n..],
            Piece::Owned(b) => b.advance(n),
        }
    }
}

/// The write side of an exchange: up to four buffers sent with one vectored write.
struct Outgoing<'a> {
    bufs: [Piece<'a>; 4],
    start: usize,
    end: usize,
}

impl<'a> Outgoing<'a> {
    fn new() -> Self {
        Outgoing {
            bufs: [const { Piece::Borrowed(&[]) }; 4],
            start: 0,
            end: 0,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn push(&mut self, b: Bytes) {
        self.push_piece(Piece::Owned(b));
    }

    fn push_piece(&mut self, b: Piece<'a>) {
        if b.bytes().is_empty() {
            return;
        }
        if self.end == self.bufs.len() {
            // Compact (only reached when the front was partly written).
            let n = self.len();
            for i in 0..n {
                self.bufs.swap(i, self.start + i);
            }
            self.start = 0;
            self.end = n;
        }
        self.bufs[self.end] = b;
        self.end += 1;
    }

    /// Writes until everything is sent or the socket is full.
    fn poll_write(&mut self, io: &mut MemberIo, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.start < self.end {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = self.len();
            for (i, s) in slices.iter_mut().enumerate().take(n) {
                *s = IoSlice::new(self.bufs[self.start + i].bytes());
            }
            let mut written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while written > 0 && self.start < self.end {
                let first = &mut self.bufs[self.start];
                let len = first.bytes().len();
                if written >= len {
                    written -= len;
                    *first = Piece::Borrowed(&[]);
                    self.start += 1;
                } else {
                    first.advance(written);
                    written = 0;
                }
            }
        }
        self.start = 0;
        self.end = 0;
        Poll::Ready(Ok(()))
    }
}

/// Sends a request (head already encoded, `body` framed as `framing`) and waits for the
/// response head. Returns the head and whether the request body was sent whole (when not,
/// the member answered early and the connection must not be reused).
///
/// On error the body has been dropped or partly sent unless `body.touched()` is false.
pub async fn exchange(
    conn: &mut MemberConn,
    head: &[u8],
    body: &mut UpBody,
    framing: BodyFraming,
    method_is_head: bool,
    interim: Option<&Interim>,
) -> Result<(ResponseHead, bool), ProxyError> {
    if conn.ajp {
        return ajp_boxed(conn, head, body, framing, method_is_head).await;
    }
    let has_client_body = !matches!(body, UpBody::Empty);
    let mut out = Outgoing::new();
    out.push_piece(Piece::Borrowed(head));
    // A large upload from a plain client to a plain member moves socket to socket.
    let spliced = matches!(framing, BodyFraming::Length(_))
        && matches!(conn.io, MemberIo::Plain(_))
        && body.can_splice(SPLICE_MIN);
    let mut upload = if spliced {
        let Some(run) = body.take_plain_run(SPLICE_MIN) else {
            return Err(ProxyError::new(
                ErrorKind::Internal,
                Phase::Send,
                "the request body went away",
            ));
        };
        Upload::Spliced(SplicedUpload::new(run, &mut out)?)
    } else {
        Upload::Frames(&mut *body)
    };
    let chunked = framing == BodyFraming::Chunked;
    // `Length(0)` with no client body is a bodiless POST/PUT: nothing to read.
    let mut body_open =
        matches!(framing, BodyFraming::Length(_) | BodyFraming::Chunked) && has_client_body;
    let mut write_done = false;
    let mut frame_queued = false;
    let mut got_bytes = false;
    // Some byte of the request reached the member's socket.
    let mut sent = false;
    let r = std::future::poll_fn(|cx| {
        // Once the read side is pending in this poll, its waker is registered: asking again
        // after writing would only repeat the readiness check.
        let mut read_pending = false;
        loop {
            let mut progress = false;
            // The answer may come before the body is sent: listen first.
            if !read_pending {
                match poll_head(conn, cx, method_is_head, &mut got_bytes, interim) {
                    Poll::Ready(Ok(Some(h))) => return Poll::Ready(Ok((h, !body_open))),
                    Poll::Ready(Ok(None)) => progress = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => read_pending = true,
                }
            }
            if write_done {
                if progress {
                    continue;
                }
                return Poll::Pending;
            }
            match &mut upload {
                // One body frame in flight at a time (memory stays one frame per upload);
                // the first frame may join the head in one write.
                Upload::Frames(body) if body_open && !frame_queued => {
                    match Pin::new(&mut **body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(f))) => {
                            progress = true;
                            if let Ok(d) = f.into_data()
                                && !d.is_empty()
                            {
                                frame_queued = true;
                                if chunked {
                                    let mut hex = [0u8; 18];
                                    out.push(Bytes::copy_from_slice(chunk_size_line(
                                        d.len(),
                                        &mut hex,
                                    )));
                                    out.push(d);
                                    out.push(Bytes::from_static(b"\r\n"));
                                } else {
                                    out.push(d);
                                }
                            }
                        }
                        Poll::Ready(None) => {
                            progress = true;
                            body_open = false;
                            if chunked {
                                out.push(Bytes::from_static(b"0\r\n\r\n"));
                            }
                        }
                        Poll::Ready(Some(Err(e))) => {
                            return Poll::Ready(Err(body_failed(&*e, sent, got_bytes)));
                        }
                        Poll::Pending => {}
                    }
                }
                // The spliced rest follows the head and the bytes already read.
                Upload::Spliced(up) if body_open && out.len() == 0 => match up.poll(cx, &conn.io) {
                    Poll::Ready(Ok(())) => {
                        progress = true;
                        body_open = false;
                    }
                    Poll::Ready(Err(SpliceError::Source(e))) => {
                        return Poll::Ready(Err(body_failed(&e, sent, got_bytes)));
                    }
                    Poll::Ready(Err(SpliceError::Destination(e))) => {
                        return Poll::Ready(Err(send_failed(e, sent, got_bytes)));
                    }
                    Poll::Pending => {}
                },
                _ => {}
            }
            if out.len() > 0 {
                let before = out.len();
                let w = out.poll_write(&mut conn.io, cx);
                sent |= out.len() < before;
                match w {
                    Poll::Ready(Ok(())) => {
                        progress = true;
                        frame_queued = false;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(send_failed(e, sent, got_bytes)));
                    }
                    Poll::Pending => {}
                }
            }
            if out.len() == 0 && !body_open {
                match Pin::new(&mut conn.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        write_done = true;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(send_failed(e, sent, got_bytes)));
                    }
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    })
    .await;
    drop(upload);
    if spliced {
        body.plain_run_done(matches!(r, Ok((_, true))));
    }
    r
}

/// Writing to the member failed: the member's fault.
fn send_failed(e: io::Error, sent: bool, got_bytes: bool) -> ProxyError {
    ProxyError::new(
        ErrorKind::MemberIo,
        Phase::Send,
        format!("sending to the member: {e}"),
    )
    .sent(sent)
    .answer_started(got_bytes)
}

/// The client's body failed (malformed, stalled or cut off): the client's fault.
fn body_failed(e: &(dyn std::error::Error + 'static), sent: bool, got_bytes: bool) -> ProxyError {
    ProxyError::new(
        client_body_kind(e),
        Phase::Send,
        format!("request body from the client: {e}"),
    )
    .sent(sent)
    .answer_started(got_bytes)
}

/// Where the request body comes from in an [`exchange`].
enum Upload<'a> {
    /// Frame by frame from the body (re-framed as `Content-Length` or `chunked`).
    Frames(&'a mut UpBody),
    /// Socket to socket.
    Spliced(SplicedUpload<'a>),
}

/// A request body moving from the client's socket to the member's with splice(2). A body
/// that stalls for the client timeout fails the exchange.
struct SplicedUpload<'a> {
    run: PlainRun<'a>,
    splice: SpliceRun,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl<'a> SplicedUpload<'a> {
    /// Queues the bytes of the body already read behind the head in `out`.
    fn new(run: PlainRun<'a>, out: &mut Outgoing) -> Result<Self, ProxyError> {
        let splice = SpliceRun::new(run.rest).map_err(|e| {
            ProxyError::new(
                ErrorKind::Internal,
                Phase::Send,
                format!("no pipe for the request body: {e}"),
            )
        })?;
        if let Some(m) = &run.member {
            m.transferred.fetch_add(run.buffered.len() as u64, Relaxed);
        }
        out.push(run.buffered.clone());
        Ok(SplicedUpload {
            stall: Box::pin(tokio::time::sleep_until(stall_until(&run))),
            run,
            splice,
        })
    }

    /// Moves what can be moved now; `Ready(Ok)` once the whole rest reached the member.
    fn poll(&mut self, cx: &mut Context<'_>, member: &MemberIo) -> Poll<Result<(), SpliceError>> {
        let MemberIo::Plain(member_socket) = member else {
            return Poll::Ready(Err(SpliceError::Destination(io::Error::other(
                "not a plain socket",
            ))));
        };
        let mut moved = 0usize;
        let counter = self.run.member.as_ref();
        let r = self.splice.poll(cx, self.run.socket, member_socket, |n| {
            moved += n;
            if let Some(m) = counter {
                m.transferred.fetch_add(n as u64, Relaxed);
            }
            crate::telemetry::stats::STATS.spliced[0].fetch_add(n as u64, Relaxed);
        });
        if r.is_ready() {
            return r;
        }
        if moved > 0 {
            if let Some(d) = self.run.deadline.as_mut() {
                if d.passed(tokio::time::Instant::now()) {
                    return Poll::Ready(Err(SpliceError::Source(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body arrived slower than RequestReadTimeout allows",
                    ))));
                }
                d.on_bytes(moved);
            }
            let until = stall_until(&self.run);
            self.stall.as_mut().reset(until);
        }
        // Polled after every reset too: a reset alone arms no wake-up.
        if self.stall.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(SpliceError::Source(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "stalled for {:?} or past the body's RequestReadTimeout",
                    self.run.timeout
                ),
            ))));
        }
        Poll::Pending
    }
}

/// When a spliced body times out: `timeout` from now without bytes, or the body's
/// `RequestReadTimeout` deadline, whichever is first.
fn stall_until(run: &PlainRun<'_>) -> tokio::time::Instant {
    let idle = tokio::time::Instant::now() + run.timeout;
    match run.deadline {
        Some(d) if d.at() < idle => d.at(),
        _ => idle,
    }
}

/// Reads and parses; `Ok(None)` means bytes arrived but the head is not complete yet.
fn poll_head(
    conn: &mut MemberConn,
    cx: &mut Context<'_>,
    method_is_head: bool,
    got_bytes: &mut bool,
    interim: Option<&Interim>,
) -> Poll<Result<Option<ResponseHead>, ProxyError>> {
    let n = match ready!(poll_fill(&mut conn.io, cx, &mut conn.rbuf, FIRST_READ)) {
        Ok(n) => n,
        Err(e) => {
            return Poll::Ready(Err(ProxyError::new(
                ErrorKind::MemberIo,
                Phase::ResponseHead,
                format!("reading from the member: {e}"),
            )
            .sent(true)
            .answer_started(*got_bytes)));
        }
    };
    if n == 0 {
        return Poll::Ready(Err(ProxyError::new(
            ErrorKind::MemberClosed,
            Phase::ResponseHead,
            "the member closed the connection before answering",
        )
        .sent(true)
        .answer_started(*got_bytes)));
    }
    *got_bytes = true;
    loop {
        match parse_response(&mut conn.rbuf, method_is_head) {
            Err(why) => {
                return Poll::Ready(Err(ProxyError::new(
                    ErrorKind::MemberInvalidHead,
                    Phase::ResponseHead,
                    why,
                )
                .sent(true)
                .answer_started(true)));
            }
            Ok(None) => return Poll::Ready(Ok(None)),
            // Interim answers: 102 and 103 go to an HTTP/1.1 client that can take them
            // (`interim`), 100 Continue never (balancerd answers `Expect` itself).
            Ok(Some(h)) if h.status.is_informational() && h.status.as_u16() != 101 => {
                if let Some(q) = interim
                    && Interim::relays(h.status)
                {
                    q.push(h.status, &h.fields);
                }
                continue;
            }
            Ok(Some(h)) => return Poll::Ready(Ok(Some(h))),
        }
    }
}

/// An exchange's future, boxed.
type ExchangeFuture<'a> = Pin<
    Box<dyn std::future::Future<Output = Result<(ResponseHead, bool), ProxyError>> + Send + 'a>,
>;

/// The AJP exchange, boxed and out of line: the HTTP exchange's state machine and code stay
/// as they were for `http://` members.
#[cold]
#[inline(never)]
fn ajp_boxed<'a>(
    conn: &'a mut MemberConn,
    packet: &'a [u8],
    body: &'a mut UpBody,
    framing: BodyFraming,
    method_is_head: bool,
) -> ExchangeFuture<'a> {
    Box::pin(ajp_exchange(conn, packet, body, framing, method_is_head))
}

/// One AJP13 exchange: the forward-request packet (`packet`), the body in data packets as
/// the container asks for them, until its `SEND_HEADERS` (recoded as an HTTP/1.1 head).
/// Returns the head and whether the request body was sent whole.
async fn ajp_exchange(
    conn: &mut MemberConn,
    packet: &[u8],
    body: &mut UpBody,
    framing: BodyFraming,
    method_is_head: bool,
) -> Result<(ResponseHead, bool), ProxyError> {
    use super::ajp::{MAX_CHUNK, Packet, data_packet, take_packet};
    use tokio::io::AsyncWriteExt;
    let io_err = |e: io::Error, sent: bool| {
        ProxyError::new(
            ErrorKind::MemberIo,
            Phase::Send,
            format!("writing to the member: {e}"),
        )
        .sent(sent)
    };
    if let Some(wait) = conn.ajp_ping {
        // CPing/CPong: a connection the container dropped is found before the request is
        // sent (a failure here is replayable: nothing of the request went out).
        conn.io
            .write_all(&super::ajp::CPING)
            .await
            .map_err(|e| io_err(e, false))?;
        let pong = tokio::time::timeout(wait, async {
            loop {
                match take_packet(&mut conn.rbuf) {
                    Ok(Some(Packet::CPong)) => return Ok(()),
                    Ok(Some(p)) => return Err(format!("{p:?} instead of CPONG")),
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
                match std::future::poll_fn(|cx| {
                    poll_fill(&mut conn.io, cx, &mut conn.rbuf, SMALL_READ)
                })
                .await
                {
                    Ok(0) => return Err("the member closed the connection".to_string()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match pong {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(ProxyError::new(
                    ErrorKind::ConnectFailed,
                    Phase::Send,
                    format!("no CPONG: {e}"),
                ));
            }
            Err(_) => {
                return Err(ProxyError::new(
                    ErrorKind::ConnectFailed,
                    Phase::Send,
                    format!("no CPONG within ping={wait:?}"),
                ));
            }
        }
    }
    conn.io
        .write_all(packet)
        .await
        .map_err(|e| io_err(e, false))?;
    let mut body_open = !matches!(body, UpBody::Empty)
        && matches!(framing, BodyFraming::Length(_) | BodyFraming::Chunked);
    let mut pending = Bytes::new();
    // mod_proxy_ajp sends the first body packet at once; the rest on request.
    let mut want = if body_open { Some(MAX_CHUNK) } else { None };
    loop {
        if let Some(max) = want.take() {
            let mut chunk = Vec::new();
            while chunk.len() < max && body_open {
                if pending.is_empty() {
                    let frame =
                        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
                    match frame {
                        None => {
                            body_open = false;
                        }
                        Some(Ok(f)) => {
                            if let Ok(d) = f.into_data() {
                                pending = d;
                            }
                        }
                        Some(Err(e)) => {
                            return Err(ProxyError::new(
                                client_body_kind(e.as_ref()),
                                Phase::Send,
                                format!("reading the request body: {e}"),
                            )
                            .sent(true));
                        }
                    }
                    continue;
                }
                let n = pending.len().min(max - chunk.len());
                chunk.extend_from_slice(&pending.split_to(n));
            }
            conn.io
                .write_all(&data_packet(&chunk))
                .await
                .map_err(|e| io_err(e, true))?;
        }
        match take_packet(&mut conn.rbuf) {
            Ok(Some(Packet::GetBody(n))) => {
                want = Some(n.clamp(1, MAX_CHUNK));
                continue;
            }
            Ok(Some(Packet::Headers(h))) => {
                let mut raw = BytesMut::from(&h[..]);
                return match parse_response(&mut raw, method_is_head) {
                    Ok(Some(head)) => Ok((head, !body_open)),
                    _ => Err(ProxyError::new(
                        ErrorKind::MemberInvalidHead,
                        Phase::ResponseHead,
                        "the member's AJP headers do not make an HTTP head",
                    )
                    .sent(true)),
                };
            }
            Ok(Some(Packet::CPong)) => continue,
            Ok(Some(p)) => {
                return Err(ProxyError::new(
                    ErrorKind::MemberInvalidHead,
                    Phase::ResponseHead,
                    format!("the member sent {p:?} before its headers"),
                )
                .sent(true));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(
                    ProxyError::new(ErrorKind::MemberInvalidHead, Phase::ResponseHead, e)
                        .sent(true),
                );
            }
        }
        let n = std::future::poll_fn(|cx| poll_fill(&mut conn.io, cx, &mut conn.rbuf, FIRST_READ))
            .await
            .map_err(|e| {
                ProxyError::new(
                    ErrorKind::MemberIo,
                    Phase::ResponseHead,
                    format!("reading from the member: {e}"),
                )
                .sent(true)
            })?;
        if n == 0 {
            return Err(ProxyError::new(
                ErrorKind::MemberClosed,
                Phase::ResponseHead,
                "the member closed the connection before answering",
            )
            .sent(true));
        }
    }
}

/// The state of an AJP13 response body: bytes of a declared length still to come.
#[derive(Debug)]
struct AjpBody {
    remaining: Option<u64>,
}

/// A member's response body, streamed from the checked-out connection, which goes back to
/// the pool at the end.
#[derive(Debug)]
pub struct MemberBody {
    owner: Option<PooledConn>,
    body: BodyDecoder,
    keep_alive: bool,
    next_read: usize,
    /// `Some` for an AJP13 member: the body comes in packets.
    ajp: Option<AjpBody>,
    /// How long the member may send nothing mid-body (its `timeout=`, else `ProxyTimeout`),
    /// as httpd's `ProxyTimeout` bounds every read from the member.
    read_timeout: std::time::Duration,
    /// The connection's timer runs for the current wait (armed at the first read that found
    /// nothing, disarmed by the next bytes).
    stall_armed: bool,
}

impl MemberBody {
    /// The body of a response whose head was just read from `owner`'s connection.
    /// `read_timeout`: how long the member may send nothing mid-body.
    pub fn new(
        owner: PooledConn,
        framing: BodyFraming,
        keep_alive: bool,
        read_timeout: std::time::Duration,
    ) -> Self {
        if owner.conn.ajp {
            return Self::new_ajp(owner, framing, read_timeout);
        }
        let mut b = MemberBody {
            owner: Some(owner),
            body: BodyDecoder::new(framing),
            keep_alive,
            next_read: FIRST_READ,
            ajp: None,
            read_timeout,
            stall_armed: false,
        };
        if b.body.is_done() {
            b.finish();
        }
        b
    }

    /// The body of an AJP13 answer: the packets frame it; `END_RESPONSE` says whether to
    /// reuse the connection.
    #[cold]
    #[inline(never)]
    fn new_ajp(owner: PooledConn, framing: BodyFraming, read_timeout: std::time::Duration) -> Self {
        MemberBody {
            owner: Some(owner),
            body: BodyDecoder::UntilClose,
            keep_alive: false,
            next_read: FIRST_READ,
            ajp: Some(AjpBody {
                remaining: match framing {
                    BodyFraming::Length(n) => Some(n),
                    _ => None,
                },
            }),
            read_timeout,
            stall_armed: false,
        }
    }

    /// A body with nothing to read and no connection (a `101`, whose connection became a
    /// tunnel).
    pub fn none() -> Self {
        MemberBody {
            owner: None,
            body: BodyDecoder::Done,
            keep_alive: false,
            next_read: FIRST_READ,
            ajp: None,
            read_timeout: std::time::Duration::ZERO,
            stall_armed: false,
        }
    }

    /// How long the member may send nothing mid-body (for a caller that moves the body
    /// itself: [`MemberBody::take_plain_run`]).
    pub fn read_timeout(&self) -> std::time::Duration {
        self.read_timeout
    }

    /// After a read found nothing: true once the member has sent nothing for
    /// `read_timeout` (the connection's timer, armed at the first empty read of a wait, wakes
    /// the task then).
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(owner) = self.owner.as_mut() else {
            return false;
        };
        let until = tokio::time::Instant::now() + self.read_timeout;
        let timer = owner
            .conn
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if !self.stall_armed {
            timer.as_mut().reset(until);
            self.stall_armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// The error for a member that stopped sending mid-body; drops the connection.
    fn stall_error(&mut self) -> String {
        self.abort();
        format!(
            "the member sent nothing for {:?} mid-body (ProxyTimeout)",
            self.read_timeout
        )
    }

    fn finish(&mut self) {
        self.body.finish();
        if let Some(o) = self.owner.take()
            && self.keep_alive
            && o.conn.rbuf.is_empty()
        {
            o.release();
        }
    }

    /// Drops the connection without reuse (the body broke).
    fn abort(&mut self) {
        self.body.finish();
        self.owner.take();
    }

    /// For zero-copy forwarding ([`crate::net::splice`]): when the rest of the body is a
    /// `Content-Length` run of at least `min` bytes on a plain socket, the bytes already read
    /// (to send first), the socket, and how many bytes of the body follow on it. Call
    /// [`MemberBody::plain_run_done`] after moving them.
    pub fn take_plain_run(&mut self, min: u64) -> Option<(Bytes, &TcpStream, u64)> {
        if self.ajp.is_some() {
            return None;
        }
        let owner = self.owner.as_mut()?;
        let MemberIo::Plain(socket) = &owner.conn.io else {
            return None;
        };
        let (buffered, rest) = self.body.take_run(&mut owner.conn.rbuf, min)?;
        Some((buffered, socket, rest))
    }

    /// Ends a run taken with [`MemberBody::take_plain_run`]: the connection goes back to the
    /// pool when every byte moved, and is dropped otherwise.
    pub fn plain_run_done(&mut self, moved_all: bool) {
        if moved_all {
            self.finish();
        } else {
            self.abort();
        }
    }

    /// True when the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.body.is_done()
    }

    /// The exact size left, when known.
    pub fn size_hint(&self) -> SizeHint {
        match &self.ajp {
            Some(AjpBody { remaining: Some(n) }) if !self.body.is_done() => {
                SizeHint::with_exact(*n)
            }
            Some(_) if self.body.is_done() => SizeHint::with_exact(0),
            Some(_) => SizeHint::default(),
            None => self.body.size_hint(),
        }
    }

    /// The next piece of the body: `None` at its end.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        if self.ajp.is_some() {
            return self.poll_ajp(cx);
        }
        loop {
            let Some(owner) = self.owner.as_mut() else {
                return Poll::Ready(None);
            };
            let conn = &mut owner.conn;
            match self.body.decode(&mut conn.rbuf) {
                Ok(Step::Data(d)) => {
                    if self.body.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(d)));
                }
                Ok(Step::End) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    self.abort();
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let want = self.next_read;
            let Poll::Ready(filled) = poll_fill(&mut conn.io, cx, &mut conn.rbuf, want) else {
                if self.stalled(cx) {
                    return Poll::Ready(Some(Err(self.stall_error())));
                }
                return Poll::Pending;
            };
            self.stall_armed = false;
            match filled {
                Ok(0) => {
                    if self.body.at_eof() {
                        self.keep_alive = false;
                        self.finish();
                        return Poll::Ready(None);
                    }
                    self.abort();
                    return Poll::Ready(Some(Err(
                        "the member closed the connection before the body ended".into(),
                    )));
                }
                Ok(n) => {
                    if n >= want && want < MAX_READ {
                        self.next_read = want * 2;
                    }
                }
                Err(e) => {
                    self.abort();
                    return Poll::Ready(Some(Err(format!(
                        "reading the body from the member: {e}"
                    ))));
                }
            }
        }
    }
}

impl MemberBody {
    /// The next data of an AJP13 body: `SEND_BODY_CHUNK`s until `END_RESPONSE`.
    fn poll_ajp(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        use super::ajp::{Packet, take_packet};
        loop {
            if self.body.is_done() {
                return Poll::Ready(None);
            }
            let Some(owner) = self.owner.as_mut() else {
                return Poll::Ready(None);
            };
            let conn = &mut owner.conn;
            match take_packet(&mut conn.rbuf) {
                Ok(Some(Packet::Body(d))) => {
                    if let Some(AjpBody { remaining: Some(n) }) = &mut self.ajp {
                        *n = n.saturating_sub(d.len() as u64);
                    }
                    if d.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(d)));
                }
                Ok(Some(Packet::End { reuse })) => {
                    self.keep_alive = reuse;
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Some(Packet::CPong)) => continue,
                Ok(Some(p)) => {
                    self.abort();
                    return Poll::Ready(Some(Err(format!(
                        "the member sent {p:?} inside its response body (it asked for request body after answering)"
                    ))));
                }
                Ok(None) => {}
                Err(e) => {
                    self.abort();
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let Poll::Ready(filled) = poll_fill(&mut conn.io, cx, &mut conn.rbuf, MAX_READ) else {
                if self.stalled(cx) {
                    return Poll::Ready(Some(Err(self.stall_error())));
                }
                return Poll::Pending;
            };
            self.stall_armed = false;
            match filled {
                Ok(0) => {
                    self.abort();
                    return Poll::Ready(Some(Err(
                        "the member closed the connection before END_RESPONSE".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    self.abort();
                    return Poll::Ready(Some(Err(format!(
                        "reading the body from the member: {e}"
                    ))));
                }
            }
        }
    }
}
