//! balancerd's HTTP/2 server (TLS clients that chose `h2` by ALPN), on the `h2` crate.
//!
//! hyper's HTTP/2 server, which served these clients before, cannot send interim responses;
//! this one relays a member's `102 Processing` and `103 Early Hints` as informational
//! HEADERS ahead of the final response (RFC 9113 §8.1), as the HTTP/1.1 server writes them.
//!
//! ```text
//!  handshake ──▶ accept streams ──▶ a task per stream: the handler (1xx relayed; a client's
//!      │              ▲              RST_STREAM cancels it) ──▶ HEADERS ──▶ DATA (flow control)
//!      │              └── until GOAWAY: shutdown, or no stream open for KeepAliveTimeout
//!      └── then accept() drives the connection until the last stream ends
//! ```
//!
//! Invariants:
//! * The connection future is driven (through `accept`) until it ends: the streams' tasks
//!   hold only their stream handles, and their frames move only while it is driven.
//! * A stream the client resets drops its handler at once (a long-poll's member connection
//!   is freed, as when an HTTP/1.1 client closes).
//! * Connection-specific fields never go out (RFC 9113 §8.2.2).
//! * Settings are hyper's defaults for a server, which this front had before: 1 MiB stream
//!   and connection windows, 400 KiB send buffer per stream, 16 KiB header list, 256
//!   concurrent streams.

use crate::h1::interim::StreamInterim;
use crate::proxy::handler::{ConnInfo, handle};
use crate::runtime::{Shared, Snapshot};
use crate::server::Shutdown;
use crate::upstream::body::{ClientBody, DownBody, H2Body};
use crate::util::clock::coarse_ms;
use crate::util::stall::Stall;
use bytes::Bytes;
use h2::server::SendResponse;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

const STREAM_WINDOW: u32 = 1024 * 1024;
const CONN_WINDOW: u32 = 1024 * 1024;
const MAX_SEND_BUF: usize = 400 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_STREAMS: u32 = 256;
/// How long the client may take to send its connection preface and settings.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams open on one connection, and when the last one ended (coarse ms), for the idle
/// timeout.
#[derive(Debug, Default)]
struct Activity {
    open: AtomicUsize,
    last_end_ms: AtomicU64,
}

/// Counts a stream as open for its task's life.
struct OpenStream(Arc<Activity>);

impl OpenStream {
    fn new(a: &Arc<Activity>) -> Self {
        a.open.fetch_add(1, Relaxed);
        OpenStream(a.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.last_end_ms.store(coarse_ms(), Relaxed);
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// Serves one HTTP/2 connection until it ends: the client closes it, it sits idle with no
/// stream for `KeepAliveTimeout`, or the server stops (GOAWAY, then the open streams
/// finish).
pub async fn serve<S>(stream: S, info: ConnInfo, shared: Shared, mut shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let info = Arc::new(info);
    let idle = shared.load().server.keepalive_timeout;
    let mut b = h2::server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_send_buffer_size(MAX_SEND_BUF)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_streams(MAX_STREAMS);
    let stream = Lingering(Some(stream));
    let mut conn =
        match tokio::time::timeout(PREFACE_TIMEOUT, b.handshake::<_, Bytes>(stream)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, "HTTP/2 handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(client = %peer, "HTTP/2 handshake timed out");
                return;
            }
        };
    let activity = Arc::new(Activity::default());
    activity.last_end_ms.store(coarse_ms(), Relaxed);
    let mut stopping = false;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    let open = OpenStream::new(&activity);
                    tokio::spawn(serve_stream(req, respond, info.clone(), shared.load_full(), open));
                }
                Some(Err(e)) => {
                    tracing::debug!(client = %peer, "HTTP/2 connection ended: {e}");
                    return;
                }
                None => return,
            },
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                conn.graceful_shutdown();
            }
            () = &mut idle_timer, if !stopping => {
                let since = coarse_ms().saturating_sub(activity.last_end_ms.load(Relaxed));
                if activity.open.load(Relaxed) == 0 && since >= idle.as_millis() as u64 {
                    tracing::debug!(client = %peer, "HTTP/2 connection idle: closing");
                    stopping = true;
                    conn.graceful_shutdown();
                } else {
                    let left = idle.saturating_sub(Duration::from_millis(since)).max(Duration::from_millis(50));
                    idle_timer.as_mut().reset(Instant::now() + left);
                }
            }
        }
    }
}

