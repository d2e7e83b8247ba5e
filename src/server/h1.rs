//! balancerd's own HTTP/1.1 server for client connections, plain or TLS (HTTP/2 clients
//! have [`super::http2`]). The connection is a [`ClientRead`] and a [`ClientWrite`]: the
//! same loop serves both; TLS differs only below it (records, no splice(2)).
//!
//! hyper's HTTP/1 server keeps an 8 KiB read buffer and a write buffer per connection,
//! allocates a fresh read buffer per request while the previous head is alive, and needs a
//! byte-level second look at the framing (it folds duplicate `Content-Length`s and resolves
//! `Content-Length` + `Transfer-Encoding` itself, so a proxy cannot refuse them). Here one
//! loop per connection does the work, in the connection's own task:
//!
//! ```text
//!  wait for a head ──parse──▶ handler (watching the socket) ──▶ write the response ──┐
//!    ▲  (KeepAliveTimeout, idle: no buffer)                                            │
//!    └──────────────────────────── keep-alive ◀────────────────────────────────────────┘
//! ```
//!
//! * **head**: read through a per-worker scratch buffer and parsed with `httparse`; header
//!   values are slices of the head (no copy). Framing is decided from the raw fields, and
//!   anything ambiguous (`Content-Length` with `Transfer-Encoding`, repeated or listed
//!   `Content-Length`, a coding other than one `chunked`, `Transfer-Encoding` in HTTP/1.0) is
//!   refused with 400 and the connection closed: nothing is guessed (request smuggling).
//! * **body**: the socket's read half moves into the request body ([`RequestBody`]), which
//!   streams `Content-Length` and `chunked` bodies frame by frame, answers `Expect:
//!   100-continue` when first read, and hands the socket back at its end.
//! * **handler**: while it runs, the socket is watched: pipelined requests are buffered (up
//!   to 64 KiB), and a client that closes cancels its request (a long-poll's member
//!   connection is freed at once).
//! * **response**: the head is encoded once and written together with the first body frame
//!   (vectored write); the body is framed by its known length, or chunked (close-delimited
//!   for HTTP/1.0).
//! * **close**: after an early answer (the request body not read to its end) the write side
//!   is shut first and the rest of the request drained for a moment (lingering close), so the
//!   client reads the answer instead of a reset.
//!
//! Invariants:
//! * One verdict per request head: a response, or a refusal (and the connection closed);
//!   bytes of a refused head never reach the handler, so never a member.
//! * The read side is held by exactly one owner: the connection loop, or the request's body
//!   while it is read (it comes back through the body's `ReturnSlot`). A body not read to its
//!   end means the connection closes after the answer: its unread bytes are not a next
//!   request.
//! * Between requests the connection holds no read buffer and no request state.

use crate::h1::chunked::chunk_size_line;
use crate::h1::fields::{ConnectionToken, FieldRole, Fields, connection_tokens};
use crate::h1::framing::BodyFraming;
use crate::h1::head::{HeadRefusal, MAX_FIELDS, RequestHead, parse_request};
use crate::h1::interim::Interim;
use crate::h1::request_body::{RequestBody, ReturnSlot, Returned};
use crate::h1::writer::HeadWriter;
use crate::net::client_io::{self, ClientRead, ClientWrite};
use crate::net::read::poll_read_small;
use crate::net::splice::{self, SPLICE_MIN, SpliceError};
use crate::proxy::handler::{ConnInfo, handle};
use crate::proxy::tunnel::{ClientUpgrade, H1Upgraded};
use crate::runtime::Shared;
use crate::server::Shutdown;
use crate::telemetry::stats::STATS;
use crate::upstream::body::{ClientBody, DownBody, MemberDown, count_member_bytes};
use crate::util::clock::coarse_ms;
use crate::util::deadline::{RateDeadline, ReadStage};
use crate::util::recycle::Recycled;
use bytes::BytesMut;
use http::header;
use http::{Method, StatusCode, Version};
use http_body::Body;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// How long a connection idle when a drain (stop or upgrade) begins waits for a request the
/// client may be sending at that moment, before it closes.
const DRAIN_IDLE: Duration = Duration::from_millis(1000);

