//! Layer 1, `telemetry`: what the process counts and writes about itself.
//!
//! Owns: process-wide counters ([`stats`]), the latency histogram's buckets ([`LATENCY_BUCKETS`]),
//! and the access log: `LogFormat` compilation and the log writer ([`access_log`]). Values that
//! belong to higher layers (the `BALANCER_*` variables) reach the log through the
//! [`access_log::LogVars`] trait, which the proxy implements.
//!
//! May import: `util`.

pub mod access_log;
pub mod stats;

/// Upper bounds (seconds) of the member response-head latency histogram; one more bucket
/// (+Inf) follows the last.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5, 10.0];
