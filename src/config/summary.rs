//! The summary `balancerd check` prints on success: listeners, tenants, balancers with
//! their members and settings, and routes in match order, as text or JSON.

use super::model::*;
use serde_json::{Value, json};
use std::fmt::Write as _;

use super::emit::loadfactor;

fn route_target(c: &Config, r: &Route) -> String {
    match &r.target {
        RouteTarget::Exclude => "! (not proxied)".into(),
        RouteTarget::Balancer { balancer, path } => {
            let b = &c.balancers[*balancer];
            if b.implicit {
                format!(
                    "{}{}",
                    b.members
                        .first()
                        .map_or(String::new(), |m| m.url.to_string()),
                    path
                )
            } else {
                format!("balancer://{}{}", b.name, path)
            }
        }
    }
}

/// Tenants: the first path segment of each prefix route, with their route counts, in order
/// of first appearance.
pub fn tenants(c: &Config) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let all = c
        .main
        .routes
        .iter()
        .chain(c.vhosts.iter().flat_map(|v| v.rules.routes.iter()));
    for r in all.filter(|r| r.target != RouteTarget::Exclude) {
        if let Some(t) = r.tenant() {
            match out.iter_mut().find(|(n, _)| n == t) {
                Some(e) => e.1 += 1,
                None => out.push((t.to_string(), 1)),
            }
        }
    }
    out
}

fn balancer_settings(b: &Balancer) -> String {
    let p = &b.params;
    let mut s = format!("lbmethod={}", p.lbmethod.as_str());
    if let Some(st) = &p.sticky {
        if st.cookie == st.url_param {
            let _ = write!(s, " stickysession={}", st.cookie);
        } else {
            let _ = write!(s, " stickysession={}|{}", st.cookie, st.url_param);
        }
        match p.separator() {
            Some(b'.') => {}
            Some(c) => {
                let _ = write!(s, " stickysessionsep={}", c as char);
            }
            None => s.push_str(" stickysessionsep=Off"),
        }
    }
    let _ = write!(s, " maxattempts={}", b.max_attempts());
    if p.no_failover {
        s.push_str(" nofailover=On");
    }
    if p.force_recovery == Some(false) {
        s.push_str(" forcerecovery=Off");
    }
    if !p.fail_on_status.is_empty() {
        let codes: Vec<String> = p.fail_on_status.iter().map(u16::to_string).collect();
        let _ = write!(s, " failonstatus={}", codes.join(","));
    }
    if p.fail_on_timeout {
        s.push_str(" failontimeout=On");
    }
    if let Some(t) = p.timeout {
        let _ = write!(s, " timeout={}", t.as_secs());
    }
    s
}

fn member_line(m: &Member) -> String {
    let p = &m.params;
    let mut s = format!(
        "{}  route={}  status={}  lbset={}  loadfactor={}",
        m.url,
        if p.route.is_empty() { "-" } else { &p.route },
        p.status.letters(),
        p.lbset,
        loadfactor(p.loadfactor)
    );
    if p.disable_reuse {
        s.push_str("  disablereuse=On");
    }
    if let Some(t) = p.connection_timeout {
        let _ = write!(s, "  connectiontimeout={}ms", t.as_millis());
    }
    if let Some(t) = p.timeout {
        let _ = write!(s, "  timeout={}s", t.as_secs());
    }
    if p.retry.as_secs() != 60 {
        let _ = write!(s, "  retry={}s", p.retry.as_secs());
    }
    if !p.redirect.is_empty() {
        let _ = write!(s, "  redirect={}", p.redirect);
    }
    s
}

fn route_line(out: &mut String, c: &Config, n: usize, r: &Route) {
    let _ = writeln!(
        out,
        "  {n}. {} -> {}  {}",
        r.matcher.as_str(),
        route_target(c, r),
        r.origin
    );
}

