//! `balancerd explain`: what the request path would do with one request, told phase by phase
//! from the same code the request path runs. The server by `Host`, the `RewriteRule`s that
//! applied, the `ProxyPass` that matched (or why none did), the `<Location>`s and their
//! access rules, the balancer, where the sticky route was found (or why not), each member's
//! eligibility, the member [`BalancerRt::pick`] chooses, and the request head that member
//! would receive ([`super::forward::build_request`]).
//!
//! Nothing here touches the network: the snapshot it reads is the caller's own (a private
//! one built from the config, with the live member states laid over it for `--live`), so
//! `pick` moving its counters changes nothing anyone serves.
//!
//! May import: every layer below `proxy`, and the phases of `proxy` it retells.

use super::handler::ConnInfo;
use super::routing::{Plan, location_matches, prepare};
use crate::balancer::member::MemberRt;
use crate::balancer::{BalancerRt, Pick, sticky};
use crate::config::model::{Config, LocationSection, Route, RouteMatch, RouteTarget, StatusFlags};
use crate::h1::fields::FieldsView;
use crate::runtime::{HostRt, Snapshot};
use crate::upstream::body::UpBody;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// The request to explain.
#[derive(Debug, Clone)]
pub struct Question {
    /// The method (`GET`).
    pub method: http::Method,
    /// The target: a path (`/t1/api/x?a=1`) or an absolute URL (its authority is the Host).
    pub target: String,
    /// Header fields as `-H` gave them.
    pub headers: Vec<(String, String)>,
    /// The client's address (access rules, `X-Forwarded-For`).
    pub client: SocketAddr,
    /// The port the request arrives on.
    pub port: u16,
    /// Over TLS (`HTTPS` in rewrite conditions, `X-Forwarded-Proto`-style rules).
    pub tls: bool,
}

/// One `ProxyPass` looked at, in match order.
#[derive(Debug, Serialize)]
pub struct RouteLook {
    /// 1-based position in the server's match order.
    pub n: usize,
    /// `ProxyPass` or `ProxyPassMatch`, with `<Location>` when written inside one.
    pub kind: String,
    /// The pattern as written.
    pub pattern: String,
    /// The target as written.
    pub target: String,
    /// file:line.
    pub at: String,
    /// `matched`, `excluded (!)` or `no match`.
    pub result: String,
}

/// One `RewriteRule` whose pattern and conditions held.
#[derive(Debug, Serialize)]
pub struct RewriteLook {
    /// The pattern as written.
    pub pattern: String,
    /// file:line.
    pub at: String,
}

/// A `<Location>` the path is in.
#[derive(Debug, Serialize)]
pub struct LocationLook {
    /// Its path or regex.
    pub path: String,
    /// file:line.
    pub at: String,
    /// Its built-in handler, if any.
    pub handler: Option<String>,
    /// `open`, `allowed` or `denied` for the client.
    pub access: String,
}

/// Where the sticky route came from.
#[derive(Debug, Serialize)]
pub struct StickyLook {
    /// `stickysession=` as configured (`ROUTEID`, `JSESSIONID|jsessionid`).
    pub configured: String,
    /// `cookie`, `URL parameter` or `path parameter` when a value was found.
    pub source: Option<String>,
    /// The cookie or parameter name the value came from.
    pub name: Option<String>,
    /// The value as sent.
    pub value: Option<String>,
    /// The route: the text after the separator.
    pub route: Option<String>,
    /// Why there is no route, when there is none.
    pub why_not: Option<String>,
}

/// One member's eligibility.
#[derive(Debug, Serialize)]
pub struct MemberLook {
    /// The member URL.
    pub url: String,
    /// `route=`.
    pub route: String,
    /// Status letters (`Ok`, `N`, `DE`…), the live ones with `--live`.
    pub status: String,
    /// `lbset` tier.
    pub lbset: u8,
    /// `loadfactor`.
    pub factor: f64,
    /// The lbmethod's counter (byrequests/bytraffic lbstatus, bybusyness busy).
    pub lbstatus: i64,
    /// Requests in flight.
    pub busy: u64,
    /// Times chosen.
    pub elected: u64,
    /// Can take a new request now (none of D, S, E, C).
    pub usable: bool,
    /// In words: why it can or cannot be chosen for this request.
    pub why: String,
    /// The member chosen.
    pub chosen: bool,
}

