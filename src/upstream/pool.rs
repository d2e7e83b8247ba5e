//! Per-member keep-alive pool of member connections ([`MemberConn`]).
//!
//! LIFO reuse (the most recently used connection is the least likely to have been closed by
//! the member); idle connections expire before common backend keep-alive limits (Jetty closes
//! at 30 s) or at the member's `ttl`; `max` caps connections per member. A connection is
//! returned only after its response body ended, so a pooled connection is always idle.
//!
//! Invariants: a connection in the pool has no request in flight and no unread response
//! bytes (`MemberBody` returns it only when its body ended with the read buffer empty and
//! the member allowed keep-alive); a connection taken from the pool is marked `reused`, so a
//! failure before any answer on it is retried once on a fresh connection
//! (`upstream::error::Decision::RetryFresh`) instead of blaming the member.

use super::exchange::MemberConn;
use crate::util::clock::coarse_ms;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle lifetime when the member sets no `ttl`: below Jetty's 30 s and nginx's 75 s.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15);

/// Most idle connections kept per member: above the open-file budget, so that the burst of
/// long-polls re-issued when a wave of them completes finds its connections again instead of
/// reconnecting (with 512, 8,000 long-polls re-opened ~7,000 member connections every 30 s;
/// idle ones still expire after `ttl` or 15 s).
const MAX_IDLE: usize = 16_384;

struct Idle {
    conn: MemberConn,
    since_ms: u64,
    permit: Option<OwnedSemaphorePermit>,
}

/// The pool of one member.
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    limit: Mutex<Option<(u32, Arc<Semaphore>)>>,
    /// Connections opened.
    pub opened: AtomicU64,
    /// Requests sent on a reused connection.
    pub reused: AtomicU64,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            limit: Mutex::new(None),
            opened: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .field("opened", &self.opened.load(Relaxed))
            .field("reused", &self.reused.load(Relaxed))
            .finish()
    }
}

impl Pool {
    /// Idle connections now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Takes the most recent live idle connection, dropping expired and closed ones.
    pub fn take(&self, max_idle: Duration) -> Option<(MemberConn, Option<OwnedSemaphorePermit>)> {
        let mut v = self.idle.lock().ok()?;
        // The coarse clock: idle limits are seconds; a few ms of slack costs nothing.
        let now = coarse_ms();
        let max_idle = max_idle.as_millis() as u64;
        // Expired connections are the oldest: at the front.
        let expired = v
            .iter()
            .take_while(|i| now.saturating_sub(i.since_ms) >= max_idle)
            .count();
        if expired > 0 {
            v.drain(..expired);
        }
        while let Some(mut i) = v.pop() {
            if i.conn.idle_usable() {
                return Some((i.conn, i.permit));
            }
        }
        None
    }

    /// Returns a connection after its exchange completed.
    pub fn put(&self, mut conn: MemberConn, permit: Option<OwnedSemaphorePermit>) {
        conn.park();
        if let Ok(mut v) = self.idle.lock() {
            if v.len() >= MAX_IDLE {
                v.remove(0);
            }
            v.push(Idle {
                conn,
                since_ms: coarse_ms(),
                permit,
            });
        }
    }

    /// Drops every idle connection (the member went into error).
    pub fn clear(&self) {
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }

    /// The connection cap of the member (`max`), created on first use.
    pub fn semaphore(&self, max: Option<u32>) -> Option<Arc<Semaphore>> {
        let max = max.filter(|m| *m > 0)?;
        let mut l = self.limit.lock().ok()?;
        match &*l {
            Some((m, s)) if *m == max => Some(s.clone()),
            _ => {
                let s = Arc::new(Semaphore::new(max as usize));
                *l = Some((max, s.clone()));
                Some(s)
            }
        }
    }
}

/// A connection checked out for one exchange.
pub struct PooledConn {
    /// The connection.
    pub conn: MemberConn,
    /// True when taken from the pool (it may have been closed by the member meanwhile).
    pub reused: bool,
    /// False for `disablereuse=On`.
    pub poolable: bool,
    /// The cap permit, held while the connection exists.
    pub permit: Option<OwnedSemaphorePermit>,
    /// The member whose pool takes it back.
    pub member: Arc<crate::upstream::peer::Peer>,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("reused", &self.reused)
            .finish()
    }
}

impl PooledConn {
    /// The exchange completed: back to the pool (or closed, for `disablereuse`).
    pub fn release(self) {
        if self.poolable {
            self.member.pool.put(self.conn, self.permit);
        }
    }
}
