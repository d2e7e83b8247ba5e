//! Readiness and liveness for health checkers (keepalived's `vrrp_script`, Pacemaker,
//! Kubernetes probes, an upstream load balancer): `SetHandler ready` and `SetHandler live`.
//!
//! * **ready**: 200 when the config is loaded (it is: a snapshot exists), the process is not
//!   stopping, and every balancer that has members has at least one usable member (not D,
//!   S, E or C). Otherwise 503, with one line per reason. On SIGTERM it turns 503 at once,
//!   and `ShutdownDelay` keeps the listeners open that long, so checkers move traffic
//!   away before connections close.
//! * **live**: 200 while the process serves requests (also while stopping).
//!
//! May import: what `admin` may (`util` … `runtime`).

use crate::runtime::Snapshot;
use crate::telemetry::stats::STATS;
use std::sync::atomic::Ordering::Relaxed;

/// Whether the instance is ready, and the body that says why (or why not).
pub fn ready(snap: &Snapshot) -> (bool, String) {
    let mut why = Vec::new();
    if STATS.stopping.load(Relaxed) {
        why.push("stopping: draining before exit".to_string());
    }
    for b in snap.balancers.iter().filter(|b| !b.members.is_empty()) {
        if !b.members.iter().any(|m| m.usable()) {
            why.push(format!("{}: no usable member", b.full_name));
        }
    }
    if why.is_empty() {
        (true, "ready\n".into())
    } else {
        let mut body = String::from("not ready\n");
        for w in why {
            body.push_str(&w);
            body.push('\n');
        }
        (false, body)
    }
}
