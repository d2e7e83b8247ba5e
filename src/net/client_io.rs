//! A client connection's byte stream, plain TCP or TLS, as the HTTP/1.1 server uses it:
//! split into a read side (which a request body can own while it is read) and a write side.
//!
//! * **TCP**: tokio's owned halves. Writes go through `sendmsg` ([`super::send`]); both
//!   halves expose the socket ([`ClientRead::tcp`], [`ClientWrite::tcp`]) so that bodies can
//!   move socket to socket with splice(2).
//! * **TLS**: the rustls stream behind one lock shared by the two halves (a TLS record layer
//!   has one state for both directions). Both halves are polled by the connection's one task,
//!   so the lock is never contended: it costs two atomic operations per call. Writes accept
//!   plaintext into rustls (one record per write) and push the records out with `sendmsg`,
//!   as the plain path writes; `poll_flush` pushes out whatever the socket did not take. Reads take one chunk of decrypted plaintext at a time
//!   (tokio-rustls's `poll_read` would try the socket once more after every read and pay a
//!   `recvmsg` returning EAGAIN).
//!
//! Invariant: after `write_all` + `poll_flush` return, every byte written has reached the
//! socket (rustls holds no ciphertext); an idle connection between requests therefore holds
//! no outgoing data.
//!
//! Layer 2 (`net`). May import: `util`, `telemetry`.

use crate::util::stall::Stall;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

/// A TLS client connection shared by its read and write sides.
#[derive(Debug, Clone)]
pub struct TlsShared(Arc<Mutex<TlsStream<TcpStream>>>);

