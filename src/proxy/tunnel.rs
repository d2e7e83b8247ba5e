//! A client connection handed over to a tunnel after `101 Switching Protocols` by
//! balancerd's HTTP/1.1 server (plain or TLS). (HTTP/2 has no `Upgrade`; extended CONNECT,
//! RFC 8441, is not offered.)

use crate::net::client_io::ClientStream;
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// The byte stream a tunnel runs over, on the client side.
pub trait TunnelIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> TunnelIo for T {}

/// The promise of a client connection for a tunnel, put in the request's extensions by the
/// server that read the request; kept when the handler answers `101`. (Cloneable, as request
/// extensions must be; only one clone can receive the connection.)
#[derive(Debug, Clone)]
pub enum ClientUpgrade {
    /// balancerd's HTTP/1.1 server's hand-over, sent once the `101` head is written.
    H1(Arc<Mutex<Option<oneshot::Receiver<H1Upgraded>>>>),
}

impl ClientUpgrade {
    /// Waits for the connection (after the `101` head has gone out).
    pub async fn connection(self) -> Result<Box<dyn TunnelIo>, String> {
        match self {
            ClientUpgrade::H1(rx) => {
                let rx = rx.lock().ok().and_then(|mut r| r.take());
                match rx {
                    Some(rx) => match rx.await {
                        Ok(u) => Ok(Box::new(u)),
                        Err(_) => Err("the client connection was not handed over".into()),
                    },
                    None => Err("the client connection was already taken".into()),
                }
            }
        }
    }
}

/// A client connection of balancerd's HTTP/1.1 server after `101`: the connection, and
/// whatever the client sent after its request head (read before the hand-over), which the
/// tunnel reads first.
#[derive(Debug)]
pub struct H1Upgraded {
    /// The client's connection.
    pub stream: ClientStream,
    /// Bytes already read from it.
    pub early: Bytes,
}

impl AsyncRead for H1Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.early.is_empty() {
            let n = me.early.len().min(buf.remaining());
            buf.put_slice(&me.early[..n]);
            me.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for H1Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