/// Pipelined bytes buffered while a request is being handled.
const MAX_PIPELINED: usize = 64 * 1024;
/// How long, and how much, the rest of a request is drained after an early answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// One client connection.
struct ClientConn {
    /// The read side; `None` while a request body holds it.
    rd: Option<ClientRead>,
    wr: ClientWrite,
    /// Bytes read but not used yet (pipelined requests); empty and unallocated when idle.
    buf: BytesMut,
    /// The header-read timer, created on first use and moved only when it fires.
    timer: Option<Pin<Box<Sleep>>>,
    /// Resolves when the server starts shutting down. Made on first use and kept across
    /// requests: a fresh `changed()` at every wait registered and removed a waiter (two
    /// lock round trips) per request.
    stopping: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// What waiting for the next request head gave. (Not boxed: one per request, moved once;
/// a box would be an allocation per request.)
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    /// The client closed, went idle too long, or the server is stopping.
    Closed,
    Refused(HeadRefusal),
}

impl ClientConn {
    /// Waits for and parses the next request head.
    ///
    /// Two deadlines, as httpd with mod_reqtimeout: while nothing of the head has arrived
    /// the connection is idle and closes quietly after `idle` (KeepAliveTimeout); from the
    /// first byte of an incomplete head, `head` runs (`RequestReadTimeout header=`, its
    /// deadline moving with `MinRate`), and when it passes the client gets 408.
    async fn next_head(
        &mut self,
        idle: Duration,
        head: ReadStage,
        max_fields: usize,
        shutdown: &Shutdown,
    ) -> Next {
        // The idle deadline on the coarse clock; the precise one is read only to arm the
        // connection's timer the first time, and when it fires.
        let mut deadline_ms = coarse_ms().saturating_add(idle.as_millis() as u64);
        // Set when a drain began while this connection was idle: it waits a moment longer
        // for a request already on its way (answered with `Connection: close`) instead of
        // closing under a client that is sending one.
        let mut draining = false;
        // Started when a read leaves an incomplete head (a head that arrives in one read
        // never reads the precise clock here).
        let mut head_deadline: Option<RateDeadline> = None;
        let mut last_read = 0usize;
        loop {
            if !self.buf.is_empty() {
                match parse_request(&mut self.buf, max_fields) {
                    Ok(Some(p)) => {
                        if self.buf.is_empty() {
                            self.buf = BytesMut::new();
                        }
                        return Next::Head(p);
                    }
                    Ok(None) => {
                        if self.buf.iter().any(|b| *b != b'\r' && *b != b'\n') {
                            let timer = self
                                .timer
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                            match head_deadline.as_mut() {
                                None => {
                                    let mut d = RateDeadline::start(head, Instant::now());
                                    d.on_bytes(last_read);
                                    timer.as_mut().reset(d.at());
                                    head_deadline = Some(d);
                                }
                                Some(d) => {
                                    d.on_bytes(last_read);
                                    timer.as_mut().reset(d.at());
                                }
                            }
                        }
                    }
                    Err(r) => return Next::Refused(r),
                }
            }
            if *shutdown.borrow() && !draining {
                return Next::Closed;
            }
            let Some(rd) = self.rd.as_mut() else {
                return Next::Closed;
            };
            let buf = &mut self.buf;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
            let stopping = self.stopping.get_or_insert_with(|| {
                let mut rx = shutdown.clone();
                Box::pin(async move {
                    // A closed channel (the server is gone) also means stop.
                    let _ = rx.changed().await;
                })
            });
            tokio::select! {
                biased;
                r = std::future::poll_fn(|cx| poll_read_small(rd, cx, buf)) => match r {
                    Ok(0) | Err(_) => return Next::Closed,
                    Ok(n) => last_read = n,
                },
                () = timer.as_mut() => {
                    if let Some(d) = &head_deadline {
                        let now = Instant::now();
                        if d.passed(now) {
                            return Next::Refused(HeadRefusal(
                                StatusCode::REQUEST_TIMEOUT,
                                "Server timeout waiting for the HTTP request from the client.",
                            ));
                        }
                        timer.as_mut().reset(d.at());
                        continue;
                    }
                    let now_ms = coarse_ms();
                    if now_ms < deadline_ms {
                        let left = Duration::from_millis(deadline_ms - now_ms);
                        timer.as_mut().reset(Instant::now() + left);
                    } else {
                        // Nothing of a head (at most blank lines): close quietly.
                        return Next::Closed;
                    }
                }
                () = stopping.as_mut() => {
                    if !self.buf.is_empty() || draining {
                        return Next::Closed;
                    }
                    // Idle when the drain began: DRAIN_IDLE more for a request in flight.
                    draining = true;
                    *stopping = Box::pin(std::future::pending());
                    deadline_ms = deadline_ms.min(coarse_ms() + DRAIN_IDLE.as_millis() as u64);
                    timer.as_mut().reset(Instant::now() + DRAIN_IDLE.min(idle));
                }
            }
        }
    }