/// Everything `explain` found.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// `GET /t1/api/x HTTP/1.1`.
    pub request: String,
    /// The Host the server was chosen by.
    pub host: Option<String>,
    /// `main server` or `<VirtualHost …> name at file:line`.
    pub server: String,
    /// The normalised path routing saw (after rewriting).
    pub path: Option<String>,
    /// `RewriteRule`s that applied, in order.
    pub rewrites: Vec<RewriteLook>,
    /// The `ProxyPass` rules looked at, up to the one that matched.
    pub routes: Vec<RouteLook>,
    /// `<Location>` sections the path is in.
    pub locations: Vec<LocationLook>,
    /// `balancer://name` and its settings, when the request is proxied.
    pub balancer: Option<String>,
    /// The sticky route's origin, when the balancer is sticky.
    pub sticky: Option<StickyLook>,
    /// The members, in config order.
    pub members: Vec<MemberLook>,
    /// The member chosen and why, or why none.
    pub decision: String,
    /// The answer when balancerd answers itself (status and why).
    pub answer: Option<String>,
    /// The request head the chosen member would receive.
    pub member_request: Option<String>,
}

/// Explains `q` on `snap` (built from `config`).
pub fn explain(config: &Config, snap: &Snapshot, q: &Question) -> Explanation {
    let mut builder = http::Request::builder()
        .method(q.method.clone())
        .uri(q.target.as_str());
    for (k, v) in &q.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let mut ex = Explanation {
        request: format!("{} {} HTTP/1.1", q.method, q.target),
        host: None,
        server: "main server".into(),
        path: None,
        rewrites: Vec::new(),
        routes: Vec::new(),
        locations: Vec::new(),
        balancer: None,
        sticky: None,
        members: Vec::new(),
        decision: String::new(),
        answer: None,
        member_request: None,
    };
    let mut parts = match builder.body(()) {
        Ok(r) => r.into_parts().0,
        Err(e) => {
            ex.answer = Some(format!("400: the request cannot be built: {e}"));
            ex.decision = "not proxied".into();
            return ex;
        }
    };
    let host_field = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    ex.host = host_field.clone();
    let host = snap.host_for(host_field.as_deref());
    ex.server = server_words(config, snap, host);

    // Everything the phases before the member choice can tell.
    let normalised =
        crate::route::normalize_with(parts.uri.path(), snap.server.allow_encoded_slashes)
            .ok()
            .map(|c| c.into_owned());
    let mut routing_path = normalised.clone();
    if let Some(path) = &normalised
        && !host.rewrite.is_empty()
    {
        let facts = super::rewrite_engine::RequestFacts {
            fields: FieldsView::Map(&parts.headers),
            parts: &parts,
            tls: q.tls,
            peer: q.client,
            local_port: q.port,
            server_name: host.server_name.as_deref().unwrap_or(&snap.server_name),
            canonical: super::routing::canonical_name(snap, host),
        };
        let mut applied = Vec::new();
        let (out, _) =
            super::rewrite_engine::run_traced(&host.rewrite, path, &facts, Some(&mut applied));
        for i in applied {
            let r = &host.rewrite[i];
            ex.rewrites.push(RewriteLook {
                pattern: format!("{}{}", if r.negate { "!" } else { "" }, r.pattern.as_str()),
                at: r.origin.to_string(),
            });
        }
        if let super::rewrite_engine::Outcome::NewPath(p, _) = out {
            routing_path = Some(p);
        }
    }
    ex.path = routing_path.clone();
    if let Some(path) = &routing_path {
        for (i, r) in host.routes.iter().enumerate() {
            let hit = route_matches(r, path);
            let result = match (hit, &r.target) {
                (true, RouteTarget::Exclude) => "excluded (!): not proxied",
                (true, _) => "matched",
                (false, _) => "no match",
            };
            ex.routes.push(RouteLook {
                n: i + 1,
                kind: format!(
                    "{}{}",
                    match r.matcher {
                        RouteMatch::Prefix(_) => "ProxyPass",
                        RouteMatch::Regex(_) => "ProxyPassMatch",
                    },
                    if r.in_location { " in <Location>" } else { "" }
                ),
                pattern: r.matcher.as_str().to_string(),
                target: r.target_text.clone(),
                at: r.origin.to_string(),
                result: result.into(),
            });
            if hit {
                break;
            }
        }
        let ip = q.client.ip();
        for l in host.locations.iter().filter(|l| location_matches(l, path)) {
            ex.locations.push(location_look(l, ip));
        }
    }

    let conn = ConnInfo::h1(q.client)
        .on_port(q.port)
        .over_tls(q.tls.then_some(("TLSv1.3", "TLS_AES_128_GCM_SHA256")));
    conn.requests.store(1, Relaxed);
    let mut raw = None;
    let started = Instant::now();
    let plan = match prepare(&mut parts, &mut raw, &conn, snap, started) {
        Ok(plan) => plan,
        Err(resp) => {
            ex.answer = Some(answer_words(&ex, resp.status(), resp.headers()));
            ex.decision = "not proxied: balancerd answers the request itself".into();
            return ex;
        }
    };
    if plan.route.in_location || !ex.routes.iter().any(|r| r.result == "matched") {
        // A `[P]` rewrite or a `<Location>`'s ProxyPass: name the route the plan took.
        let r = plan.route;
        ex.routes.push(RouteLook {
            n: 0,
            kind: if r.in_location {
                "ProxyPass in <Location>".into()
            } else {
                "RewriteRule [P]".into()
            },
            pattern: r.matcher.as_str().to_string(),
            target: r.target_text.clone(),
            at: r.origin.to_string(),
            result: "matched".into(),
        });
    }
    let b = plan.balancer;
    ex.balancer = Some(balancer_words(b));
    choose(&mut ex, &plan, &parts, snap, &conn, started);
    ex
}

