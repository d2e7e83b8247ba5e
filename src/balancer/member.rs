//! A member at runtime: its static spec from the config plus its live state.
//!
//! ```text
//!            connect failure / failonstatus / failontimeout (unless status I)
//!   usable ─────────────────────────────────────────────────────────────▶ in error
//!     ▲                                                                     │
//!     └──── first request after error_time + retry (the request is the probe)┘
//!           or force recovery when every member is in error
//! ```
//!
//! The state (`MemberState`) is keyed by (balancer, member URL) and outlives reloads, so a
//! reload never forgets that a member is down, nor resets its balancing counters.
//!
//! Invariants:
//! * Only a member's own failure puts it in error: a connect failure, `failonstatus`, a
//!   timeout with `failontimeout`, a failed health-check streak (C). A failure the
//!   `upstream::error::ProxyError` decision blames on the client never does.
//! * `in_error` is cleared only by [`MemberRt::retry`] (the retry time passed, or status I),
//!   by passing health checks, or by the balancer's force recovery; a reload keeps it.
//! * Putting a member in error empties its pool: no request is sent on a connection to a
//!   member known to be down.
//! * The balancing counters (`lbstatus`, `elected`) change only under the balancer's lock.

use crate::config::model::{Member, StatusFlags};
use crate::upstream::peer::Peer;
use crate::util::clock::coarse_ms;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Live state of one member; shared by every snapshot that contains the member.
#[derive(Debug, Default)]
pub struct MemberState {
    /// In error (httpd's E flag), set by failures.
    pub in_error: AtomicBool,
    /// When the error was recorded (`util::clock::coarse_ms`).
    pub error_time: AtomicU64,
    /// Failed its active health check (C flag).
    pub hc_failed: AtomicBool,
    /// byrequests/bybusyness counter (changed only under the balancer's lock).
    pub lbstatus: AtomicI64,
    /// Times chosen.
    pub elected: AtomicU64,
    /// Failures recorded.
    pub errors: AtomicU64,
    /// Health checks passed / failed.
    pub hc_passes: AtomicU64,
    /// Health checks failed.
    pub hc_fails: AtomicU64,
    /// Consecutive health-check results (positive: passes, negative: failures).
    pub hc_streak: AtomicI64,
    /// A check is in flight (never more than one per member).
    pub hc_running: AtomicBool,
    /// When the next check is due (`util::clock::coarse_ms`).
    pub hc_next: AtomicU64,
    /// The member's connections and traffic counters (the upstream layer's part).
    pub peer: Arc<Peer>,
}

/// A member in a snapshot: config spec + shared live state.
#[derive(Debug)]
pub struct MemberRt {
    /// The member as configured.
    pub spec: Member,
    /// The normalised URL (`BALANCER_WORKER_NAME`).
    pub name: Arc<str>,
    /// The route (`BALANCER_WORKER_ROUTE`).
    pub route: Arc<str>,
    /// Live state.
    pub state: Arc<MemberState>,
    /// The `Host` header sent to the member (built once, not per request).
    pub host_header: Option<http::HeaderValue>,
}

impl MemberRt {
    /// A member with fresh or carried-over state.
    pub fn new(spec: Member, state: Option<Arc<MemberState>>) -> Self {
        let state = state.unwrap_or_else(|| {
            let s = MemberState::default();
            if spec.params.status.has(StatusFlags::IN_ERROR) {
                s.in_error.store(true, Relaxed);
            }
            Arc::new(s)
        });
        MemberRt {
            host_header: http::HeaderValue::from_str(&spec.url.host_header()).ok(),
            name: Arc::from(spec.url.to_string()),
            route: Arc::from(spec.params.route.as_str()),
            spec,
            state,
        }
    }

    fn flags(&self) -> StatusFlags {
        self.spec.params.status
    }

    /// httpd's `PROXY_WORKER_IS_USABLE`: none of E, D, S, C. (N is usable.)
    pub fn usable(&self) -> bool {
        let f = self.flags();
        !(f.has(StatusFlags::DISABLED)
            || f.has(StatusFlags::STOPPED)
            || f.has(StatusFlags::HC_FAILED)
            || self.state.in_error.load(Relaxed)
            || self.state.hc_failed.load(Relaxed))
    }

    /// H.
    pub fn is_standby(&self) -> bool {
        self.flags().has(StatusFlags::HOT_STANDBY)
    }

    /// R.
    pub fn is_spare(&self) -> bool {
        self.flags().has(StatusFlags::HOT_SPARE)
    }

    /// N.
    pub fn is_draining(&self) -> bool {
        self.flags().has(StatusFlags::DRAIN)
    }

    /// The load factor (×100).
    pub fn factor(&self) -> i64 {
        i64::from(self.spec.params.loadfactor)
    }

    /// httpd's `ap_proxy_retry_worker`: an in-error member whose retry time has passed is
    /// cleared (the next request is the probe). Returns true when the member may be tried.
    pub fn retry(&self) -> bool {
        if !self.state.in_error.load(Relaxed) {
            return true;
        }
        if self.flags().has(StatusFlags::STOPPED) {
            return false;
        }
        let due = self.state.error_time.load(Relaxed) + self.spec.params.retry.as_millis() as u64;
        if self.flags().has(StatusFlags::IGNORE_ERRORS) || coarse_ms() >= due {
            self.state.in_error.store(false, Relaxed);
            tracing::info!(member = %self.name, "member marked for retry");
            return true;
        }
        false
    }

    /// Puts the member in error (unless it has the I flag).
    pub fn mark_error(&self, why: &str) {
        self.state.errors.fetch_add(1, Relaxed);
        if self.flags().has(StatusFlags::IGNORE_ERRORS) {
            return;
        }
        self.state.error_time.store(coarse_ms(), Relaxed);
        if !self.state.in_error.swap(true, Relaxed) {
            tracing::error!(
                member = %self.name,
                "disabling member {} for {}s: {why}",
                self.name,
                self.spec.params.retry.as_secs()
            );
        }
        self.state.peer.pool.clear();
    }

    /// Records a member response (status class and response-head latency).
    pub fn record(&self, status: u16, latency: Duration) {
        self.state.peer.record(status, latency);
    }

    /// Time until an in-error member becomes eligible again.
    pub fn retry_in(&self) -> Option<Duration> {
        if !self.state.in_error.load(Relaxed) {
            return None;
        }
        let due = self.state.error_time.load(Relaxed) + self.spec.params.retry.as_millis() as u64;
        Some(Duration::from_millis(due.saturating_sub(coarse_ms())))
    }
}
