//! Active health checks (mod_proxy_hcheck's parameters): a watchdog wakes every 100 ms and
//! checks each member whose `hcinterval` has elapsed, never more than one check in flight
//! per member. `hcfails` consecutive failures set the C flag (the member is skipped before
//! any user request finds it dead); `hcpasses` consecutive passes clear C and E.
//!
//! The check: `TCP` connects; `OPTIONS` sends `OPTIONS *`; `HEAD`/`GET` send the member
//! path followed by `hcuri`, with `Host: host:port`. HTTP checks go through the member client
//! (`upstream::connect` and `upstream::exchange`), so an `https://` member is checked over TLS
//! with the same verification as requests. A check passes on 2xx/3xx, or as the member's
//! `hcexpr` says (compiled when the config was read: `config::hcexpr`).
//!
//! Invariants: at most one check in flight per member (`hc_running`); a check never marks a
//! member from a request's failure, only from its own streak of results.

use crate::balancer::member::MemberRt;
use crate::runtime::Shared;
use crate::util::clock::coarse_ms;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Runs the health checks of the current snapshot until aborted.
pub async fn run(shared: Shared) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let snap = shared.load_full();
        for (bi, b) in snap.balancers.iter().enumerate() {
            for (mi, m) in b.members.iter().enumerate() {
                let hc = &m.spec.params.hc;
                if hc.method.eq_ignore_ascii_case("none") {
                    continue;
                }
                let st = &m.state;
                if coarse_ms() < st.hc_next.load(Relaxed) || st.hc_running.swap(true, Relaxed) {
                    continue;
                }
                st.hc_next
                    .store(coarse_ms() + hc.interval.as_millis() as u64, Relaxed);
                let snap = snap.clone();
                tokio::spawn(async move {
                    let m = &snap.balancers[bi].members[mi];
                    let ok = check(m, snap.upstream_tls.as_ref()).await;
                    apply(m, ok);
                    m.state.hc_running.store(false, Relaxed);
                });
            }
        }
    }
}

fn apply(m: &MemberRt, ok: Result<u16, String>) {
    let hc = &m.spec.params.hc;
    let st = &m.state;
    match ok {
        Ok(_) => {
            st.hc_passes.fetch_add(1, Relaxed);
            let streak = st.hc_streak.load(Relaxed).max(0) + 1;
            st.hc_streak.store(streak, Relaxed);
            if streak >= i64::from(hc.passes)
                && (st.hc_failed.load(Relaxed) || st.in_error.load(Relaxed))
            {
                st.hc_failed.store(false, Relaxed);
                st.in_error.store(false, Relaxed);
                tracing::info!(member = %m.name, "health check passed {streak} time(s): member back in use");
            }
        }
        Err(why) => {
            st.hc_fails.fetch_add(1, Relaxed);
            let streak = st.hc_streak.load(Relaxed).min(0) - 1;
            st.hc_streak.store(streak, Relaxed);
            if -streak >= i64::from(hc.fails) && !st.hc_failed.swap(true, Relaxed) {
                st.peer.pool.clear();
                tracing::error!(member = %m.name, "health check failed {} time(s): {why}; member set to C (not used)", -streak);
            }
        }
    }
}

async fn check(
    m: &MemberRt,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<u16, String> {
    let p = &m.spec.params;
    let url = &m.spec.url;
    let timeout = p
        .connection_timeout
        .unwrap_or(p.hc.interval)
        .min(Duration::from_secs(10));
    let method = p.hc.method.to_ascii_uppercase();
    let fut = async {
        if method == "TCP" {
            // httpd's TCP check: the socket connects (no TLS, no request).
            let addr = crate::upstream::connect::resolve_one(&url.host, url.port)
                .await
                .map_err(|e| e.to_string())?;
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            return Ok::<u16, String>(200);
        }
        let (verb, v11) = match method.strip_suffix("11") {
            Some(v) => (v.to_string(), true),
            None => (method.clone(), false),
        };
        let target = if verb == "OPTIONS" {
            "*".to_string()
        } else {
            let base = if url.path.is_empty() {
                "/".to_string()
            } else {
                url.path.clone()
            };
            match &p.hc.uri {
                Some(u) if url.path.is_empty() => u.clone(),
                Some(u) => format!(
                    "{base}{}{u}",
                    if base.ends_with('/') || u.starts_with('/') {
                        ""
                    } else {
                        "/"
                    }
                ),
                None => base,
            }
        };
        let head = format!(
            "{verb} {target} HTTP/1.{}\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: balancerd-hcheck\r\n\r\n",
            if v11 { 1 } else { 0 },
            url.host,
            url.port
        );
        // The member client: TCP, TLS for https:// members (verified as for requests), the
        // one head writer's bytes out and the one head parser's answer back.
        let mut conn = crate::upstream::connect::connect_member(&m.spec, timeout, tls)
            .await
            .map_err(|e| e.to_string())?;
        let mut body = crate::upstream::body::UpBody::Empty;
        let (resp, _) = crate::upstream::exchange::exchange(
            &mut conn,
            head.as_bytes(),
            &mut body,
            crate::h1::framing::BodyFraming::None,
            verb == "HEAD",
            None,
        )
        .await
        .map_err(|e| format!("{verb} {target}: {}", e.detail))?;
        Ok(resp.status.as_u16())
    };
    let status = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("timed out after {timeout:?}"))??;
    // hcexpr was compiled (and its name resolved) when the config was read.
    let passes = match &p.hc.check {
        Some(e) => e.passes(status),
        None => crate::config::hcexpr::default_passes(status),
    };
    if passes {
        Ok(status)
    } else {
        Err(format!("status {status}"))
    }
}