/// The text summary.
pub fn text(c: &Config) -> String {
    let mut out = String::new();
    out.push_str("listeners:\n");
    if c.listeners.is_empty() {
        out.push_str("  (none: a tenant file checked on its own)\n");
    }
    for l in &c.listeners {
        let _ = writeln!(
            out,
            "  {} ({})  {}",
            l.addr,
            l.protocol.as_deref().unwrap_or("http"),
            l.origin
        );
    }
    let t = tenants(c);
    out.push_str("tenants:\n");
    if t.is_empty() {
        out.push_str("  (none)\n");
    }
    for (n, k) in &t {
        let _ = writeln!(out, "  {n} ({k} route{})", if *k == 1 { "" } else { "s" });
    }
    out.push_str("balancers:\n");
    for b in c.balancers.iter().filter(|b| !b.implicit) {
        let _ = writeln!(
            out,
            "  balancer://{}  {}  {}",
            b.name,
            balancer_settings(b),
            b.definitions[0]
        );
        for m in &b.members {
            let _ = writeln!(out, "    {}", member_line(m));
        }
        if let Some(s) = &b.backup_site {
            let _ = writeln!(
                out,
                "    no member usable: {} to {} (+{}=1; a request carrying it gets 503)  {}",
                s.status, s.url, s.marker, s.origin
            );
        }
    }
    out.push_str("routes (match order):\n");
    let mut n = 0;
    for r in &c.main.routes {
        n += 1;
        route_line(&mut out, c, n, r);
    }
    for v in &c.vhosts {
        let _ = writeln!(
            out,
            "  <VirtualHost {}> {} (main-server routes first):",
            v.addrs.join(" "),
            v.server_name.as_deref().unwrap_or("")
        );
        for r in &v.rules.routes {
            n += 1;
            route_line(&mut out, c, n, r);
        }
    }
    if !c.site_redirects.is_empty() {
        out.push_str("site redirects (before routing):\n");
        for r in &c.site_redirects {
            let _ = writeln!(
                out,
                "  {}{} -> {} {}/…?{}={}  {}",
                r.entry_host,
                if r.entry_path == "/" {
                    ""
                } else {
                    &r.entry_path
                },
                r.status,
                r.local,
                r.param,
                r.backup_host,
                r.origin
            );
        }
    }
    let locs: Vec<&LocationSection> = c
        .main
        .locations
        .iter()
        .chain(c.vhosts.iter().flat_map(|v| v.rules.locations.iter()))
        .filter(|l| l.handler.is_some())
        .collect();
    if !locs.is_empty() {
        out.push_str("handlers:\n");
        for l in locs {
            let _ = writeln!(
                out,
                "  {} -> {}{}  {}",
                l.path,
                l.handler.map_or("", Handler::as_str),
                if l.access.is_open() {
                    " (open to everyone)"
                } else {
                    " (access rules)"
                },
                l.origin
            );
        }
    }
    out
}

/// The JSON summary.
pub fn json(c: &Config) -> Value {
    let balancers: Vec<Value> = c
        .balancers
        .iter()
        .filter(|b| !b.implicit)
        .map(|b| {
            json!({
                "name": format!("balancer://{}", b.name),
                "lbmethod": b.params.lbmethod.as_str(),
                "stickysession": b.params.sticky.as_ref().map(|s| s.cookie.clone()),
                "maxattempts": b.max_attempts(),
                "nofailover": b.params.no_failover,
                "defined_at": b.definitions.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
                "members": b.members.iter().map(|m| json!({
                    "url": m.url.to_string(),
                    "route": m.params.route,
                    "status": m.params.status.letters(),
                    "lbset": m.params.lbset,
                    "loadfactor": loadfactor(m.params.loadfactor),
                    "disablereuse": m.params.disable_reuse,
                    "at": m.origin.to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let routes: Vec<Value> = c
        .main
        .routes
        .iter()
        .chain(c.vhosts.iter().flat_map(|v| v.rules.routes.iter()))
        .map(|r| json!({"match": r.matcher.as_str(), "regex": matches!(r.matcher, RouteMatch::Regex(_)), "target": route_target(c, r), "at": r.origin.to_string()}))
        .collect();
    json!({
        "listeners": c.listeners.iter().map(|l| json!({"addr": l.addr.to_string(), "protocol": l.protocol.clone().unwrap_or_else(|| "http".into()), "at": l.origin.to_string()})).collect::<Vec<_>>(),
        "tenants": tenants(c).into_iter().map(|(n, k)| json!({"name": n, "routes": k})).collect::<Vec<_>>(),
        "balancers": balancers,
        "routes": routes,
    })
}
