//! `/server-status`: httpd's status page for the Pacemaker `apache` agent and for people.
//! The HTML page ends in `</body></html>` (the agent's default check); `?auto` gives
//! httpd's machine-readable `Key: value` lines plus balancer and member lines.
//! Everything here reads counters only: it answers at once even when every member hangs.

use crate::runtime::Snapshot;
use crate::telemetry::stats::STATS;
use crate::util::html::escape_html;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

fn fmt_time(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = crate::util::clock::utc_parts(t);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

fn uptime_text(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{} days {} hours {} minutes {} seconds",
        s / 86400,
        s % 86400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn loadavg() -> (String, String, String) {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = l.split_whitespace().map(str::to_string);
    (
        it.next().unwrap_or_else(|| "0".into()),
        it.next().unwrap_or_else(|| "0".into()),
        it.next().unwrap_or_else(|| "0".into()),
    )
}

/// APR-style number: no leading zero (`.5`).
/// User and system CPU seconds of this process (`RUSAGE_SELF`) or its reaped children
/// (`RUSAGE_CHILDREN`), as httpd's `CPUUser`/`CPUSystem` keys report them.
fn cpu_seconds(who: libc::c_int) -> (f64, f64) {
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; getrusage only writes into it.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

fn apr(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let s = s
        .strip_prefix("0.")
        .map_or(s.to_string(), |r| format!(".{r}"));
    if s.is_empty() { "0".into() } else { s }
}

/// The flags shown for a member: its configured letters plus live E and C.
pub fn member_flags(m: &crate::balancer::member::MemberRt) -> String {
    let mut f = m.spec.params.status;
    if m.state.in_error.load(Relaxed) {
        f.0 |= crate::config::model::StatusFlags::IN_ERROR;
    }
    if m.state.hc_failed.load(Relaxed) {
        f.0 |= crate::config::model::StatusFlags::HC_FAILED;
    }
    let l = f.letters();
    if l == "-" { "Ok".into() } else { l }
}

/// `?auto`: httpd's key order, then balancer lines.
pub fn auto(snap: &Snapshot, host: &str) -> String {
    let up = STATS.started.elapsed();
    let secs = up.as_secs().max(1);
    let reqs = STATS.requests.load(Relaxed);
    let bytes = STATS.bytes.load(Relaxed);
    let dur_ms = STATS.duration_us.load(Relaxed) / 1000;
    let busy = STATS.in_flight.load(Relaxed).max(0) as u64;
    let conns = STATS.conns.load(Relaxed).max(0) as u64;
    let (l1, l5, l15) = loadavg();
    let mut o = String::new();
    let _ = writeln!(o, "{host}");
    let _ = writeln!(o, "ServerVersion: balancerd/{}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(o, "ServerMPM: event");
    let _ = writeln!(o, "Server Built: balancerd {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(o, "CurrentTime: {}", fmt_time(SystemTime::now()));
    let _ = writeln!(o, "RestartTime: {}", fmt_time(STATS.started_wall));
    let _ = writeln!(
        o,
        "ParentServerConfigGeneration: {}",
        STATS.generation.load(Relaxed)
    );
    let _ = writeln!(o, "ParentServerMPMGeneration: 0");
    let _ = writeln!(o, "ServerUptimeSeconds: {}", up.as_secs());
    let _ = writeln!(o, "ServerUptime: {}", uptime_text(up));
    let _ = writeln!(o, "Load1: {l1}\nLoad5: {l5}\nLoad15: {l15}");
    let _ = writeln!(o, "Total Accesses: {reqs}");
    let _ = writeln!(o, "Total kBytes: {}", bytes / 1024);
    let _ = writeln!(o, "Total Duration: {dur_ms}");
    let (user, system) = cpu_seconds(libc::RUSAGE_SELF);
    let (c_user, c_system) = cpu_seconds(libc::RUSAGE_CHILDREN);
    let _ = writeln!(o, "CPUUser: {}", apr(user));
    let _ = writeln!(o, "CPUSystem: {}", apr(system));
    let _ = writeln!(o, "CPUChildrenUser: {}", apr(c_user));
    let _ = writeln!(o, "CPUChildrenSystem: {}", apr(c_system));
    let cpu = user + system + c_user + c_system;
    if cpu > 0.0 {
        let _ = writeln!(o, "CPULoad: {}", apr(cpu * 100.0 / secs as f64));
    }
    let _ = writeln!(o, "Uptime: {}", up.as_secs());
    let _ = writeln!(o, "ReqPerSec: {}", apr(reqs as f64 / secs as f64));
    let _ = writeln!(o, "BytesPerSec: {}", apr(bytes as f64 / secs as f64));
    if reqs > 0 {
        let _ = writeln!(o, "BytesPerReq: {}", apr(bytes as f64 / reqs as f64));
        let _ = writeln!(o, "DurationPerReq: {}", apr(dur_ms as f64 / reqs as f64));
    }
    let _ = writeln!(o, "BusyWorkers: {busy}");
    let _ = writeln!(o, "GracefulWorkers: 0");
    let _ = writeln!(o, "IdleWorkers: {}", conns.saturating_sub(busy));
    let _ = writeln!(o, "Processes: 1\nStopping: 0");
    let _ = writeln!(o, "ConnsTotal: {conns}");
    let _ = writeln!(o, "ConnsAsyncWaitIO: 0");
    let _ = writeln!(
        o,
        "ConnsAsyncWriting: 0\nConnsAsyncKeepAlive: {}\nConnsAsyncClosing: 0",
        conns.saturating_sub(busy)
    );
    let sb: String = std::iter::repeat_n('W', busy.min(256) as usize)
        .chain(std::iter::repeat_n(
            '_',
            conns.saturating_sub(busy).min(256) as usize,
        ))
        .collect();
    let _ = writeln!(
        o,
        "Scoreboard: {}",
        if sb.is_empty() { "_".into() } else { sb }
    );
    let r = STATS
        .last_reload
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    if r.at.is_some() {
        let _ = writeln!(o, "LastReload: {}", if r.ok { "ok" } else { "failed" });
    }
    for (i, b) in snap.balancers.iter().enumerate() {
        let _ = writeln!(o, "ProxyBalancer[{i}]Name: {}", b.full_name);
        for (j, m) in b.members.iter().enumerate() {
            let s = &m.state;
            let _ = writeln!(o, "ProxyBalancer[{i}]Worker[{j}]Name: {}", m.name);
            let _ = writeln!(
                o,
                "ProxyBalancer[{i}]Worker[{j}]Status: {}",
                member_flags(m)
            );
            let _ = writeln!(o, "ProxyBalancer[{i}]Worker[{j}]Route: {}", m.route);
            let _ = writeln!(
                o,
                "ProxyBalancer[{i}]Worker[{j}]Elected: {}",
                s.elected.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "ProxyBalancer[{i}]Worker[{j}]Busy: {}",
                s.peer.busy.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "ProxyBalancer[{i}]Worker[{j}]Errors: {}",
                s.errors.load(Relaxed)
            );
        }
    }
    o
}

/// The HTML page.
pub fn html(snap: &Snapshot, host: &str) -> String {
    let up = STATS.started.elapsed();
    let reqs = STATS.requests.load(Relaxed);
    let mut o = String::new();
    let h = escape_html(host);
    let _ = write!(
        o,
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html><head>\n<title>Apache Status</title>\n</head><body>\n<h1>Apache Server Status for {h} (via balancerd)</h1>\n\n<dl><dt>Server Version: balancerd/{}</dt>\n<dt>Current Time: {}</dt>\n<dt>Restart Time: {}</dt>\n<dt>Server uptime: {}</dt>\n<dt>Total accesses: {reqs} - Total Traffic: {} kB</dt>\n<dt>{} requests currently being processed, {} open client connections</dt>\n<dt>Config generation {}</dt>\n",
        env!("CARGO_PKG_VERSION"),
        fmt_time(SystemTime::now()),
        fmt_time(STATS.started_wall),
        uptime_text(up),
        STATS.bytes.load(Relaxed) / 1024,
        STATS.in_flight.load(Relaxed).max(0),
        STATS.conns.load(Relaxed).max(0),
        STATS.generation.load(Relaxed),
    );
    let r = STATS
        .last_reload
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    if let Some(at) = r.at {
        let _ = writeln!(
            o,
            "<dt>Last reload: {} at {}: <pre>{}</pre></dt>",
            if r.ok {
                "ok"
            } else {
                "FAILED, previous config kept"
            },
            fmt_time(at),
            escape_html(&r.detail)
        );
    }
    o.push_str("</dl>\n");
    for b in &snap.balancers {
        let _ = writeln!(
            o,
            "<h3>{}</h3>\n<table border=\"1\"><tr><th>StickySession</th><th>Method</th><th>FailoverAttempts</th><th>DisableFailover</th></tr>\n<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            escape_html(&b.full_name),
            b.params
                .sticky
                .as_ref()
                .map_or("(None)".to_string(), |s| escape_html(&s.cookie)),
            b.params.lbmethod.as_str(),
            b.max_attempts,
            if b.params.no_failover { "On" } else { "Off" }
        );
        o.push_str("<table border=\"1\"><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Errors</th><th>Retry in</th><th>HC</th><th>To</th><th>From</th></tr>\n");
        for m in &b.members {
            let s = &m.state;
            let hc = if m.spec.params.hc.method == "None" {
                "-".to_string()
            } else if s.hc_failed.load(Relaxed) {
                "failing".to_string()
            } else {
                "ok".to_string()
            };
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&m.name),
                escape_html(&m.route),
                escape_html(&m.spec.params.redirect),
                m.spec.params.loadfactor as f64 / 100.0,
                m.spec.params.lbset,
                member_flags(m),
                s.elected.load(Relaxed),
                s.peer.busy.load(Relaxed),
                s.errors.load(Relaxed),
                m.retry_in()
                    .map_or("-".to_string(), |d| format!("{}s", d.as_secs())),
                hc,
                s.peer.transferred.load(Relaxed),
                s.peer.read.load(Relaxed),
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("<hr />\n<address>balancerd</address>\n</body></html>\n");
    o
}