    /// Takes the read side back from a finished request body; false when the connection
    /// cannot carry another request (the body was not read to its end, or is still held).
    fn reclaim(&mut self, slot: &ReturnSlot) -> bool {
        let back = slot.lock().ok().and_then(|mut s| s.take());
        match back {
            Some(Returned { rd, buf, complete }) => {
                self.rd = Some(rd);
                self.buf = buf;
                complete
            }
            None => false,
        }
    }

    /// Closes after an early answer: the write side first, then what the client still
    /// sends is read and dropped for a moment, so that it reads the answer, not a reset.
    async fn linger(mut self) {
        let _ = self.wr.shutdown().await;
        let Some(mut rd) = self.rd.take() else {
            return;
        };
        crate::net::read::drain(&mut rd, LINGER_TIME, LINGER_BYTES).await;
    }
}

/// Serves one client connection (its two sides from [`client_io`]) until it closes.
///
/// Between requests the task holds only the connection and the wait for the next head
/// (a few hundred bytes); the state of a request in flight lives in one box per request.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the body)"
)]
pub fn serve(
    rd: ClientRead,
    wr: ClientWrite,
    info: ConnInfo,
    shared: Shared,
    shutdown: Shutdown,
) -> impl Future<Output = ()> {
    // An `async move` block, not an `async fn`: an `async fn` re-binds every argument as a
    // local, and the future then holds each twice (arguments are never overlapped with other
    // state).
    async move {
        let mut conn = ClientConn {
            rd: Some(rd),
            wr,
            buf: BytesMut::new(),
            timer: None,
            stopping: None,
        };
        // A refused head ends the loop; it is answered after it, so that the refusal's wait
        // keeps none of the loop's locals in the connection's state.
        let refusal = loop {
            let snap = shared.load_full();
            let max_fields = match snap.server.limit_request_fields {
                0 => MAX_FIELDS,
                n => (n as usize).saturating_add(1),
            };
            // Without mod_reqtimeout, `Timeout` bounds the whole head.
            let head = snap.server.header_read_timeout.unwrap_or(ReadStage {
                initial: snap.server.timeout,
                max: None,
                min_rate: 0,
            });
            // Matched where it is made: a named result would keep its room in the state.
            let p = match conn
                .next_head(snap.server.keepalive_timeout, head, max_fields, &shutdown)
                .await
            {
                Next::Head(p) => p,
                Next::Closed => return,
                Next::Refused(refusal) => break refusal,
            };
            // In a block recycled on this thread (one allocation fewer per request), written
            // in place: moving the finished future would copy all of its kilobytes.
            // The head stays here and the exchange takes it through a reference: a future
            // keeps its arguments for its whole life, the head only until it is taken apart.
            let mut head = Some(p);
            let boxed = Recycled::into_pin(Recycled::write(
                Recycled::new_uninit(),
                exchange(conn, &mut head, &info, &snap, &shutdown),
            ));
            match boxed.await {
                Some(c) => conn = c,
                None => return,
            }
        };
        let send_timeout = shared.load().server.timeout;
        Box::pin(refuse(conn, refusal, info.peer, send_timeout)).await;
    }
}