/// True when `r` matches `path` by the route matcher's own rule.
fn route_matches(r: &Route, path: &str) -> bool {
    match &r.matcher {
        RouteMatch::Prefix(p) => crate::route::prefix_match(p, path).is_some(),
        RouteMatch::Regex(re) => re.is_match(path),
    }
}

fn server_words(config: &Config, snap: &Snapshot, host: &HostRt) -> String {
    match snap.vhosts.iter().position(|v| std::ptr::eq(&v.host, host)) {
        Some(i) => {
            let v = config.vhosts.get(i);
            format!(
                "<VirtualHost {}> {} at {}{}",
                v.map_or(String::new(), |v| v.addrs.join(" ")),
                v.and_then(|v| v.server_name.as_deref())
                    .unwrap_or("(no ServerName)"),
                v.map_or(String::new(), |v| v.origin.to_string()),
                if i == 0 && !snap.vhosts[0].names.is_empty() {
                    " (the first virtual host: it also takes every Host no other one names)"
                } else {
                    ""
                }
            )
        }
        None => "main server".into(),
    }
}

fn location_look(l: &LocationSection, ip: std::net::IpAddr) -> LocationLook {
    LocationLook {
        path: l.path.clone(),
        at: l.origin.to_string(),
        handler: l.handler.map(|h| h.as_str().to_string()),
        access: if l.access.is_open() {
            "open".into()
        } else if super::access::allowed(&l.access, ip) {
            format!("allowed for {ip}")
        } else {
            format!("denied for {ip}")
        },
    }
}

fn answer_words(ex: &Explanation, status: http::StatusCode, h: &http::HeaderMap) -> String {
    let code = status.as_u16();
    let mut why = match code {
        301..=308 => format!(
            "redirect to {}",
            h.get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
        ),
        403 if ex.locations.iter().any(|l| l.access.starts_with("denied")) => {
            "refused by the access rules of the <Location> above".into()
        }
        403 => "refused (access rules of the balancer's <Proxy> section, a [F] rewrite, or control characters in the query)".into(),
        400 => "the request is malformed".into(),
        405 => "TRACE is off (TraceEnable Off)".into(),
        410 => "gone ([G] rewrite or Redirect gone)".into(),
        404 if ex.path.is_none() => "the path cannot be normalised (an encoded slash under AllowEncodedSlashes Off)".into(),
        _ => String::new(),
    };
    if why.is_empty() {
        why = match ex
            .locations
            .iter()
            .rev()
            .find_map(|l| l.handler.as_ref().map(|h| (h, &l.at)))
        {
            Some((h, at)) => format!("built-in handler {h} (SetHandler at {at})"),
            None if !ex.routes.iter().any(|r| r.result == "matched") => {
                if ex.routes.iter().any(|r| r.result.starts_with("excluded")) {
                    "an excluding ProxyPass (!) matched: not proxied, nothing else serves it".into()
                } else {
                    "no ProxyPass matched and nothing else serves the path".into()
                }
            }
            None => "answered before a member is chosen".into(),
        };
    }
    format!(
        "{} {}: {why}",
        code,
        status.canonical_reason().unwrap_or("")
    )
}

