//! Writes to a TCP socket with `sendmsg(2)` (`send(2)` for one buffer) instead of `writev(2)`.
//!
//! A socket written through the file layer pays for it on every call: `writev` goes through
//! `vfs_writev` (area checks, fsnotify) before reaching the socket, where `sendmsg` goes to
//! the socket directly, as HAProxy's `send` does. On the small-request path each request
//! makes two writes, and the file layer was ~2% of the proxy's CPU time (perf, kernel
//! symbols). `MSG_NOSIGNAL`: a peer that left gives `EPIPE`, never a signal.

use socket2::SockRef;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, ready};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Writes as much of `bufs` as the socket takes now; like `poll_write_vectored`.
pub fn poll_send_vectored(
    s: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        ready!(s.poll_write_ready(cx))?;
        let sent = s.try_io(Interest::WRITABLE, || {
            let sock = SockRef::from(s);
            match bufs {
                [one] => sock.send_with_flags(one, libc::MSG_NOSIGNAL),
                _ => sock.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL),
            }
        });
        match sent {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn sends_every_buffer_in_order() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut b, _) = l.accept().await.unwrap();
        let bufs = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        let n = std::future::poll_fn(|cx| poll_send_vectored(&a, cx, &bufs))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let n = std::future::poll_fn(|cx| poll_send_vectored(&a, cx, &[IoSlice::new(b"f")]))
            .await
            .unwrap();
        assert_eq!(n, 1);
        let mut got = [0u8; 6];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdef");
    }
}
