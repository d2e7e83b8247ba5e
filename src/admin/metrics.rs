//! Prometheus exposition at a `<Location>` with `SetHandler metrics`.

use crate::runtime::Snapshot;
use crate::telemetry::LATENCY_BUCKETS;
use crate::telemetry::stats::STATS;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text.
pub fn render(snap: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP balancerd_requests_total Requests answered, by status class.\n# TYPE balancerd_requests_total counter"
    );
    for (i, c) in STATS.by_class.iter().enumerate().skip(1) {
        let _ = writeln!(
            o,
            "balancerd_requests_total{{class=\"{i}xx\"}} {}",
            c.load(Relaxed)
        );
    }
    let _ = writeln!(
        o,
        "# TYPE balancerd_in_flight gauge\nbalancerd_in_flight {}",
        STATS.in_flight.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# TYPE balancerd_client_connections gauge\nbalancerd_client_connections {}",
        STATS.conns.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# TYPE balancerd_failovers_total counter\nbalancerd_failovers_total {}",
        STATS.failovers.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# TYPE balancerd_reloads_total counter\nbalancerd_reloads_total{{result=\"ok\"}} {}\nbalancerd_reloads_total{{result=\"failed\"}} {}",
        STATS.reloads_ok.load(Relaxed),
        STATS.reloads_failed.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# TYPE balancerd_response_bytes_total counter\nbalancerd_response_bytes_total {}",
        STATS.bytes.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP balancerd_spliced_bytes_total Body bytes moved socket to socket without passing through balancerd's memory.\n# TYPE balancerd_spliced_bytes_total counter\nbalancerd_spliced_bytes_total{{direction=\"request\"}} {}\nbalancerd_spliced_bytes_total{{direction=\"response\"}} {}",
        STATS.spliced[0].load(Relaxed),
        STATS.spliced[1].load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP balancerd_member_requests_total Responses from each member, by status class.\n# TYPE balancerd_member_requests_total counter"
    );
    let mut hist = String::new();
    let mut gauges = String::new();
    for b in &snap.balancers {
        let tenant = snap
            .main
            .routes
            .iter()
            .find(|r| matches!(&r.target, crate::config::model::RouteTarget::Balancer { balancer, .. } if std::ptr::eq(&snap.balancers[*balancer], b)))
            .and_then(|r| r.tenant())
            .unwrap_or("");
        for m in &b.members {
            let s = &m.state;
            let l = format!(
                "tenant=\"{}\",balancer=\"{}\",member=\"{}\"",
                esc(tenant),
                esc(&b.full_name),
                esc(&m.name)
            );
            for (i, c) in s.peer.by_class.iter().enumerate().skip(1) {
                let _ = writeln!(
                    o,
                    "balancerd_member_requests_total{{{l},class=\"{i}xx\"}} {}",
                    c.load(Relaxed)
                );
            }
            let mut cum = 0;
            for (i, ub) in LATENCY_BUCKETS.iter().enumerate() {
                cum += s.peer.latency[i].load(Relaxed);
                let _ = writeln!(
                    hist,
                    "balancerd_upstream_latency_seconds_bucket{{{l},le=\"{ub}\"}} {cum}"
                );
            }
            cum += s.peer.latency[LATENCY_BUCKETS.len()].load(Relaxed);
            let _ = writeln!(
                hist,
                "balancerd_upstream_latency_seconds_bucket{{{l},le=\"+Inf\"}} {cum}"
            );
            let _ = writeln!(
                hist,
                "balancerd_upstream_latency_seconds_sum{{{l}}} {}",
                s.peer.latency_sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                hist,
                "balancerd_upstream_latency_seconds_count{{{l}}} {cum}"
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_usable{{{l}}} {}",
                u8::from(m.usable())
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_in_flight{{{l}}} {}",
                s.peer.busy.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_errors_total{{{l}}} {}",
                s.errors.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_health_check_failed{{{l}}} {}",
                u8::from(s.hc_failed.load(Relaxed))
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_health_checks_total{{{l},result=\"pass\"}} {}",
                s.hc_passes.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_member_health_checks_total{{{l},result=\"fail\"}} {}",
                s.hc_fails.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_upstream_connections_opened_total{{{l}}} {}",
                s.peer.pool.opened.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_upstream_connections_reused_total{{{l}}} {}",
                s.peer.pool.reused.load(Relaxed)
            );
            let _ = writeln!(
                gauges,
                "balancerd_upstream_connections_idle{{{l}}} {}",
                s.peer.pool.idle_count()
            );
        }
    }
    let _ = writeln!(
        o,
        "# TYPE balancerd_upstream_latency_seconds histogram\n{hist}# TYPE balancerd_member_usable gauge\n{gauges}"
    );
    o
}
