//! Zero-copy forwarding of a body between two plain TCP sockets: `splice(2)` from the source
//! socket into a pipe and from the pipe into the destination socket. The bytes never enter
//! balancerd's memory (the kernel moves page references), so a 100 MB recording costs no
//! copies in user space and no buffer beyond the pipe's.
//!
//! Used for `Content-Length` bodies of at least [`SPLICE_MIN`] bytes when both sockets are
//! plain TCP (TLS needs the bytes in user space). Readiness comes from tokio's reactor, so
//! the transfer is an ordinary future in the request's task.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, ready};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies shorter than this are copied the ordinary way (a pipe costs four system calls).
pub const SPLICE_MIN: u64 = 128 * 1024;

/// The pipe size asked for (the kernel may give less: `/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 256 * 1024;

/// A pipe between the two sockets, with the count of bytes it holds.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    held: usize,
    size: usize,
}

/// What a fill step did.
enum Fill {
    Moved(usize),
    /// The source closed.
    Eof,
    /// The pipe took nothing although the socket was readable: it is full (its slots can
    /// fill before its byte size does). Drain first.
    PipeFull,
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain system call on descriptors owned by live objects; null offsets (both
    // are a socket or a pipe).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded; the descriptors are new and owned here only.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Best effort: a larger pipe means fewer system calls per megabyte.
        // SAFETY: fcntl on a descriptor owned here.
        let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as i32) };
        let size = if size > 0 { size as usize } else { 64 * 1024 };
        Ok(Pipe {
            r,
            w,
            held: 0,
            size,
        })
    }

    /// Moves up to `max` bytes from `src` into the pipe.
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        max: usize,
    ) -> Poll<io::Result<Fill>> {
        loop {
            ready!(src.poll_read_ready(cx))?;
            if self.held > 0 {
                // EAGAIN could mean an empty socket or a full pipe: no readiness is cleared
                // on it; the caller drains the pipe, and an empty pipe decides below.
                return Poll::Ready(match splice(src.as_raw_fd(), self.w.as_raw_fd(), max) {
                    Ok(0) => Ok(Fill::Eof),
                    Ok(n) => {
                        self.held += n;
                        Ok(Fill::Moved(n))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::PipeFull),
                    Err(e) => Err(e),
                });
            }
            // With an empty pipe, EAGAIN means the socket is empty: tokio clears its readiness.
            let w = self.w.as_raw_fd();
            match src.try_io(Interest::READABLE, || splice(src.as_raw_fd(), w, max)) {
                Ok(0) => return Poll::Ready(Ok(Fill::Eof)),
                Ok(n) => {
                    self.held += n;
                    return Poll::Ready(Ok(Fill::Moved(n)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Moves what the pipe holds into `dst` (EAGAIN here always means a full socket).
    fn poll_drain(&mut self, cx: &mut Context<'_>, dst: &TcpStream) -> Poll<io::Result<usize>> {
        loop {
            ready!(dst.poll_write_ready(cx))?;
            let r = self.r.as_raw_fd();
            let held = self.held;
            match dst.try_io(Interest::WRITABLE, || splice(r, dst.as_raw_fd(), held)) {
                Ok(n) => {
                    self.held -= n;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Where a splice transfer failed: reading the source or writing the destination.
#[derive(Debug)]
pub enum SpliceError {
    /// The source failed or closed early.
    Source(io::Error),
    /// The destination failed.
    Destination(io::Error),
}

impl std::fmt::Display for SpliceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceError::Source(e) => write!(f, "reading: {e}"),
            SpliceError::Destination(e) => write!(f, "writing: {e}"),
        }
    }
}

/// A transfer of a fixed number of bytes from one socket to another, driven by polling
/// (for callers that do something else in the same poll, such as listening for an early
/// answer).
pub struct SpliceRun {
    pipe: Pipe,
    left: u64,
}

impl SpliceRun {
    /// A transfer of `len` bytes.
    pub fn new(len: u64) -> io::Result<Self> {
        Ok(SpliceRun {
            pipe: Pipe::new()?,
            left: len,
        })
    }

    /// Moves what can be moved now; `Ready(Ok)` once all `len` bytes reached `dst`.
    /// `on_read` is told of every piece taken from `src` (byte counters, idle timers).
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        mut on_read: impl FnMut(usize),
    ) -> Poll<Result<(), SpliceError>> {
        let pipe = &mut self.pipe;
        loop {
            let mut progress = false;
            if pipe.held > 0 {
                match pipe.poll_drain(cx, dst) {
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceError::Destination(e))),
                    Poll::Pending => {}
                }
            }
            if self.left > 0 && pipe.held < pipe.size {
                let max = self.left.min((pipe.size - pipe.held) as u64) as usize;
                match pipe.poll_fill(cx, src, max) {
                    Poll::Ready(Ok(Fill::Moved(n))) => {
                        self.left -= n as u64;
                        on_read(n);
                        progress = true;
                    }
                    Poll::Ready(Ok(Fill::Eof)) => {
                        return Poll::Ready(Err(SpliceError::Source(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection closed before the body ended",
                        ))));
                    }
                    Poll::Ready(Ok(Fill::PipeFull)) | Poll::Pending => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceError::Source(e))),
                }
            }
            if self.left == 0 && pipe.held == 0 {
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// Moves exactly `len` bytes from `src` to `dst`; `on_read` is told of every piece taken
/// from `src` (for byte counters).
pub async fn copy_exact(
    src: &TcpStream,
    dst: &TcpStream,
    len: u64,
    mut on_read: impl FnMut(usize),
) -> Result<(), SpliceError> {
    let mut run = SpliceRun::new(len).map_err(SpliceError::Source)?;
    poll_fn(|cx| run.poll(cx, src, dst, &mut on_read)).await
}

/// [`copy_exact`] with httpd's `Timeout` on each side: fails with [`SpliceError::Source`]
/// (`TimedOut`) when the source sends nothing for `read_timeout` while the pipe has room, and
/// with [`SpliceError::Destination`] when the destination takes nothing for `write_timeout`
/// while the pipe holds bytes. A side's clock stands still while the other side holds the
/// transfer up (a full pipe is not the source's fault, an empty one not the destination's).
pub async fn copy_exact_timed(
    src: &TcpStream,
    dst: &TcpStream,
    len: u64,
    mut on_read: impl FnMut(usize),
    read_timeout: std::time::Duration,
    write_timeout: std::time::Duration,
) -> Result<(), SpliceError> {
    use tokio::time::Instant;
    let mut run = SpliceRun::new(len).map_err(SpliceError::Source)?;
    let (mut read_at, mut write_at) = (Instant::now(), Instant::now());
    let mut timer = Box::pin(tokio::time::sleep_until(read_at + read_timeout));
    poll_fn(|cx| {
        loop {
            let (left, unsent) = (run.left, run.left + run.pipe.held as u64);
            if let Poll::Ready(r) = run.poll(cx, src, dst, &mut on_read) {
                return Poll::Ready(r);
            }
            let now = Instant::now();
            if run.left < left || run.pipe.held >= run.pipe.size {
                read_at = now;
            }
            if run.left + (run.pipe.held as u64) < unsent || run.pipe.held == 0 {
                write_at = now;
            }
            let (read_by, write_by) = (read_at + read_timeout, write_at + write_timeout);
            if now >= read_by {
                return Poll::Ready(Err(SpliceError::Source(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing to read for {read_timeout:?}"),
                ))));
            }
            if now >= write_by {
                return Poll::Ready(Err(SpliceError::Destination(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nothing taken for {write_timeout:?}"),
                ))));
            }
            timer.as_mut().reset(read_by.min(write_by));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two connected loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn moves_exactly_the_length_and_leaves_the_rest() {
        let (mut src_w, src_r) = pair().await;
        let (dst_w, mut dst_r) = pair().await;
        let len = 3 * 1024 * 1024 + 17;
        let data: Vec<u8> = (0..len + 5).map(|i| (i % 251) as u8).collect();
        let feed = data.clone();
        let writer = tokio::spawn(async move {
            src_w.write_all(&feed).await.unwrap();
            src_w
        });
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; len];
            dst_r.read_exact(&mut got).await.unwrap();
            got
        });
        let mut counted = 0;
        copy_exact(&src_r, &dst_w, len as u64, |n| counted += n)
            .await
            .unwrap();
        assert_eq!(counted, len);
        assert_eq!(reader.await.unwrap(), data[..len]);
        // The 5 bytes after the body are still on the source socket.
        let mut rest = [0u8; 5];
        let mut src_r = src_r;
        src_r.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest[..], data[len..]);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_source_closing_early_is_a_source_error() {
        let (mut src_w, src_r) = pair().await;
        let (dst_w, _dst_r) = pair().await;
        src_w.write_all(&[7u8; 1000]).await.unwrap();
        drop(src_w);
        let r = copy_exact(&src_r, &dst_w, 5000, |_| {}).await;
        assert!(matches!(r, Err(SpliceError::Source(_))), "{r:?}");
    }
}
