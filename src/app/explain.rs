//! `balancerd explain --config FILE METHOD URL [-H 'Name: value']… [--live]`: loads the
//! config into a private snapshot (no listener, no log file, no certificate read), lays the
//! running instance's member states over it with `--live` (its admin socket's `status`),
//! and prints what [`crate::proxy::explain`] finds, as text or JSON.
//!
//! May import: every layer.

use crate::config::model::{Config, LbMethod, StatusFlags};
use crate::config::{LoadOptions, params};
use crate::proxy::explain::{Question, explain};
use crate::runtime::Snapshot;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// What the command line asked.
pub struct ExplainArgs {
    /// The method.
    pub method: String,
    /// A path or an absolute URL.
    pub url: String,
    /// `-H 'Name: value'`.
    pub headers: Vec<String>,
    /// The client address (default 127.0.0.1).
    pub client: Option<String>,
    /// As if over TLS.
    pub tls: bool,
    /// Ask the running instance for its member states.
    pub live: bool,
    /// The admin socket (default: PidFile + `.ctl`).
    pub socket: Option<PathBuf>,
    /// JSON instead of text.
    pub json: bool,
}

/// Runs `explain`; returns the exit code (0 explained, 1 config or live-state errors, 2 usage).
pub fn run(path: &Path, opts: &LoadOptions, a: &ExplainArgs) -> i32 {
    let Some(config) = super::load_or_report(path, opts) else {
        eprintln!(
            "balancerd explain: {}: the config has errors",
            path.display()
        );
        return 1;
    };
    let Ok(method) = http::Method::from_bytes(a.method.as_bytes()) else {
        eprintln!("balancerd explain: '{}' is not a method", a.method);
        return 2;
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else {
            eprintln!("balancerd explain: -H '{h}': expected 'Name: value'");
            return 2;
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let client: SocketAddr = match a.client.as_deref() {
        None => SocketAddr::from(([127, 0, 0, 1], 40000)),
        Some(c) => match c.parse::<SocketAddr>().or_else(|_| {
            c.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 40000))
        }) {
            Ok(s) => s,
            Err(_) => {
                eprintln!("balancerd explain: --client '{c}' is not an address");
                return 2;
            }
        },
    };
    let live = if a.live {
        let socket = match (&a.socket, &config.server.pid_file) {
            (Some(s), _) => s.clone(),
            (None, Some(pid)) => super::ctl::socket_path(pid),
            (None, None) => {
                eprintln!(
                    "balancerd explain --live: {} sets no PidFile, so the admin socket cannot be found; give --socket",
                    path.display()
                );
                return 1;
            }
        };
        match super::ctl::ask(&socket, &serde_json::json!({ "cmd": "status" })) {
            Ok(v) if v["ok"] == serde_json::Value::Bool(true) => Some(v["state"].clone()),
            Ok(v) => {
                eprintln!(
                    "balancerd explain --live: {}",
                    v["error"].as_str().unwrap_or("refused")
                );
                return 1;
            }
            Err(e) => {
                eprintln!("balancerd explain --live: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let mut config = private(config);
    if let Some(state) = &live {
        lay_over_config(&mut config, state);
    }
    let snap = match Snapshot::build(config.clone(), None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("balancerd explain: {e}");
            return 1;
        }
    };
    if let Some(state) = &live {
        lay_over_states(&snap, state);
    }
    let port = config.listeners.first().map_or(80, |l| l.addr.port());
    let absolute = a.url.contains("://");
    if !absolute && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        // An HTTP/1.1 request needs a Host: the server's own name stands in.
        headers.push(("Host".into(), snap.server_name.to_string()));
    }
    let q = Question {
        method,
        target: a.url.clone(),
        headers,
        client,
        port,
        tls: a.tls,
    };
    let ex = explain(&config, &snap, &q);
    if a.json {
        let mut v = serde_json::to_value(&ex).unwrap_or_default();
        v["live"] = serde_json::Value::Bool(live.is_some());
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if live.is_some() {
            println!("(member states of the running instance)");
        } else {
            println!(
                "(member states as configured, with the changes kept in <PidFile>.state; --live asks the running instance)"
            );
        }
        print!("{}", ex.text());
    }
    0
}

/// The config without what would touch the machine when a snapshot is built: access logs
/// (opened for writing), certificates and CA files (read, and maybe unreadable for the
/// user running `explain`). None of them changes a routing decision.
fn private(mut c: Config) -> Config {
    c.main.access_logs.clear();
    c.main.tls = None;
    for v in &mut c.vhosts {
        v.rules.access_logs.clear();
        v.rules.tls = None;
    }
    for l in &mut c.listeners {
        l.tls.clear();
    }
    c.upstream_tls.engine = false;
    c
}

/// The running instance's balancer settings and member flags, laid over the config (its
/// runtime changes are in them).
fn lay_over_config(c: &mut Config, state: &serde_json::Value) {
    let Some(list) = state["balancers"].as_array() else {
        return;
    };
    for bv in list {
        let Some(name) = bv["name"].as_str() else {
            continue;
        };
        let short = name.strip_prefix("balancer://").unwrap_or(name);
        let Some(b) = c.balancers.iter_mut().find(|b| b.name == short) else {
            continue;
        };
        if let Some(m) = bv["lbmethod"].as_str() {
            b.params.lbmethod = match m {
                "bybusyness" => LbMethod::ByBusyness,
                "bytraffic" => LbMethod::ByTraffic,
                _ => LbMethod::ByRequests,
            };
        }
        if let Some(n) = bv["maxattempts"].as_u64() {
            b.params.max_attempts = Some(n as u32);
        }
        if let Some(n) = bv["nofailover"].as_bool() {
            b.params.no_failover = n;
        }
        for mv in bv["members"].as_array().into_iter().flatten() {
            let Some(url) = mv["url"].as_str() else {
                continue;
            };
            let Some(m) = b.members.iter_mut().find(|m| m.url.to_string() == url) else {
                continue;
            };
            let p = &mut m.params;
            if let Some(s) = mv["status"].as_str() {
                // Runtime letters E and C go to the live state, not the flags.
                let letters: String = if s == "Ok" {
                    String::new()
                } else {
                    s.chars().filter(|c| !matches!(c, 'E' | 'C')).collect()
                };
                let mut f = StatusFlags::default();
                if params::apply_status(&mut f, &format!("+{letters}")).is_ok() {
                    p.status = f;
                }
            }
            if let Some(x) = mv["factor"].as_f64() {
                p.loadfactor = (x * 100.0).round() as u32;
            }
            if let Some(x) = mv["lbset"].as_u64() {
                p.lbset = x as u8;
            }
            if let Some(x) = mv["route"].as_str() {
                p.route = x.to_string();
            }
            if let Some(x) = mv["redirect"].as_str() {
                p.redirect = x.to_string();
            }
        }
    }
}

/// The running instance's member counters and error states, laid over a snapshot.
fn lay_over_states(snap: &Snapshot, state: &serde_json::Value) {
    for bv in state["balancers"].as_array().into_iter().flatten() {
        let Some(b) = snap
            .balancers
            .iter()
            .find(|b| Some(&*b.full_name) == bv["name"].as_str())
        else {
            continue;
        };
        for mv in bv["members"].as_array().into_iter().flatten() {
            let Some(m) = b
                .members
                .iter()
                .find(|m| Some(&*m.name) == mv["url"].as_str())
            else {
                continue;
            };
            let s = &m.state;
            let status = mv["status"].as_str().unwrap_or("");
            if status != "Ok" && status.contains('E') {
                s.in_error.store(true, Relaxed);
                // The error was recorded `retry - retry_in` ago.
                let retry = m.spec.params.retry.as_millis() as u64;
                let left = mv["retry_in_ms"].as_u64().unwrap_or(retry).min(retry);
                let now = crate::util::clock::coarse_ms();
                s.error_time
                    .store(now.saturating_sub(retry - left), Relaxed);
            }
            if status != "Ok" && status.contains('C') {
                s.hc_failed.store(true, Relaxed);
            }
            if let Some(x) = mv["lbstatus"].as_i64() {
                s.lbstatus.store(x, Relaxed);
            }
            if let Some(x) = mv["elected"].as_u64() {
                s.elected.store(x, Relaxed);
            }
            if let Some(x) = mv["busy"].as_u64() {
                s.peer.busy.store(x as _, Relaxed);
            }
        }
    }
}
