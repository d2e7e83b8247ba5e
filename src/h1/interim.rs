//! Interim (1xx) answers on their way from a member to an HTTP/1.1 client: `102 Processing`
//! (WebDAV) and `103 Early Hints`. The member side (the upstream layer's exchange) encodes
//! each one it reads into the client connection's [`Interim`] queue; the connection that
//! runs the request writes the queued bytes to the client before the final answer.
//!
//! Not relayed: `100 Continue` (balancerd answers `Expect: 100-continue` itself when the
//! body is first read), `101` (an upgrade is the final answer), and anything to an HTTP/1.0
//! client (RFC 9110 §15.2: a server must not send it a 1xx).
//!
//! Invariant: the queue is written and emptied within the connection's own task (the
//! request's handler runs there), so no waker is needed: the connection loop looks at it
//! after each poll of the handler.
//!
//! May import: nothing outside `h1`.

use super::fields::Fields;
use http::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The interim answers waiting to be written to one client connection.
#[derive(Debug, Default)]
pub struct Interim {
    pending: AtomicBool,
    bytes: Mutex<Vec<u8>>,
}

/// One HTTP/2 stream's interim answers, shared by its task (which sends them) and the
/// request's extensions (where the member side finds the queue). HTTP/1.1 connections keep
/// theirs in the connection info instead: one request at a time.
#[derive(Debug, Default, Clone)]
pub struct StreamInterim(pub Arc<Interim>);

/// Most bytes of interim answers held for one request; beyond, later ones are dropped (a
/// member sending endless 1xx must not grow the proxy's memory).
const MAX_QUEUED: usize = 64 * 1024;

impl Interim {
    /// True when `status` is an interim answer that is relayed.
    pub fn relays(status: StatusCode) -> bool {
        status.is_informational() && !matches!(status.as_u16(), 100 | 101)
    }

    /// Queues one interim answer: its status line and the member's end-to-end fields as
    /// received (hop-by-hop ones left out).
    pub fn push(&self, status: StatusCode, fields: &Fields) {
        let Ok(mut q) = self.bytes.lock() else {
            return;
        };
        let start = q.len();
        q.extend_from_slice(b"HTTP/1.1 ");
        q.extend_from_slice(status.as_str().as_bytes());
        q.push(b' ');
        q.extend_from_slice(
            status
                .canonical_reason()
                .unwrap_or("Informational")
                .as_bytes(),
        );
        q.extend_from_slice(b"\r\n");
        for (name, value, _) in fields.passed() {
            q.extend_from_slice(name);
            q.extend_from_slice(b": ");
            q.extend_from_slice(value);
            q.extend_from_slice(b"\r\n");
        }
        q.extend_from_slice(b"\r\n");
        if q.len() > MAX_QUEUED {
            q.truncate(start);
            return;
        }
        self.pending.store(true, Relaxed);
    }

    /// True when answers are waiting (one relaxed load: checked after every poll).
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

    /// Takes the waiting bytes, appending them to `out`.
    pub fn take_into(&self, out: &mut Vec<u8>) {
        if let Ok(mut q) = self.bytes.lock() {
            out.append(&mut q);
        }
        self.pending.store(false, Relaxed);
    }
}
