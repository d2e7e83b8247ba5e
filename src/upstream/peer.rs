//! A peer: one member endpoint's connections and traffic, the part of a member the
//! upstream layer needs (its keep-alive pool, in-flight count, bytes each way, responses by
//! status class and response-head latency). The balancer layer's member wraps a peer with
//! the member's health state and balancing counters; the peer knows nothing of them.
//!
//! A peer is shared by every snapshot that contains its member (it is carried by key over
//! reloads together with the member's state), so its pool and counters survive a reload.

use super::pool::Pool;
use crate::telemetry::LATENCY_BUCKETS;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Connections and traffic counters of one member endpoint.
#[derive(Debug, Default)]
pub struct Peer {
    /// Requests in flight.
    pub busy: AtomicU32,
    /// Bytes sent to the member.
    pub transferred: AtomicU64,
    /// Bytes read from the member.
    pub read: AtomicU64,
    /// Responses by status class (1xx..5xx at 1..=5).
    pub by_class: [AtomicU64; 6],
    /// Response-head latency histogram ([`LATENCY_BUCKETS`], last = +Inf).
    pub latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of latencies, µs.
    pub latency_sum_us: AtomicU64,
    /// Keep-alive connections to the member.
    pub pool: Pool,
}

impl Peer {
    /// Records a member response (status class and response-head latency).
    pub fn record(&self, status: u16, latency: Duration) {
        let class = (status / 100).min(5) as usize;
        self.by_class[class].fetch_add(1, Relaxed);
        let secs = latency.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[i].fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Relaxed);
    }
}