/// Answers a request head that cannot be served, and closes.
async fn refuse(
    mut conn: ClientConn,
    HeadRefusal(status, why): HeadRefusal,
    peer: SocketAddr,
    send_timeout: Duration,
) {
    tracing::info!(client = %peer, "refused request: {why}");
    let r = crate::proxy::error_page::error_page(status, why);
    let _ = write_response(
        &mut conn.wr,
        r,
        Version::HTTP_11,
        false,
        false,
        send_timeout,
    )
    .await;
    conn.linger().await;
}

/// A parsed request as the handler takes it, with what the connection keeps to finish it.
struct Request {
    parts: http::request::Parts,
    body: ClientBody,
    fields: Fields,
    /// Where the request body hands the socket back (`None`: no body).
    slot: Option<ReturnSlot>,
    /// Where the socket goes when the member agrees to an upgrade.
    upgrade_tx: Option<oneshot::Sender<H1Upgraded>>,
}

/// Builds the handler's request from a parsed head. A plain function, not part of
/// [`exchange`]: the pieces are moved into the handler, and locals an async fn borrows
/// keep their room in its state for the whole request.
fn into_request(p: RequestHead, conn: &mut ClientConn) -> Request {
    // The body takes the read side; a request without one leaves it here, watched.
    let (body, slot) = match p.framing {
        BodyFraming::None => (ClientBody::Empty, None),
        framing => {
            let slot = ReturnSlot::default();
            let body = RequestBody::new(
                conn.rd.take(),
                std::mem::take(&mut conn.buf),
                framing,
                p.expect_continue,
                slot.clone(),
            );
            (ClientBody::H1(body), Some(slot))
        }
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = p.method;
    parts.uri = p.uri;
    parts.version = p.version;
    let mut upgrade_tx = None;
    if p.upgrade {
        let (tx, rx) = oneshot::channel();
        parts
            .extensions
            .insert(ClientUpgrade::H1(Arc::new(Mutex::new(Some(rx)))));
        upgrade_tx = Some(tx);
    }
    Request {
        parts,
        body,
        fields: p.fields,
        slot,
        upgrade_tx,
    }
}

/// Interim answers being written to the client ahead of the final one, and the final one
/// once the handler gave it.
struct InterimOut {
    bytes: Vec<u8>,
    /// Everything written so far has been pushed out to the socket.
    flushed: bool,
    done: Option<http::Response<DownBody>>,
}

impl InterimOut {
    fn new(done: Option<http::Response<DownBody>>) -> Self {
        InterimOut {
            bytes: Vec::new(),
            flushed: true,
            done,
        }
    }

    /// Runs the handler on, writes what the member's interim answers queued, and gives the
    /// final answer once everything before it is written; `Ready(None)`: the client is gone.
    #[cold]
    #[inline(never)]
    fn poll<F: Future<Output = http::Response<DownBody>>>(
        &mut self,
        handler: Pin<&mut F>,
        interim: Option<&Interim>,
        wr: &mut ClientWrite,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<http::Response<DownBody>>> {
        if self.done.is_none()
            && let Poll::Ready(r) = handler.poll(cx)
        {
            self.done = Some(r);
        }
        if let Some(q) = interim
            && q.has_pending()
        {
            q.take_into(&mut self.bytes);
        }
        while !self.bytes.is_empty() {
            match Pin::new(&mut *wr).poll_write(cx, &self.bytes) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.bytes.drain(..n);
                    self.flushed = false;
                }
                Poll::Ready(_) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        // On TLS the records may still sit in rustls: out with them before waiting on.
        if !self.flushed {
            match Pin::new(&mut *wr).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flushed = true,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.done.take() {
            Some(r) => Poll::Ready(Some(r)),
            None => Poll::Pending,
        }
    }
}

/// One request: runs the handler (watching the socket), writes the response, and gives the
/// connection back when it can carry another request.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice (see the body)"
)]
fn exchange<'a>(
    mut conn: ClientConn,
    head: &'a mut Option<RequestHead>,
    info: &'a ConnInfo,
    snap: &'a Arc<crate::runtime::Snapshot>,
    shutdown: &'a Shutdown,
) -> impl Future<Output = Option<ClientConn>> + 'a {
    // An `async move` block, not an `async fn`: an `async fn` re-binds every argument as a
    // local, and the future then holds each twice (arguments are never overlapped with other
    // state).
    async move {
        // Let every request read in this pass of the scheduler get here before any goes on:
        // their member writes then leave together, and the member wakes once for the batch,
        // not once per request (an epoll pass and a context switch each); HAProxy gets the
        // same from sending at the end of its loop. `yield_now` resumes the task after the
        // runtime's next poll of the sockets, so a request alone waits for that poll only.
        // Small GETs, 64 clients, interleaved runs: over TLS 57.0k → 59.1k req/s, plain
        // 73.4k → 75.1k (docs/performance.md). HTTP/2 streams do not wait: there it cost 4%.
        tokio::task::yield_now().await;
        // In a block: the head's room is not kept in the state while the request runs.
        let (
            version,
            is_head,
            mut keep_alive,
            Request {
                parts,
                body,
                fields,
                slot,
                upgrade_tx,
            },
        ) = {
            let p = head.take()?;
            let meta = (p.version, p.method == Method::HEAD, p.keep_alive);
            (meta.0, meta.1, meta.2, into_request(p, &mut conn))
        };
        let resp = {
            // Pinned where it is made: moving the handler's future (kilobytes) costs a copy.
            // Inside this block, so that its room is free again (and reused) while the
            // response is written.
            let mut handler = std::pin::pin!(handle(parts, body, Some(fields), info, snap));
            let ClientConn { rd, wr, buf, .. } = &mut conn;
            let mut gone = false;
            // Interim (1xx) answers a member sent, written ahead of the final one: made only
            // when a member sends one (out of every request's state otherwise).
            let mut interim_out: Option<Box<InterimOut>> = None;
            let interim = info.interim.as_ref();
            let watched = std::future::poll_fn(|cx| {
                if interim_out.is_none() {
                    match handler.as_mut().poll(cx) {
                        Poll::Ready(r) if !interim.is_some_and(Interim::has_pending) => {
                            return Poll::Ready(Some(r));
                        }
                        Poll::Ready(r) => interim_out = Some(Box::new(InterimOut::new(Some(r)))),
                        Poll::Pending if interim.is_some_and(Interim::has_pending) => {
                            interim_out = Some(Box::new(InterimOut::new(None)));
                        }
                        Poll::Pending => {}
                    }
                }
                if let Some(out) = interim_out.as_mut() {
                    match out.poll(handler.as_mut(), interim, wr, cx) {
                        Poll::Ready(Some(r)) => return Poll::Ready(Some(r)),
                        Poll::Ready(None) => gone = true,
                        Poll::Pending => {}
                    }
                }
                // Watch the socket (when no request body holds it): buffer pipelined requests,
                // notice a client that left.
                if let Some(rd) = rd.as_mut() {
                    while !gone && buf.len() < MAX_PIPELINED {
                        match poll_read_small(rd, cx, buf) {
                            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => gone = true,
                            Poll::Ready(Ok(_)) => {}
                            Poll::Pending => break,
                        }
                    }
                }
                if gone {
                    return Poll::Ready(None);
                }
                Poll::Pending
            });
            match watched.await {
                Some(r) => r,
                None => {
                    tracing::debug!(client = %info.peer, "client closed the connection; request cancelled");
                    return None;
                }
            }
        };
        if let Some(slot) = &slot
            && !conn.reclaim(slot)
        {
            keep_alive = false;
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(tx) = upgrade_tx
        {
            write_response(
                &mut conn.wr,
                resp,
                version,
                is_head,
                true,
                snap.server.timeout,
            )
            .await
            .ok()?;
            if let Some(rd) = conn.rd.take()
                && let Some(stream) = client_io::reunite(rd, conn.wr)
            {
                let _ = tx.send(H1Upgraded {
                    stream,
                    early: conn.buf.freeze(),
                });
            }
            return None;
        }
        if *shutdown.borrow() {
            keep_alive = false;
        }
        let send_timeout = snap.server.timeout;
        let keep = match write_response(
            &mut conn.wr,
            resp,
            version,
            is_head,
            keep_alive,
            send_timeout,
        )
        .await
        {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(client = %info.peer, "writing the response failed: {e}");
                return None;
            }
        };
        if keep {
            return Some(conn);
        }
        if conn.rd.is_none() || !conn.buf.is_empty() || slot.is_some() {
            conn.linger().await;
        } else {
            let _ = conn.wr.shutdown().await;
        }
        None
    }
}

