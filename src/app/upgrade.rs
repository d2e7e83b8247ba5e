//! Zero-downtime binary upgrade (`balancerd upgrade`, SIGUSR2), as nginx, HAProxy and
//! Pingora do it:
//!
//! ```text
//!  old: SIGUSR2 ──▶ start the binary (same path, same arguments) with one end of a socket
//!                   pair ──▶ hand it every listening socket (SCM_RIGHTS) ──▶ wait for "ready"
//!  new: load the config ──▶ serve on the sockets it was handed (bind the others) ──▶ write
//!       the PidFile ──▶ "ready"
//!  old: on "ready": stop accepting, finish in-flight requests and long-polls (up to
//!       GracefulShutdownTimeout), exit, leaving the PidFile and admin socket to the new one;
//!       the new one exiting or not answering within 30 s: it is killed, the old one serves on
//! ```
//!
//! Invariants:
//! * A listening socket is never closed while no process accepts on it: the new process
//!   holds its copy before the old one closes its own, so connections waiting in the accept
//!   queue are taken by the new process, never refused.
//! * A failed start changes nothing: the old process keeps its sockets, its PidFile and its
//!   admin socket.
//!
//! May import: every layer (it is part of `app`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The environment variable that names the new process's end of the socket pair.
pub const ENV: &str = "BALANCERD_UPGRADE_FD";

/// How long the old process waits for the new one to say it serves.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most sockets one hand-over carries (the kernel's SCM_MAX_FD is 253).
const MAX_FDS: usize = 250;

/// Sends `data` with `fds` attached (SCM_RIGHTS).
fn send_fds(sock: &UnixStream, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(bytes as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the sendmsg call,
    // and the control buffer has CMSG_SPACE bytes for one header with `fds`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr(),
            libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            fds.len(),
        );
        if libc::sendmsg(sock.as_raw_fd(), &msg, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one message with the descriptors attached to it.
fn recv_fds(sock: &UnixStream) -> std::io::Result<(Vec<u8>, Vec<RawFd>)> {
    let mut data = vec![0u8; 64 * 1024];
    // SAFETY: CMSG_SPACE only computes a size.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut fds = Vec::new();
    // SAFETY: as in `send_fds`; the headers walked are inside `control`, whose length
    // msg_controllen says, and each SCM_RIGHTS header's data holds whole descriptors.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(std::ptr::read_unaligned(p.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        n as usize
    };
    data.truncate(n);
    Ok((data, fds))
}

/// In a process started by an upgrade: the listening sockets the old process handed over,
/// by address, and the channel to tell it when this one serves.
#[derive(Default)]
pub struct Inherited {
    by_addr: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    channel: Option<UnixStream>,
}

impl Inherited {
    /// The sockets handed over, when this process was started by an upgrade (else none).
    pub fn from_env() -> Inherited {
        let Some(fd) = std::env::var(ENV)
            .ok()
            .and_then(|v| v.parse::<RawFd>().ok())
        else {
            return Inherited::default();
        };
        // SAFETY: the old process started this one with `fd` open for exactly this (and
        // nothing else in this process knows of it).
        let channel = unsafe { UnixStream::from_raw_fd(fd) };
        // (The variable stays set: a later upgrade from this process sets its own.)
        let _ = channel.set_read_timeout(Some(Duration::from_secs(10)));
        let mut by_addr: HashMap<SocketAddr, Vec<std::net::TcpListener>> = HashMap::new();
        match recv_fds(&channel) {
            Ok((data, fds)) => {
                let addrs: Vec<SocketAddr> = String::from_utf8_lossy(&data)
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
                for (i, fd) in fds.into_iter().enumerate() {
                    // SAFETY: each descriptor arrived with SCM_RIGHTS: it is new and ours.
                    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                    if let Some(a) = addrs.get(i) {
                        by_addr.entry(*a).or_default().push(l);
                    }
                }
                tracing::info!(
                    "upgrade: took over {} listening socket(s) from the old process",
                    by_addr.values().map(Vec::len).sum::<usize>()
                );
            }
            Err(e) => tracing::warn!("upgrade: no sockets from the old process ({e}); binding"),
        }
        Inherited {
            by_addr,
            channel: Some(channel),
        }
    }

    /// The sockets handed over for `addr`, ready for tokio.
    pub fn take(&mut self, addr: SocketAddr) -> Option<Vec<tokio::net::TcpListener>> {
        let v = self.by_addr.remove(&addr)?;
        v.into_iter()
            .map(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .collect::<std::io::Result<Vec<_>>>()
            .ok()
    }

    /// Tells the old process this one serves (it then stops accepting and drains). Sockets
    /// of addresses the new config no longer has are closed.
    pub fn ready(&mut self) {
        self.by_addr.clear();
        if let Some(mut c) = self.channel.take() {
            let _ = c.write_all(b"ready\n");
        }
    }
}

/// In the old process: starts `exe` with this process's arguments, hands it `sockets`
/// (address, descriptor), and waits until it says it serves. Returns its pid; on any failure
/// the new process is killed and the old one goes on.
pub async fn hand_over(
    exe: std::path::PathBuf,
    sockets: Vec<(SocketAddr, RawFd)>,
) -> Result<u32, String> {
    tokio::task::spawn_blocking(move || hand_over_blocking(&exe, &sockets))
        .await
        .map_err(|e| e.to_string())?
}

fn hand_over_blocking(
    exe: &std::path::Path,
    sockets: &[(SocketAddr, RawFd)],
) -> Result<u32, String> {
    if sockets.len() > MAX_FDS {
        return Err(format!(
            "{} listening sockets: at most {MAX_FDS} can be handed over",
            sockets.len()
        ));
    }
    let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    // The new process's end must survive exec.
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut child = std::process::Command::new(exe)
        .args(&args)
        .env(ENV, theirs.as_raw_fd().to_string())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    drop(theirs);
    let pid = child.id();
    let addrs: Vec<String> = sockets.iter().map(|(a, _)| a.to_string()).collect();
    let fds: Vec<RawFd> = sockets.iter().map(|(_, f)| *f).collect();
    let fail = |child: &mut std::process::Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    if let Err(e) = send_fds(&ours, addrs.join(" ").as_bytes(), &fds) {
        return fail(&mut child, format!("cannot hand the sockets over: {e}"));
    }
    let _ = ours.set_read_timeout(Some(READY_TIMEOUT));
    let mut answer = [0u8; 6];
    let mut got = 0;
    while got < answer.len() {
        match (&ours).read(&mut answer[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    if &answer[..got] != b"ready\n" {
        let why = match child.try_wait() {
            Ok(Some(status)) => format!("the new process exited ({status}) before serving"),
            _ => format!("the new process did not serve within {READY_TIMEOUT:?}"),
        };
        return fail(&mut child, why);
    }
    // Not waited for: the new process outlives this one (init adopts it).
    drop(child);
    Ok(pid)
}

/// Tells systemd (`Type=notify`, `NotifyAccess=all`) this process serves and is the
/// service's main process: after an upgrade the new process takes that role, so systemd
/// does not count the old one's exit as the service stopping. Nothing without
/// `NOTIFY_SOCKET`.
pub fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket name.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