fn balancer_words(b: &BalancerRt) -> String {
    let p = &b.params;
    let mut s = format!("{}  lbmethod={}", b.full_name, p.lbmethod.as_str());
    if let Some(st) = &p.sticky {
        if st.cookie == st.url_param {
            let _ = write!(s, " stickysession={}", st.cookie);
        } else {
            let _ = write!(s, " stickysession={}|{}", st.cookie, st.url_param);
        }
    }
    let _ = write!(s, " maxattempts={}", b.max_attempts);
    if p.no_failover {
        s.push_str(" nofailover=On");
    }
    if let Some(t) = p.timeout {
        let _ = write!(s, " timeout={}s", t.as_secs());
    }
    s
}

/// Phase 4 (choose) told, then phase 6's request head for the member chosen.
fn choose(
    ex: &mut Explanation,
    plan: &Plan<'_>,
    parts: &http::request::Parts,
    snap: &Snapshot,
    conn: &ConnInfo,
    started: Instant,
) {
    let b = plan.balancer;
    let fwd_path = plan.fwd_path.as_str();
    let query = if plan.route.noquery {
        None
    } else if let Some(q) = plan.rewrite.as_ref().and_then(|r| r.query.as_ref()) {
        q.as_deref()
    } else {
        parts.uri.query()
    };
    let cookies: Vec<&str> = parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = b.params.sticky.as_ref().and_then(|s| {
        sticky::session_route(
            s,
            b.params.separator(),
            b.params.scolon_path_delim,
            fwd_path,
            query,
            cookies.iter().copied(),
        )
    });
    if let Some(s) = &b.params.sticky {
        ex.sticky = Some(sticky_look(
            b,
            s,
            fwd_path,
            query,
            &cookies,
            session.map(|s| s.route),
        ));
    }
    // The counters as they stand before this request moves them.
    let before: Vec<(i64, u64)> = b
        .members
        .iter()
        .map(|m| {
            (
                m.state.lbstatus.load(Relaxed),
                m.state.elected.load(Relaxed),
            )
        })
        .collect();
    let pick = b.pick(session.map(|s| s.route));
    let chosen = match pick {
        Pick::Member { index, .. } => Some(index),
        _ => None,
    };
    let chosen_lbset = chosen.map(|i| b.members[i].spec.params.lbset);
    for (i, m) in b.members.iter().enumerate() {
        let mut look = member_look(m, chosen == Some(i), chosen_lbset, session.map(|s| s.route));
        (look.lbstatus, look.elected) = before[i];
        ex.members.push(look);
    }
    ex.decision = match pick {
        Pick::Member {
            index,
            sticky_hit,
            route_changed,
        } => {
            let m = &b.members[index];
            if sticky_hit && !route_changed {
                format!("{} (its route '{}' is the session's)", m.name, m.route)
            } else if sticky_hit {
                format!(
                    "{} (the session's route '{}' is unusable; its redirect= names '{}')",
                    m.name,
                    session.map_or("", |s| s.route),
                    m.route
                )
            } else {
                let why = match session {
                    Some(s) => format!(
                        "no usable member has the session's route '{}', so the lbmethod chose",
                        s.route
                    ),
                    None => "the lbmethod chose".into(),
                };
                format!(
                    "{} ({why}: {} in lbset tier {}{})",
                    m.name,
                    b.params.lbmethod.as_str(),
                    m.spec.params.lbset,
                    if m.is_standby() {
                        ", as a hot standby"
                    } else if m.is_spare() {
                        ", as a hot spare"
                    } else {
                        ""
                    }
                )
            }
        }
        Pick::NoFailover => format!(
            "none: 503 (nofailover=On and the member with the session's route '{}' cannot serve)",
            session.map_or("", |s| s.route)
        ),
        Pick::NoMember => {
            let mut s = "none usable: 503 (after the balancer's timeout, if set)".to_string();
            if let Some(t) = b.retry_after() {
                let _ = write!(
                    s,
                    "; the first member becomes eligible again in {}s",
                    t.as_secs()
                );
            }
            s
        }
    };
    let Some(index) = chosen else {
        return;
    };
    let m = &b.members[index];
    // An AJP member gets the head as an AJP13 packet; show its HTTP form.
    let http_form;
    let target: &MemberRt = if m.spec.url.is_ajp() {
        let mut spec = m.spec.clone();
        spec.url.scheme = "http".into();
        http_form = MemberRt::new(spec, Some(m.state.clone()));
        &http_form
    } else {
        m
    };
    let cx = plan.ctx(FieldsView::Map(&parts.headers), snap, conn, started);
    let wants_upgrade =
        plan.client_upgrade.is_some() && super::forward::upgrade_allowed(plan.route, m, cx.req);
    ex.member_request = Some(
        match super::forward::build_request(
            &cx,
            parts,
            target,
            fwd_path,
            query,
            wants_upgrade,
            &UpBody::Empty,
        ) {
            Ok(r) => {
                let mut text = String::from_utf8_lossy(&r.head)
                    .trim_end()
                    .replace("\r\n", "\n");
                text.push('\n');
                if m.spec.url.is_ajp() {
                    text.push_str("(sent to this ajp:// member as an AJP13 forward-request)\n");
                }
                text
            }
            Err(resp) => format!("(not sent: {})\n", resp.status()),
        },
    );
}