/// A first body frame at most this long is copied behind the response head and sent with it.
const COALESCE_MAX: usize = 2048;

/// Writes `resp` (head and body); returns whether the connection stays open.
async fn write_response(
    wr: &mut ClientWrite,
    resp: http::Response<DownBody>,
    version: Version,
    is_head: bool,
    keep_alive: bool,
    send_timeout: Duration,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let code = status.as_u16();
    let mut keep = keep_alive;
    let mut has_date = false;
    let mut has_length = false;
    let mut has_connection = false;
    // A member's fields written through as received (hop-by-hop ones already marked).
    let (member_fields, head) = match &mut body {
        DownBody::Member(m) => (m.fields.take(), std::mem::take(&mut m.head_buf)),
        DownBody::Full(_) => (None, Vec::new()),
    };
    if let Some(f) = &member_fields {
        for (_, _, role) in f.passed() {
            match role {
                FieldRole::Date => has_date = true,
                FieldRole::ContentLength => has_length = true,
                _ => {}
            }
        }
    }
    for (k, v) in &parts.headers {
        if *k == header::CONNECTION {
            has_connection = true;
            if connection_tokens(v.as_bytes()).any(|t| t == ConnectionToken::Close) {
                keep = false;
            }
        } else if *k == header::DATE {
            has_date = true;
        } else if *k == header::CONTENT_LENGTH {
            has_length = true;
        }
    }
    let bodyless = is_head || status.is_informational() || code == 204 || code == 304;
    let framing = if bodyless {
        BodyFraming::None
    } else if let Some(n) = body.size_hint().exact() {
        BodyFraming::Length(n)
    } else if version == Version::HTTP_11 {
        BodyFraming::Chunked
    } else {
        keep = false;
        BodyFraming::UntilClose
    };

    // The request head's buffer when there was one (it grows if the answer's head is
    // longer); a fresh one for balancerd's own answers.
    let mut w = HeadWriter::response(head, status);
    if let Some(f) = &member_fields {
        for (name, value, role) in f.passed() {
            if role == FieldRole::ContentLength
                && framing != BodyFraming::None
                && !framing.is_length()
            {
                continue;
            }
            w.header(name, value);
        }
    }
    for (k, v) in &parts.headers {
        if framing != BodyFraming::None
            && (*k == header::TRANSFER_ENCODING
                || (*k == header::CONTENT_LENGTH && !framing.is_length()))
        {
            continue;
        }
        w.header(k.as_str().as_bytes(), v.as_bytes());
    }
    if !has_date {
        w.date();
    }
    if !has_connection && code != 101 {
        if !keep {
            w.header(b"connection", b"close");
        } else if version == Version::HTTP_10 {
            w.header(b"connection", b"keep-alive");
        }
    }
    // The framing field, unless the fields already carry the length.
    let head = w.finish(match framing {
        BodyFraming::Length(_) if has_length => BodyFraming::None,
        f => f,
    });

    if framing == BodyFraming::None {
        wr.write_all(&mut [IoSlice::new(&head)], send_timeout)
            .await?;
        return Ok(keep);
    }
    // A large member body to a plain client moves socket to socket (splice), never through
    // balancerd's memory.
    let read_timeout = match &body {
        DownBody::Member(m) => m.inner.read_timeout(),
        DownBody::Full(_) => Duration::ZERO,
    };
    if framing.is_length()
        && let Some(dst) = wr.tcp()
        && let DownBody::Member(m) = &mut body
        && let MemberDown {
            inner,
            member,
            busy,
            name,
            ..
        } = &mut **m
        && let Some((buffered, src, rest)) = inner.take_plain_run(SPLICE_MIN)
    {
        let count = |n: usize| count_member_bytes(member, n);
        count(buffered.len());
        let spliced = |n: usize| {
            count(n);
            STATS.spliced[1].fetch_add(n as u64, Relaxed);
        };
        let head_and_buffered = [IoSlice::new(&head), IoSlice::new(&buffered)];
        write_tcp_all(dst, head_and_buffered).await?;
        let r = splice::copy_exact_timed(src, dst, rest, spliced, read_timeout, send_timeout).await;
        inner.plain_run_done(r.is_ok());
        busy.take();
        return match r {
            Ok(()) => Ok(keep),
            Err(SpliceError::Source(e)) => {
                tracing::warn!(member = %name, "member connection broke while sending the response body: {e}");
                Err(e)
            }
            Err(SpliceError::Destination(e)) => {
                tracing::debug!(member = %name, "the client stopped taking the response body: {e}");
                Err(e)
            }
        };
    }
    // The first frame goes out with the head when it is already there.
    let mut pending_head = Some(head);
    loop {
        let frame = if pending_head.is_some() {
            match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    if let Some(h) = pending_head.take() {
                        wr.write_all(&mut [IoSlice::new(&h)], send_timeout).await?;
                    }
                    continue;
                }
            }
        } else {
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        };
        let mut head_buf = pending_head.take();
        // A small first frame joins the head: one buffer goes out with `send`, which costs
        // the kernel less than `sendmsg` with two (no message header or vector to copy in).
        if let (Some(h), Some(Ok(f))) = (&mut head_buf, &frame)
            && framing.is_length()
            && let Some(data) = f.data_ref()
            && data.len() <= COALESCE_MAX
        {
            h.extend_from_slice(data);
            wr.write_all(&mut [IoSlice::new(h)], send_timeout).await?;
            continue;
        }
        let head = head_buf.as_deref().unwrap_or(&[]);
        match frame {
            Some(Ok(f)) => {
                let Ok(data) = f.into_data() else {
                    // Trailers are not forwarded.
                    continue;
                };
                if data.is_empty() && head.is_empty() {
                    continue;
                }
                if framing == BodyFraming::Chunked && !data.is_empty() {
                    let mut hex = [0u8; 18];
                    let line = chunk_size_line(data.len(), &mut hex);
                    wr.write_all(
                        &mut [
                            IoSlice::new(head),
                            IoSlice::new(line),
                            IoSlice::new(&data),
                            IoSlice::new(b"\r\n"),
                        ],
                        send_timeout,
                    )
                    .await?;
                } else {
                    wr.write_all(&mut [IoSlice::new(head), IoSlice::new(&data)], send_timeout)
                        .await?;
                }
            }
            None => {
                let end: &[u8] = if framing == BodyFraming::Chunked {
                    b"0\r\n\r\n"
                } else {
                    b""
                };
                wr.write_all(&mut [IoSlice::new(head), IoSlice::new(end)], send_timeout)
                    .await?;
                return Ok(keep);
            }
            Some(Err(e)) => {
                // The member broke mid-body: the client sees a cut response.
                if !head.is_empty() {
                    wr.write_all(&mut [IoSlice::new(head)], send_timeout)
                        .await?;
                }
                return Err(io::Error::other(e));
            }
        }
    }
}

/// Writes every byte of `bufs` to a plain socket (ahead of a splice run).
async fn write_tcp_all(s: &tokio::net::TcpStream, mut b: [IoSlice<'_>; 2]) -> io::Result<()> {
    let mut bufs = &mut b[..];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n =
            std::future::poll_fn(|cx| crate::net::send::poll_send_vectored(s, cx, bufs)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