impl TlsShared {
    fn lock(&self) -> MutexGuard<'_, TlsStream<TcpStream>> {
        // A panic while holding the lock cannot leave rustls half-updated in a way that
        // matters more than the connection itself: keep serving it or let it fail.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The read side of a client connection.
#[derive(Debug)]
pub enum ClientRead {
    Tcp(OwnedReadHalf),
    Tls(TlsShared),
}

/// The write side of a client connection.
#[derive(Debug)]
pub enum ClientWrite {
    Tcp(OwnedWriteHalf),
    Tls(TlsShared),
}

/// A whole client connection again (after `101 Switching Protocols`).
#[derive(Debug)]
pub enum ClientStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Splits a plain connection.
pub fn split_tcp(s: TcpStream) -> (ClientRead, ClientWrite) {
    let (r, w) = s.into_split();
    (ClientRead::Tcp(r), ClientWrite::Tcp(w))
}

/// Splits a TLS connection (handshake done).
pub fn split_tls(s: TlsStream<TcpStream>) -> (ClientRead, ClientWrite) {
    let shared = TlsShared(Arc::new(Mutex::new(s)));
    (ClientRead::Tls(shared.clone()), ClientWrite::Tls(shared))
}

/// Puts the two sides of one connection back together; `None` when they are not from the
/// same connection.
pub fn reunite(rd: ClientRead, wr: ClientWrite) -> Option<ClientStream> {
    match (rd, wr) {
        (ClientRead::Tcp(r), ClientWrite::Tcp(w)) => r.reunite(w).ok().map(ClientStream::Tcp),
        (ClientRead::Tls(r), ClientWrite::Tls(w)) => {
            if !Arc::ptr_eq(&r.0, &w.0) {
                return None;
            }
            drop(w);
            let m = Arc::try_unwrap(r.0).ok()?;
            Some(ClientStream::Tls(Box::new(
                m.into_inner().unwrap_or_else(|e| e.into_inner()),
            )))
        }
        _ => None,
    }
}

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl ClientRead {
    /// The socket, for a plain connection (splice(2) runs).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ClientRead::Tcp(r) => Some(r.as_ref()),
            ClientRead::Tls(_) => None,
        }
    }

    /// Sends `100 Continue` from the read side (the request body asks for it when first
    /// read, while the write side waits for the handler's answer). On TCP a fresh socket's
    /// send buffer always has room, so one `send` does it. On TLS the record is queued in
    /// rustls here; [`ClientRead::poll_flush_continue`] pushes it out.
    pub fn send_continue(&self) {
        match self {
            ClientRead::Tcp(r) => {
                let _ = r.as_ref().try_write(CONTINUE);
            }
            ClientRead::Tls(t) => {
                let mut g = t.lock();
                let _ = io::Write::write_all(&mut g.get_mut().1.writer(), CONTINUE);
            }
        }
    }

    /// Pushes out what [`ClientRead::send_continue`] queued (TLS); ready at once on TCP.
    pub fn poll_flush_continue(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientRead::Tcp(_) => Poll::Ready(Ok(())),
            ClientRead::Tls(t) => Pin::new(&mut *t.lock()).poll_flush(cx),
        }
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ClientRead::Tls(t) => {
                let mut g = t.lock();
                let mut s = Pin::new(&mut *g);
                let data = ready!(s.as_mut().poll_fill_buf(cx))?;
                let n = data.len().min(buf.remaining());
                buf.put_slice(&data[..n]);
                s.consume(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl ClientWrite {
    /// The socket, for a plain connection (splice(2) runs).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            ClientWrite::Tcp(w) => Some(w.as_ref()),
            ClientWrite::Tls(_) => None,
        }
    }

    /// Writes as much of `bufs` as the connection takes now (TLS: as rustls accepts, in one
    /// record, and pushes the records out as far as the socket takes them).
    pub fn poll_write_bufs(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            ClientWrite::Tcp(w) => super::send::poll_send_vectored(w.as_ref(), cx, bufs),
            ClientWrite::Tls(t) => {
                let mut g = t.lock();
                let (tcp, tls) = g.get_mut();
                // A second try only after the socket took every pending record: rustls then
                // has room, or never will (`Ok(0)`, which the caller takes as WriteZero).
                for _ in 0..2 {
                    let n = io::Write::write_vectored(&mut tls.writer(), bufs)?;
                    let pushed = poll_push_records(tcp, tls, cx)?;
                    if n > 0 || bufs.iter().all(|b| b.is_empty()) {
                        return Poll::Ready(Ok(n));
                    }
                    // rustls's buffer was full: wait for the socket to take records.
                    ready!(pushed);
                }
                Poll::Ready(Ok(0))
            }
        }
    }

    /// Pushes out what rustls holds (TLS); ready at once on TCP.
    fn poll_push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientWrite::Tcp(_) => Poll::Ready(Ok(())),
            ClientWrite::Tls(t) => {
                let mut g = t.lock();
                let (tcp, tls) = g.get_mut();
                poll_push_records(tcp, tls, cx)
            }
        }
    }

    /// Writes every byte of `bufs`, and on TLS pushes the records out to the socket. A
    /// client that takes nothing for `limit` (httpd's `Timeout` on each write) fails it with
    /// `TimedOut`; the timer is made only when the socket is full (most writes never wait).
    pub async fn write_all(
        &mut self,
        mut bufs: &mut [IoSlice<'_>],
        limit: std::time::Duration,
    ) -> io::Result<()> {
        let mut stall = Stall::default();
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            let n = std::future::poll_fn(|cx| match self.poll_write_bufs(cx, bufs) {
                Poll::Pending if stall.expired(limit, cx) => Poll::Ready(Err(timed_out(limit))),
                r => r,
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            stall.progress();
            IoSlice::advance_slices(&mut bufs, n);
        }
        if let ClientWrite::Tls(_) = self {
            std::future::poll_fn(|cx| match self.poll_push(cx) {
                Poll::Pending if stall.expired(limit, cx) => Poll::Ready(Err(timed_out(limit))),
                r => r,
            })
            .await?;
        }
        Ok(())
    }
}

/// The error of a write the client took nothing of for `limit`.
#[cold]
fn timed_out(limit: std::time::Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took nothing for {limit:?} (Timeout)"),
    )
}

/// Writes rustls's pending records to the socket with `sendmsg` ([`super::send`]), as the
/// plain path writes, instead of tokio-rustls's `writev` through the file layer.
fn poll_push_records(
    tcp: &TcpStream,
    tls: &mut rustls::ServerConnection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    /// rustls's `write_tls` target: the socket, `WouldBlock` when it is full.
    struct Send<'a, 'b> {
        tcp: &'a TcpStream,
        cx: &'a mut Context<'b>,
    }
    impl io::Write for Send<'_, '_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            match super::send::poll_send_vectored(self.tcp, self.cx, bufs) {
                Poll::Ready(r) => r,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    while tls.wants_write() {
        match tls.write_tls(&mut Send { tcp, cx }) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

impl AsyncWrite for ClientWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bufs(cx, &[IoSlice::new(buf)])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_push(cx)
    }

    /// TCP: shuts the write direction. TLS: sends `close_notify`, then the same.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            ClientWrite::Tls(t) => Pin::new(&mut *t.lock()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