/// How long, and how much, a finished connection's socket is read and dropped before it is
/// closed (as the HTTP/1.1 server's lingering close).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// The connection's stream, handed to the h2 crate. When h2 is done with it (GOAWAY sent,
/// the write side shut), what the client still sends (its acknowledgements of the last
/// frames) is read and dropped for a moment before the socket closes: closing with unread
/// bytes would send a reset, and the client could lose the end of the conversation.
struct Lingering<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(Option<S>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Lingering<S> {
    fn drop(&mut self) {
        let Some(mut s) = self.0.take() else {
            return;
        };
        // Outside a runtime (the process is exiting) the socket just closes.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                crate::net::read::drain(&mut s, LINGER_TIME, LINGER_BYTES).await;
            });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Lingering<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().0.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// One stream: the handler (relaying interim answers; cancelled when the client resets the
/// stream), then the response.
async fn serve_stream(
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    info: Arc<ConnInfo>,
    snap: Arc<Snapshot>,
    _open: OpenStream,
) {
    let (mut parts, recv) = req.into_parts();
    let is_head = parts.method == Method::HEAD;
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let interim = StreamInterim::default();
    parts.extensions.insert(interim.clone());
    let body = if recv.is_end_stream() {
        ClientBody::Empty
    } else {
        ClientBody::H2(H2Body::new(recv, length))
    };
    let resp = {
        let mut handler = std::pin::pin!(handle(parts, body, None, &info, &snap));
        std::future::poll_fn(|cx| {
            let r = handler.as_mut().poll(cx);
            // Interim answers first: those the member sent before its final one.
            if interim.0.has_pending() {
                relay_interim(&interim, &mut respond);
            }
            if let Poll::Ready(r) = r {
                return Poll::Ready(Some(r));
            }
            if respond.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    };
    let Some(resp) = resp else {
        tracing::debug!(client = %info.peer, "the client reset its HTTP/2 stream; request cancelled");
        return;
    };
    send_response(resp, respond, is_head, info.peer, snap.server.timeout).await;
}

/// Sends the interim answers waiting in `q` as informational HEADERS.
#[cold]
fn relay_interim(q: &StreamInterim, respond: &mut SendResponse<Bytes>) {
    let mut bytes = Vec::new();
    q.0.take_into(&mut bytes);
    // The queue holds them as HTTP/1.1 heads, as the member sent them (hop-by-hop fields
    // already left out).
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(n)) = r.parse(rest) else {
            return;
        };
        let Some(status) = r.code.and_then(|c| StatusCode::from_u16(c).ok()) else {
            return;
        };
        let mut head = Response::new(());
        *head.status_mut() = status;
        for f in r.headers.iter() {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(f.name.as_bytes()),
                HeaderValue::from_bytes(f.value),
            ) {
                head.headers_mut().append(name, value);
            }
        }
        strip_connection_fields(head.headers_mut());
        if respond.send_informational(head).is_err() {
            return;
        }
        rest = &rest[n..];
    }
}

/// Fields that mean something only to one HTTP/1.1 connection (RFC 9113 §8.2.2).
fn strip_connection_fields(h: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(name);
    }
}

/// What waiting for the next piece of the response body gave.
enum Next {
    Frame(Option<Result<http_body::Frame<Bytes>, crate::upstream::body::BoxError>>),
    /// The client reset the stream.
    Reset,
}

/// Sends the final response: HEADERS, then the body as DATA within the stream's flow
/// control window. A client that opens no window for `send_timeout` (httpd's `Timeout`: it
/// stopped reading) gets the stream reset (CANCEL), which drops the member's connection.
async fn send_response(
    resp: Response<DownBody>,
    mut respond: SendResponse<Bytes>,
    is_head: bool,
    peer: std::net::SocketAddr,
    send_timeout: std::time::Duration,
) {
    let (mut head, mut body) = resp.into_parts();
    strip_connection_fields(&mut head.headers);
    if !head.headers.contains_key(header::DATE) {
        head.headers
            .insert(header::DATE, crate::h1::writer::date_value());
    }
    let status = head.status.as_u16();
    let end = is_head || status == 204 || status == 304 || body.is_end_stream();
    let mut send = match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(client = %peer, "sending the HTTP/2 response head failed: {e}");
            return;
        }
    };
    if end {
        return;
    }
    loop {
        let next = std::future::poll_fn(|cx| {
            if send.poll_reset(cx).is_ready() {
                return Poll::Ready(Next::Reset);
            }
            Pin::new(&mut body).poll_frame(cx).map(Next::Frame)
        })
        .await;
        match next {
            Next::Reset => {
                tracing::debug!(client = %peer, "the client reset its HTTP/2 stream mid-response");
                return;
            }
            Next::Frame(Some(Ok(frame))) => {
                // Trailers are not forwarded.
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                while !data.is_empty() {
                    send.reserve_capacity(data.len());
                    let mut stall = Stall::default();
                    // `None`: the client opened no window for `send_timeout`.
                    let granted = std::future::poll_fn(|cx| match send.poll_capacity(cx) {
                        Poll::Pending if stall.expired(send_timeout, cx) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(c) => Poll::Ready(Some(c)),
                    })
                    .await;
                    let Some(granted) = granted else {
                        tracing::debug!(client = %peer, "the client took nothing of the response for {send_timeout:?} (Timeout)");
                        send.send_reset(h2::Reason::CANCEL);
                        return;
                    };
                    match granted {
                        Some(Ok(0)) => {}
                        Some(Ok(n)) => {
                            let chunk = data.split_to(n.min(data.len()));
                            if send.send_data(chunk, false).is_err() {
                                return;
                            }
                        }
                        // The stream is gone (reset or the connection ended).
                        _ => return,
                    }
                }
            }
            Next::Frame(None) => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Next::Frame(Some(Err(e))) => {
                // The member broke mid-body: the client sees the stream fail, not a
                // complete-looking response.
                tracing::debug!(client = %peer, "response body failed: {e}");
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return;
            }
        }
    }
}
