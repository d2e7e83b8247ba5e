//! balancerd's own HTTP/1.1 server for plain-TCP client connections (TLS and HTTP/2 clients
//! stay on hyper's server).
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

use crate::h1::chunked::{chunk_size_line, parse_length};
use crate::h1::fields::{
    ConnectionToken, FieldRole, ReqName, RequestFields, connection_tokens, field_spans,
    request_field_name,
};
use crate::h1::framing::BodyFraming;
use crate::h1::request_body::{RequestBody, ReturnSlot, Returned};
use crate::net::read::poll_read_small;
use crate::net::splice::{self, SPLICE_MIN, SpliceError};
use crate::proxy::handler::{ConnInfo, handle};
use crate::proxy::tunnel::{ClientUpgrade, PlainUpgraded};
use crate::runtime::Shared;
use crate::server::Shutdown;
use crate::telemetry::stats::STATS;
use crate::upstream::body::{ClientBody, DownBody, MemberDown, count_member_bytes};
use crate::util::clock::coarse_ms;
use crate::util::recycle::Recycled;
use bytes::BytesMut;
use http::header;
use http::{Method, StatusCode, Uri, Version};
use http_body::Body;
use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// Largest request head (a larger one gets 431; nginx allows 32 KiB, HAProxy 16 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a request (HAProxy allows 101, httpd 100 by default); more get 431.
const MAX_FIELDS: usize = 128;
/// Pipelined bytes buffered while a request is being handled.
const MAX_PIPELINED: usize = 64 * 1024;
/// How long, and how much, the rest of a request is drained after an early answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

thread_local! {
    /// The `Date` value, formatted once a second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [b' '; 29])) };
}

/// Why a request head was refused: the status and the error page's text.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str);

/// A parsed request head, with what the connection loop needs to know about it.
struct Parsed {
    method: Method,
    uri: Uri,
    version: Version,
    fields: RequestFields,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
}