fn sticky_look(
    b: &BalancerRt,
    s: &crate::config::model::StickySession,
    path: &str,
    query: Option<&str>,
    cookies: &[&str],
    route: Option<&str>,
) -> StickyLook {
    let scolon = b.params.scolon_path_delim;
    let configured = if s.cookie == s.url_param {
        s.cookie.to_string()
    } else {
        format!("{}|{}", s.cookie, s.url_param)
    };
    let (source, name, value) = if let Some(v) = sticky::url_param(path, None, &s.url_param, scolon)
    {
        (Some("path parameter"), Some(&s.url_param), Some(v))
    } else if let Some(v) = sticky::url_param(path, query, &s.url_param, scolon) {
        (Some("URL parameter"), Some(&s.url_param), Some(v))
    } else if let Some(v) = cookies
        .iter()
        .find_map(|c| sticky::cookie_param(c, &s.cookie))
    {
        (Some("cookie"), Some(&s.cookie), Some(v))
    } else {
        (None, None, None)
    };
    let why_not = match (value, route) {
        (_, Some(_)) => None,
        (None, None) => Some(format!(
            "no '{}' URL or path parameter and no '{}' cookie",
            s.url_param, s.cookie
        )),
        (Some(v), None) => Some(match b.params.separator() {
            Some(sep) if !v.as_bytes().contains(&sep) => format!(
                "the value '{v}' has no '{}' (stickysessionsep): httpd takes the route after it",
                sep as char
            ),
            _ => format!("the value '{v}' has an empty route"),
        }),
    };
    StickyLook {
        configured,
        source: source.map(str::to_string),
        name: name.map(|n| n.to_string()),
        value: value.map(str::to_string),
        route: route.map(str::to_string),
        why_not,
    }
}

fn member_look(
    m: &MemberRt,
    chosen: bool,
    chosen_lbset: Option<u8>,
    session: Option<&str>,
) -> MemberLook {
    let p = &m.spec.params;
    let status = crate::admin::status::member_flags(m);
    let mut why = Vec::new();
    let flags = p.status;
    if flags.has(StatusFlags::DISABLED) {
        why.push("disabled (D): takes no requests".to_string());
    }
    if flags.has(StatusFlags::STOPPED) {
        why.push("stopped (S): never retried".into());
    }
    if m.state.in_error.load(Relaxed) {
        why.push(match m.retry_in() {
            Some(t) if !t.is_zero() => format!("in error (E): retried in {}s", t.as_secs().max(1)),
            _ => "in error (E): due for a retry".into(),
        });
    }
    if flags.has(StatusFlags::HC_FAILED) || m.state.hc_failed.load(Relaxed) {
        why.push("failed its health check (C)".into());
    }
    if m.is_draining() {
        why.push("draining (N): only requests carrying its route".into());
    }
    if m.is_standby() {
        why.push("hot standby (H): only when no other member of its lbset is usable".into());
    }
    if m.is_spare() {
        why.push("hot spare (R): stands in for an unusable member of its lbset".into());
    }
    if let (Some(l), false) = (chosen_lbset, chosen)
        && p.lbset > l
    {
        why.push(format!(
            "lbset {}: not reached (lbset {l} has a usable member)",
            p.lbset
        ));
    }
    if let Some(r) = session
        && !m.route.is_empty()
        && *m.route == *r
        && !chosen
    {
        why.push("has the session's route but cannot take it".into());
    }
    if why.is_empty() {
        why.push(if m.usable() {
            "eligible".into()
        } else {
            "not usable".into()
        });
    }
    MemberLook {
        url: m.name.to_string(),
        route: p.route.clone(),
        status,
        lbset: p.lbset,
        factor: f64::from(p.loadfactor) / 100.0,
        lbstatus: m.state.lbstatus.load(Relaxed),
        busy: u64::from(m.state.peer.busy.load(Relaxed)),
        elected: m.state.elected.load(Relaxed),
        usable: m.usable(),
        why: why.join("; "),
        chosen,
    }
}

impl Explanation {
    /// The text `balancerd explain` prints.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "request:   {}", self.request);
        let _ = writeln!(o, "host:      {}", self.host.as_deref().unwrap_or("(none)"));
        let _ = writeln!(o, "server:    {}", self.server);
        if let Some(p) = &self.path {
            let _ = writeln!(o, "path:      {p}");
        }
        for r in &self.rewrites {
            let _ = writeln!(o, "rewrite:   RewriteRule {} applied  {}", r.pattern, r.at);
        }
        if self.routes.is_empty() {
            o.push_str("routes:    (no ProxyPass in this server)\n");
        } else {
            o.push_str("routes:\n");
        }
        for r in &self.routes {
            let n = if r.n == 0 {
                "-".to_string()
            } else {
                r.n.to_string()
            };
            let _ = writeln!(
                o,
                "  {n}. {} {} {}  {}  -> {}",
                r.kind, r.pattern, r.target, r.at, r.result
            );
        }
        for l in &self.locations {
            let _ = writeln!(
                o,
                "location:  <Location {}>  {}  access {}{}",
                l.path,
                l.at,
                l.access,
                l.handler
                    .as_deref()
                    .map_or(String::new(), |h| format!("  SetHandler {h}"))
            );
        }
        if let Some(a) = &self.answer {
            let _ = writeln!(o, "answer:    {a}");
        }
        if let Some(b) = &self.balancer {
            let _ = writeln!(o, "balancer:  {b}");
        }
        if let Some(s) = &self.sticky {
            match (&s.route, &s.why_not) {
                (Some(r), _) => {
                    let _ = writeln!(
                        o,
                        "sticky:    route '{r}' from the {} {}={}",
                        s.source.as_deref().unwrap_or("?"),
                        s.name.as_deref().unwrap_or("?"),
                        s.value.as_deref().unwrap_or("")
                    );
                }
                (None, Some(w)) => {
                    let _ = writeln!(o, "sticky:    no route: {w}");
                }
                (None, None) => {}
            }
        }
        if !self.members.is_empty() {
            o.push_str("members:\n");
        }
        for m in &self.members {
            let _ = writeln!(
                o,
                "  {} {}  route={}  status={}  lbset={}  factor={}  lbstatus={}  busy={}  elected={}: {}",
                if m.chosen { "=>" } else { "  " },
                m.url,
                if m.route.is_empty() { "-" } else { &m.route },
                m.status,
                m.lbset,
                m.factor,
                m.lbstatus,
                m.busy,
                m.elected,
                m.why
            );
        }
        let _ = writeln!(o, "decision:  {}", self.decision);
        if let Some(h) = &self.member_request {
            o.push_str("member request:\n");
            for line in h.lines() {
                let _ = writeln!(o, "  {line}");
            }
        }
        o
    }
}