/// Parses a request head from the front of `buf`; `Ok(None)` while it is incomplete.
/// `max_fields` is `LimitRequestFields` + 1 (the handler answers 400 above the limit itself),
/// at most [`MAX_FIELDS`].
fn parse_head(buf: &mut BytesMut, max_fields: usize) -> Result<Option<Parsed>, Refusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let slots = &mut slots[..max_fields.clamp(1, MAX_FIELDS)];
    let mut r = httparse::Request::new(&mut []);
    let base = buf.as_ptr() as usize;
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut r, buf, slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(Refusal(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "The request head is too large.",
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The number of request header fields exceeds this server's limit.",
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(Refusal(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "Only HTTP/1.0 and HTTP/1.1 are spoken on this port.",
            ));
        }
        Err(_) => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "Your browser sent a request that this server could not understand.",
            ));
        }
    };
    let method = Method::from_bytes(r.method.unwrap_or("").as_bytes())
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "Invalid request method."))?;
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path = r.path.unwrap_or("");
    let p0 = path.as_ptr() as usize - base;
    let p1 = p0 + path.len();
    let mut spans = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let spans = field_spans(r.headers, base, &mut spans);
    let head = if len == buf.len() {
        std::mem::take(buf).freeze()
    } else {
        buf.split_to(len).freeze()
    };
    let uri = Uri::from_maybe_shared(head.slice(p0..p1))
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "Invalid request target."))?;
    let bad_framing = |why| Refusal(StatusCode::BAD_REQUEST, why);
    let mut fields = RequestFields::index_for(spans.len());
    let mut keep_alive = version == Version::HTTP_11;
    let mut conn_upgrade = false;
    let mut has_upgrade = false;
    let mut expect_continue = false;
    let (mut cl_count, mut te_count) = (0u32, 0u32);
    let mut length = 0u64;
    let mut te_chunked = false;
    // Names and values were checked by httparse (the same bytes `http` accepts); each field
    // gets its role once, here.
    for &span in spans {
        let (n0, n1, v0, v1) = span;
        let role = request_field_name(&head[n0 as usize..n1 as usize]);
        let raw = &head[v0 as usize..v1 as usize];
        match role {
            ReqName::ContentLength => {
                cl_count += 1;
                length = parse_length(raw.trim_ascii())
                    .ok_or(bad_framing("Bad request framing: invalid Content-Length."))?;
            }
            ReqName::TransferEncoding => {
                te_count += 1;
                te_chunked = raw.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
            ReqName::Connection => {
                for t in connection_tokens(raw) {
                    match t {
                        ConnectionToken::Close => keep_alive = false,
                        ConnectionToken::KeepAlive if version == Version::HTTP_10 => {
                            keep_alive = true
                        }
                        ConnectionToken::Upgrade => conn_upgrade = true,
                        _ => {}
                    }
                }
            }
            ReqName::Upgrade => has_upgrade = true,
            ReqName::Expect => {
                expect_continue = raw.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        fields.push((span, role));
    }
    let framing = if te_count > 0 {
        if cl_count > 0 {
            return Err(bad_framing(
                "Bad request framing: conflicting Content-Length and Transfer-Encoding.",
            ));
        }
        if version == Version::HTTP_10 {
            return Err(bad_framing(
                "Bad request framing: Transfer-Encoding in an HTTP/1.0 request.",
            ));
        }
        if te_count > 1 || !te_chunked {
            return Err(bad_framing(
                "Bad request framing: Transfer-Encoding other than a single 'chunked'.",
            ));
        }
        BodyFraming::Chunked
    } else if cl_count > 1 {
        return Err(bad_framing(
            "Bad request framing: more than one Content-Length.",
        ));
    } else if cl_count == 1 && length > 0 {
        BodyFraming::Length(length)
    } else {
        BodyFraming::None
    };
    Ok(Some(Parsed {
        method,
        uri,
        version,
        fields: RequestFields::new(head, fields),
        expect_continue: expect_continue && version == Version::HTTP_11,
        framing,
        keep_alive,
        upgrade: conn_upgrade && has_upgrade,
    }))
}

/// One plain client connection.
struct ClientConn {
    /// The read side; `None` while a request body holds it.
    rd: Option<OwnedReadHalf>,
    wr: OwnedWriteHalf,
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
    Head(Parsed),
    /// The client closed, went idle too long, or the server is stopping.
    Closed,
    Refused(Refusal),
}

impl ClientConn {
    /// Waits for and parses the next request head, within `timeout`.
    async fn next_head(
        &mut self,
        timeout: Duration,
        max_fields: usize,
        shutdown: &Shutdown,
    ) -> Next {
        // The deadline on the coarse clock; the precise one is read only to arm the
        // connection's timer the first time, and when it fires.
        let deadline_ms = coarse_ms().saturating_add(timeout.as_millis() as u64);
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, max_fields) {
                    Ok(Some(p)) => {
                        if self.buf.is_empty() {
                            self.buf = BytesMut::new();
                        }
                        return Next::Head(p);
                    }
                    Ok(None) => {}
                    Err(r) => return Next::Refused(r),
                }
            }
            if *shutdown.borrow() {
                return Next::Closed;
            }
            let Some(rd) = self.rd.as_mut() else {
                return Next::Closed;
            };
            let buf = &mut self.buf;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
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
                    Ok(_) => {}
                },
                () = timer.as_mut() => {
                    let now_ms = coarse_ms();
                    if now_ms < deadline_ms {
                        let left = Duration::from_millis(deadline_ms - now_ms);
                        timer.as_mut().reset(Instant::now() + left);
                    } else if self.buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        return Next::Closed;
                    } else {
                        return Next::Refused(Refusal(
                            StatusCode::REQUEST_TIMEOUT,
                            "Server timeout waiting for the HTTP request from the client.",
                        ));
                    }
                }
                () = stopping.as_mut() => return Next::Closed,
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
        let drain = async {
            // On the heap: this future is part of every request's state.
            let mut sink = vec![0u8; 4096];
            let mut total = 0usize;
            while total < LINGER_BYTES {
                match rd.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
}

/// Serves one plain client connection until it closes.
///
/// Between requests the task holds only the connection and the wait for the next head
/// (a few hundred bytes); the state of a request in flight lives in one box per request.
pub async fn serve(stream: TcpStream, peer: SocketAddr, shared: Shared, shutdown: Shutdown) {
    let (rd, wr) = stream.into_split();
    let mut conn = ClientConn {
        rd: Some(rd),
        wr,
        buf: BytesMut::new(),
        timer: None,
        stopping: None,
    };
    let info = ConnInfo::plain(peer);
    loop {
        let snap = shared.load_full();
        let max_fields = match snap.server.limit_request_fields {
            0 => MAX_FIELDS,
            n => (n as usize).saturating_add(1),
        };
        let next = conn
            .next_head(snap.server.keepalive_timeout, max_fields, &shutdown)
            .await;
        let p = match next {
            Next::Head(p) => p,
            Next::Closed => return,
            Next::Refused(refusal) => {
                Box::pin(refuse(conn, refusal, peer)).await;
                return;
            }
        };
        // In a block recycled on this thread (one allocation fewer per request), written
        // in place: moving the finished future would copy all of its kilobytes.
        let boxed = Recycled::into_pin(Recycled::write(
            Recycled::new_uninit(),
            exchange(conn, p, &info, &snap, &shutdown),
        ));
        match boxed.await {
            Some(c) => conn = c,
            None => return,
        }
    }
}

/// Answers a request head that cannot be served, and closes.
async fn refuse(mut conn: ClientConn, Refusal(status, why): Refusal, peer: SocketAddr) {
    tracing::info!(client = %peer, "refused request: {why}");
    let r = crate::proxy::error_page::error_page(status, why);
    let _ = write_response(&mut conn.wr, r, Version::HTTP_11, false, false).await;
    conn.linger().await;
}

/// A parsed request as the handler takes it, with what the connection keeps to finish it.
struct Request {
    parts: http::request::Parts,
    body: ClientBody,
    fields: RequestFields,
    /// Where the request body hands the socket back (`None`: no body).
    slot: Option<ReturnSlot>,
    /// Where the socket goes when the member agrees to an upgrade.
    upgrade_tx: Option<oneshot::Sender<PlainUpgraded>>,
}

/// Builds the handler's request from a parsed head. A plain function, not part of
/// [`exchange`]: the pieces are moved into the handler, and locals an async fn borrows
/// keep their room in its state for the whole request.
fn into_request(p: Parsed, conn: &mut ClientConn) -> Request {
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
            (ClientBody::Plain(body), Some(slot))
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
            .insert(ClientUpgrade::Plain(Arc::new(Mutex::new(Some(rx)))));
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

/// One request: runs the handler (watching the socket), writes the response, and gives the
/// connection back when it can carry another request.
async fn exchange(
    mut conn: ClientConn,
    p: Parsed,
    info: &ConnInfo,
    snap: &Arc<crate::runtime::Snapshot>,
    shutdown: &Shutdown,
) -> Option<ClientConn> {
    let peer = info.peer;
    let version = p.version;
    let is_head = p.method == Method::HEAD;
    let mut keep_alive = p.keep_alive;
    let Request {
        parts,
        body,
        fields,
        slot,
        upgrade_tx,
    } = into_request(p, &mut conn);
    // Pinned where it is made: moving the handler's future (kilobytes) costs a copy.
    let mut handler = std::pin::pin!(handle(parts, body, Some(fields), info, snap));
    let resp = if let Some(rd) = conn.rd.as_mut() {
        let buf = &mut conn.buf;
        let mut gone = false;
        let watched = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = handler.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            // Watch the socket: buffer pipelined requests, notice a client that left.
            while !gone && buf.len() < MAX_PIPELINED {
                match poll_read_small(rd, cx, buf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => gone = true,
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
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
                tracing::debug!(client = %peer, "client closed the connection; request cancelled");
                return None;
            }
        }
    } else {
        handler.await
    };
    if let Some(slot) = &slot
        && !conn.reclaim(slot)
    {
        keep_alive = false;
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(tx) = upgrade_tx
    {
        write_response(&mut conn.wr, resp, version, is_head, true)
            .await
            .ok()?;
        if let Some(rd) = conn.rd.take()
            && let Ok(stream) = rd.reunite(conn.wr)
        {
            let _ = tx.send(PlainUpgraded {
                stream,
                early: conn.buf.freeze(),
            });
        }
        return None;
    }
    if *shutdown.borrow() {
        keep_alive = false;
    }
    let keep = match write_response(&mut conn.wr, resp, version, is_head, keep_alive).await {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(client = %peer, "writing the response failed: {e}");
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

/// A first body frame at most this long is copied behind the response head and sent with it.
const COALESCE_MAX: usize = 2048;

/// Writes `resp` (head and body); returns whether the connection stays open.
async fn write_response(
    wr: &mut OwnedWriteHalf,
    resp: http::Response<DownBody>,
    version: Version,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let code = status.as_u16();
    let mut keep = keep_alive;
    let mut has_date = false;
    let mut has_length = false;
    let mut has_connection = false;
    // A member's fields written through as received (hop-by-hop ones already marked).
    let (member_fields, mut head) = match &mut body {
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
    head.clear();
    if head.capacity() == 0 {
        head.reserve(512);
    }
    head.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    if let Some(f) = &member_fields {
        for (name, value, role) in f.passed() {
            if role == FieldRole::ContentLength
                && framing != BodyFraming::None
                && !framing.is_length()
            {
                continue;
            }
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    }
    for (k, v) in &parts.headers {
        if framing != BodyFraming::None
            && (*k == header::TRANSFER_ENCODING
                || (*k == header::CONTENT_LENGTH && !framing.is_length()))
        {
            continue;
        }
        head.extend_from_slice(k.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !has_date {
        head.extend_from_slice(b"date: ");
        push_date(&mut head);
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(_) if !has_length => {
            let n = body.size_hint().exact().unwrap_or(0);
            use std::io::Write;
            let _ = write!(head, "content-length: {n}\r\n");
        }
        BodyFraming::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !has_connection && code != 101 {
        if !keep {
            head.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");

    if framing == BodyFraming::None {
        write_all(wr, &mut [IoSlice::new(&head)]).await?;
        return Ok(keep);
    }
    // A large member body on a plain socket moves socket to socket (splice), never through
    // balancerd's memory.
    if framing.is_length()
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
        write_all(wr, &mut [IoSlice::new(&head), IoSlice::new(&buffered)]).await?;
        let r = splice::copy_exact(src, wr.as_ref(), rest, spliced).await;
        inner.plain_run_done(r.is_ok());
        busy.take();
        return match r {
            Ok(()) => Ok(keep),
            Err(SpliceError::Source(e)) => {
                tracing::warn!(member = %name, "member connection broke while sending the response body: {e}");
                Err(e)
            }
            Err(SpliceError::Destination(e)) => Err(e),
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
                        write_all(wr, &mut [IoSlice::new(&h)]).await?;
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
            write_all(wr, &mut [IoSlice::new(h)]).await?;
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
                    write_all(
                        wr,
                        &mut [
                            IoSlice::new(head),
                            IoSlice::new(line),
                            IoSlice::new(&data),
                            IoSlice::new(b"\r\n"),
                        ],
                    )
                    .await?;
                } else {
                    write_all(wr, &mut [IoSlice::new(head), IoSlice::new(&data)]).await?;
                }
            }
            None => {
                let end: &[u8] = if framing == BodyFraming::Chunked {
                    b"0\r\n\r\n"
                } else {
                    b""
                };
                write_all(wr, &mut [IoSlice::new(head), IoSlice::new(end)]).await?;
                return Ok(keep);
            }
            Some(Err(e)) => {
                // The member broke mid-body: the client sees a cut response.
                if !head.is_empty() {
                    write_all(wr, &mut [IoSlice::new(head)]).await?;
                }
                return Err(io::Error::other(e));
            }
        }
    }
}

/// Writes every byte of `bufs`.
async fn write_all(wr: &mut OwnedWriteHalf, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n =
            std::future::poll_fn(|cx| crate::net::send::poll_send_vectored(wr.as_ref(), cx, bufs))
                .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Appends the current `Date` value (IMF-fixdate), formatted at most once a second.
fn push_date(out: &mut Vec<u8>) {
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
        out.extend_from_slice(&text[..]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<Parsed>, Refusal> {
        let mut b = BytesMut::from(s);
        parse_head(&mut b, 101)
    }

    #[test]
    fn framing_is_decided_from_the_raw_fields() {
        let p = parse(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing, BodyFraming::Length(5));
        assert!(p.keep_alive);
        let p = parse(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.framing, BodyFraming::Chunked);
        for bad in [
            &b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
        ] {
            let r = parse(bad);
            assert!(
                matches!(r, Err(Refusal(StatusCode::BAD_REQUEST, _))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn keep_alive_and_upgrade_follow_connection() {
        let p = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!p.keep_alive);
        let p = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(p.keep_alive);
        let p = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!p.keep_alive);
        let p = parse(
            b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(p.upgrade && p.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_and_oversized_ones_are_refused() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        assert!(matches!(
            parse(&big),
            Err(Refusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, _))
        ));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..120 {
            many.extend(format!("X-{i}: v\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert!(matches!(
            parse(&many),
            Err(Refusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, _))
        ));
    }

    #[test]
    fn pipelined_bytes_stay_in_the_buffer() {
        let mut b = BytesMut::from(&b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"[..]);
        let p = parse_head(&mut b, 101).unwrap().unwrap();
        assert_eq!(p.uri, "/1");
        let p = parse_head(&mut b, 101).unwrap().unwrap();
        assert_eq!(p.uri, "/2");
        assert!(b.is_empty());
    }
}
