//! The balancer-manager (`SetHandler balancer-manager`), as httpd 2.4's mod_proxy_balancer
//! serves it, so that admins' pages and scripts keep working: the page with every balancer
//! and member, the edit forms, httpd's update parameters and its XML output.
//!
//! An update is taken exactly when httpd takes it, and only then:
//! * its parameters come from a POST form body (a GET query carries only `b`, `w`, `nonce`
//!   and `xml`, so it changes nothing);
//! * the request has a `Referer` naming this server's host (else every parameter is
//!   ignored, `xml` included, and the page is answered as for no parameters);
//! * the form carries the balancer's own nonce.
//!
//! Stricter than httpd, never looser: an `Origin` that is not this server's, or a
//! `Sec-Fetch-Site` other than `same-origin`/`none`, also drops the parameters (a browser
//! sends them on a cross-site form post; a script sends neither). Every value on the page is
//! escaped, and the page forbids framing and caching. A change is logged with the client's
//! address and the values before → after; it is applied through
//! [`crate::runtime::control`] (a new snapshot, as a reload).
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`, `balancer`,
//! `runtime`.

use crate::balancer::BalancerRt;
use crate::balancer::member::MemberRt;
use crate::config::model::{LbMethod, StatusFlags, StickySession};
use crate::config::params::HC_METHODS;
use crate::runtime::Snapshot;
use crate::runtime::control::{BalancerChange, MemberChange};
use crate::util::html::escape_html;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Most bytes of a form body read (httpd reads 1024).
pub const MAX_FORM: usize = 1024;

/// How a refused `b_nwrkr` begins (answered 400, as httpd answers it).
const CANNOT_ADD: &str = "cannot add member";

/// One request to the manager, as the proxy layer read it.
pub struct ManagerRequest<'a> {
    /// POST (a form body) rather than GET.
    pub post: bool,
    /// The query string.
    pub query: Option<&'a str>,
    /// The form body (POST), at most [`MAX_FORM`] bytes.
    pub body: &'a [u8],
    /// The request's path (the form's action).
    pub path: &'a str,
    /// The host the client addressed (its `Host` without the port), for the `Referer`
    /// check and the page's title.
    pub host: &'a str,
    /// The whole `Host` (with its port), for the `Origin` check.
    pub authority: &'a str,
    pub referer: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    /// The client asked for JSON (`Accept: application/json`): the state as
    /// [`json`] gives it, instead of the page (a balancerd addition; reading it changes
    /// nothing, so it needs no `Referer`).
    pub wants_json: bool,
    /// The client's address, for the log.
    pub client: std::net::IpAddr,
}

/// The manager's answer: the status (200, or httpd's 400 when a member cannot be added),
/// the body and its content type.
pub struct ManagerAnswer {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
}

/// Splits `a=b&c=d` into decoded pairs (as httpd's `push2table`); later keys win.
fn params(input: &str, allowed: Option<&[&str]>, out: &mut Vec<(String, String)>) {
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (unescape(k), unescape(v));
        if allowed.is_some_and(|a| !a.contains(&k.as_str())) {
            continue;
        }
        out.retain(|(x, _)| *x != k);
        out.push((k, v));
    }
}

/// `%XX` and `+` decoded (httpd's `ap_unescape_url` leaves `+`; forms send spaces as `+`,
/// which no parameter value here may contain anyway).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host of an absolute URL (`https://h:1/x` → `h`), lower-cased.
fn url_host(u: &str) -> Option<String> {
    let rest = u.split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let host = if let Some(v6) = auth.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        auth.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// httpd's status words for a member (`ap_proxy_parse_wstatus`).
pub fn status_words(m: &MemberRt) -> String {
    let f = m.spec.params.status;
    let err = m.state.in_error.load(Relaxed) || f.has(StatusFlags::IN_ERROR);
    let hc = m.state.hc_failed.load(Relaxed) || f.has(StatusFlags::HC_FAILED);
    let mut s = String::from("Init ");
    for (bit, on, word) in [
        (StatusFlags::IGNORE_ERRORS, false, "Ign "),
        (StatusFlags::DRAIN, false, "Drn "),
        (StatusFlags::DISABLED, false, "Dis "),
        (StatusFlags::STOPPED, false, "Stop "),
        (0, err, "Err "),
        (StatusFlags::HOT_STANDBY, false, "Stby "),
        (0, hc, "HcFl "),
        (StatusFlags::HOT_SPARE, false, "Spar "),
    ] {
        if on || (bit != 0 && f.has(bit)) {
            s.push_str(word);
        }
    }
    if m.usable() {
        s.push_str("Ok ");
    }
    s
}

fn short_name(b: &BalancerRt) -> &str {
    b.full_name
        .strip_prefix("balancer://")
        .unwrap_or(&b.full_name)
}

/// Percent-encodes what may not stand in a query or form value (`balancerd ctl --url`
/// writes its form with it too).
pub fn escape_uri(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Serves one request: applies an update when httpd would, then answers the page.
pub fn serve(snap: &Snapshot, req: &ManagerRequest<'_>) -> ManagerAnswer {
    let mut p: Vec<(String, String)> = Vec::new();
    if req.post {
        params(&String::from_utf8_lossy(req.body), None, &mut p);
    } else if let Some(q) = req.query {
        params(q, Some(&["w", "b", "nonce", "xml"]), &mut p);
    }
    let host = req.host.to_ascii_lowercase();
    // httpd drops the parameters of any request without a same-host `Referer`, `?xml=1`
    // included (its test of the parameter table is always true).
    let referer_ok = req.referer.and_then(url_host).is_some_and(|h| h == host);
    // The origin must be this very one: host and port (a page on another port of the same
    // host is another origin, though httpd's Referer test lets it through).
    let origin_ok = req.origin.is_none_or(|o| {
        o.split_once("://")
            .is_some_and(|(_, a)| a.trim_end_matches('/').eq_ignore_ascii_case(req.authority))
    });
    let fetch_ok = req
        .sec_fetch_site
        .is_none_or(|s| s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none"));
    let same_site = referer_ok && origin_ok && fetch_ok;
    if !same_site && !p.is_empty() {
        tracing::warn!(client = %req.client, referer = ?req.referer, origin = ?req.origin, "ignoring params in balancer-manager cross-site access");
        p.clear();
    }
    let get = |k: &str| p.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    let bsel = get("b").and_then(|b| {
        snap.balancers
            .iter()
            .position(|x| short_name(x) == b || *x.full_name == *b)
    });
    let wsel = match (bsel, get("w")) {
        (Some(bi), Some(w)) => snap.balancers[bi]
            .members
            .iter()
            .position(|m| *m.name == *w || m.spec.url.to_string() == w),
        _ => None,
    };
    let mut snap_now = None;
    if let Some(bi) = bsel {
        let b = &snap.balancers[bi];
        let nonce = snap.control.nonce(&b.full_name).unwrap_or_default();
        if !nonce.is_empty() && get("nonce") == Some(nonce.as_str()) {
            let w = wsel.map(|i| &b.members[i]);
            match apply(snap, b, w, &get, &req.client.to_string()) {
                Ok(l) if !l.is_empty() => snap_now = snap.control.current(),
                Ok(_) => {}
                Err(e) if e.starts_with(CANNOT_ADD) => {
                    return ManagerAnswer {
                        status: 400,
                        body: format!("{e}\n"),
                        content_type: "text/plain; charset=utf-8",
                    };
                }
                Err(_) => {}
            }
        }
    }
    // Answer from the snapshot the change built, when there was one.
    let shown = snap_now.as_deref().unwrap_or(snap);
    if req.wants_json {
        ManagerAnswer {
            status: 200,
            body: json(shown).to_string(),
            content_type: "application/json",
        }
    } else if get("xml").is_some() {
        ManagerAnswer {
            status: 200,
            body: xml(shown),
            content_type: "text/xml",
        }
    } else {
        ManagerAnswer {
            status: 200,
            body: page(shown, bsel, wsel, req),
            content_type: "text/html; charset=ISO-8859-1",
        }
    }
}

/// Applies the update parameters to balancer `b` (and member `w`); returns the new
/// snapshot when something changed.
fn apply<'a>(
    snap: &Snapshot,
    b: &BalancerRt,
    w: Option<&MemberRt>,
    get: &dyn Fn(&str) -> Option<&'a str>,
    who: &str,
) -> Result<Vec<String>, String> {
    let mut mc_new: Option<MemberChange> = None;
    let mut log: Vec<String> = Vec::new();
    if let Some(m) = w {
        let mut c = snap
            .control
            .member_change(&b.full_name, &m.name)
            .unwrap_or_default();
        let p = &m.spec.params;
        if let Some(v) = get("w_lf") {
            let f = (v.trim().parse::<f64>().unwrap_or(0.0) * 100.0) as i64;
            if (100..=10000).contains(&f) && f as u32 != p.loadfactor {
                log.push(format!(
                    "loadfactor {:.2} -> {:.2}",
                    p.loadfactor as f64 / 100.0,
                    f as f64 / 100.0
                ));
                c.loadfactor = Some(f as u32);
            }
        }
        for (key, old, slot) in [
            ("w_wr", &p.route, &mut c.route),
            ("w_rr", &p.redirect, &mut c.redirect),
        ] {
            if let Some(v) = get(key) {
                let new = if !v.is_empty() && v.len() < 64 { v } else { "" };
                if new != old.as_str() {
                    log.push(format!(
                        "{} '{old}' -> '{new}'",
                        if key == "w_wr" { "route" } else { "redirect" }
                    ));
                    *slot = Some(new.to_string());
                }
            }
        }
        for (letter, bit) in [
            ('I', StatusFlags::IGNORE_ERRORS),
            ('N', StatusFlags::DRAIN),
            ('D', StatusFlags::DISABLED),
            ('H', StatusFlags::HOT_STANDBY),
            ('R', StatusFlags::HOT_SPARE),
            ('S', StatusFlags::STOPPED),
            ('C', StatusFlags::HC_FAILED),
        ] {
            let Some(v) = get(&format!("w_status_{letter}")) else {
                continue;
            };
            let on = v.trim().parse::<i64>().unwrap_or(0) != 0;
            if on == p.status.has(bit) {
                continue;
            }
            log.push(format!(
                "status {letter} {} -> {}",
                u8::from(!on),
                u8::from(on)
            ));
            if on {
                c.status_on |= bit;
                c.status_off &= !bit;
            } else {
                c.status_off |= bit;
                c.status_on &= !bit;
            }
        }
        if let Some(v) = get("w_ls")
            && let Ok(n) = v.trim().parse::<u8>()
            && n <= 99
            && n != p.lbset
        {
            log.push(format!("lbset {} -> {n}", p.lbset));
            c.lbset = Some(n);
        }
        // Health checks, as mod_proxy_hcheck's form fields.
        let hc = &p.hc;
        let mut set_hc = |key: &str, old: String, new: String, log: &mut Vec<String>| {
            if old != new {
                log.push(format!("{key} '{old}' -> '{new}'"));
                c.hc.retain(|(k, _)| k != key);
                c.hc.push((key.to_string(), new));
            }
        };
        if let Some(v) = get("w_hm")
            && let Some(m) = HC_METHODS.iter().find(|m| m.eq_ignore_ascii_case(v))
        {
            set_hc("hcmethod", hc.method.clone(), (*m).to_string(), &mut log);
        }
        if let Some(v) = get("w_hi")
            && let Ok(d) = crate::config::params::timeout_with_unit("hcinterval", v.trim(), true)
            && d >= std::time::Duration::from_millis(100)
        {
            set_hc(
                "hcinterval",
                format!("{}ms", hc.interval.as_millis()),
                format!("{}ms", d.as_millis()),
                &mut log,
            );
        }
        for (field, key, old) in [
            ("w_hp", "hcpasses", hc.passes),
            ("w_hf", "hcfails", hc.fails),
        ] {
            if let Some(v) = get(field)
                && let Ok(n) = v.trim().parse::<u32>()
                && n >= 1
            {
                set_hc(key, old.to_string(), n.to_string(), &mut log);
            }
        }
        if let Some(v) = get("w_hu") {
            let new = if !v.is_empty() && v.len() < 64 { v } else { "" };
            set_hc(
                "hcuri",
                hc.uri.clone().unwrap_or_default(),
                new.to_string(),
                &mut log,
            );
        }
        if let Some(v) = get("w_he") {
            let known = snap.control.hc_expr_names().iter().any(|n| n == v);
            let new = if known { v } else { "" };
            set_hc(
                "hcexpr",
                hc.expr.clone().unwrap_or_default(),
                new.to_string(),
                &mut log,
            );
        }
        mc_new = Some(c);
    }
    let mut bc = BalancerChange::default();
    let bp = &b.params;
    if let Some(v) = get("b_lbm") {
        let m = match v {
            "byrequests" => Some(LbMethod::ByRequests),
            "bybusyness" => Some(LbMethod::ByBusyness),
            "bytraffic" => Some(LbMethod::ByTraffic),
            _ => None,
        };
        if let Some(m) = m.filter(|m| *m != bp.lbmethod) {
            log.push(format!(
                "lbmethod {} -> {}",
                bp.lbmethod.as_str(),
                m.as_str()
            ));
            bc.lbmethod = Some(m);
        }
    }
    if let Some(v) = get("b_tmo")
        && let Ok(n) = v.trim().parse::<u64>()
        && n <= 7200
    {
        let old = bp.timeout.map_or(0, |d| d.as_secs());
        if old != n {
            log.push(format!("timeout {old} -> {n}"));
            bc.timeout = Some(std::time::Duration::from_secs(n));
        }
    }
    if let Some(v) = get("b_max")
        && let Ok(n) = v.trim().parse::<u32>()
        && n <= 99
        && n != b.max_attempts
    {
        log.push(format!("maxattempts {} -> {n}", b.max_attempts));
        bc.max_attempts = Some(n);
    }
    if let Some(v) = get("b_sforce") {
        let on = v.trim().parse::<i64>().unwrap_or(0) != 0;
        if on != bp.no_failover {
            log.push(format!(
                "sticky force {} -> {}",
                u8::from(!on),
                u8::from(on)
            ));
            bc.sticky_force = Some(on);
        }
    }
    if let Some(v) = get("b_ss").filter(|v| !v.is_empty() && v.len() < 63) {
        let old = bp
            .sticky
            .as_ref()
            .map_or("(None)".to_string(), |s| s.cookie.to_string());
        if v == "-" {
            if bp.sticky.is_some() {
                log.push(format!("stickysession {old} -> (None)"));
                bc.sticky = Some(None);
            }
        } else {
            let (cookie, url) = v.split_once('|').unwrap_or((v, v));
            let s = StickySession {
                cookie: cookie.trim().into(),
                url_param: url.trim().into(),
            };
            if bp.sticky.as_ref() != Some(&s) {
                log.push(format!("stickysession {old} -> {v}"));
                bc.sticky = Some(Some(s));
            }
        }
    }
    // A new member (`b_nwrkr` with `b_wyes=1`), as httpd: only within the balancer's
    // `growth`, never a URL it already has, and disabled until enabled.
    if get("b_wyes") == Some("1")
        && let Some(url) = get("b_nwrkr")
    {
        let added_before = snap
            .control
            .balancer_change(&b.full_name)
            .map_or(0, |c| c.added.len());
        let configured = b.members.len() - added_before;
        let free = (configured + bp.growth as usize).saturating_sub(b.members.len());
        let parsed = crate::config::builder::parse_member_url(url);
        let exists = parsed
            .as_ref()
            .is_ok_and(|(u, _)| b.members.iter().any(|m| m.spec.url == *u));
        match parsed {
            Ok((u, _)) if !exists && free > 0 => {
                log.push(format!("member {u} added (disabled)"));
                bc.added.push(u.to_string());
            }
            Ok(_) if exists => return Err(format!("{CANNOT_ADD} {url}: the balancer has it")),
            Ok(_) => {
                return Err(format!(
                    "{CANNOT_ADD} {url}: no free slot (growth={})",
                    bp.growth
                ));
            }
            Err(e) => return Err(format!("{CANNOT_ADD} {url}: {e}")),
        }
    }
    if log.is_empty() {
        return Ok(log);
    }
    let member_name = w.map(|m| m.name.to_string());
    let r = snap
        .control
        .update(&b.full_name, member_name.as_deref(), |b_rec, m_rec| {
            b_rec.merge(bc);
            if let (Some(m), Some(new)) = (m_rec, mc_new) {
                *m = new;
            }
        });
    let target = match &member_name {
        Some(m) => format!("{} {m}", b.full_name),
        None => b.full_name.to_string(),
    };
    match r {
        Ok(()) => {
            tracing::warn!(client = %who, "balancer-manager: {target}: {}", log.join(", "));
            Ok(log)
        }
        Err(e) => {
            tracing::error!(client = %who, "balancer-manager: {target}: change not applied: {e}");
            Err(e)
        }
    }
}

/// Applies httpd's update parameters (`w_lf`, `w_status_D`, `b_lbm`, …) to balancer
/// `balancer` (its name without `balancer://`) and, when given, its member `member` (the
/// worker URL), as the manager's form does; for `balancerd ctl`. Returns what changed, as
/// logged.
pub fn update(
    snap: &Snapshot,
    balancer: &str,
    member: Option<&str>,
    params: &[(String, String)],
    who: &str,
) -> Result<Vec<String>, String> {
    let b = snap
        .balancers
        .iter()
        .find(|x| short_name(x) == balancer || *x.full_name == *balancer)
        .ok_or_else(|| format!("no balancer {balancer}"))?;
    let w = match member {
        Some(m) => Some(
            b.members
                .iter()
                .find(|x| *x.name == *m || x.route.as_ref() == m)
                .ok_or_else(|| format!("no member {m} in {}", b.full_name))?,
        ),
        None => None,
    };
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    apply(snap, b, w, &get, who)
}

/// The state of every balancer and member as JSON (`balancerd ctl status`): what the page
/// shows, with the status as letters and as httpd's words.
pub fn json(snap: &Snapshot) -> serde_json::Value {
    let balancers: Vec<serde_json::Value> = snap
        .balancers
        .iter()
        .map(|b| {
            let p = &b.params;
            let members: Vec<serde_json::Value> = b
                .members
                .iter()
                .map(|m| {
                    let mp = &m.spec.params;
                    let s = &m.state;
                    serde_json::json!({
                        "url": &*m.name,
                        "route": &mp.route,
                        "redirect": &mp.redirect,
                        "factor": mp.loadfactor as f64 / 100.0,
                        "lbset": mp.lbset,
                        "status": crate::admin::status::member_flags(m),
                        "status_words": status_words(m).trim_end(),
                        "usable": m.usable(),
                        "elected": s.elected.load(Relaxed),
                        "lbstatus": s.lbstatus.load(Relaxed),
                        "retry_in_ms": m.retry_in().map(|d| d.as_millis() as u64),
                        "busy": s.peer.busy.load(Relaxed),
                        "errors": s.errors.load(Relaxed),
                        "to_bytes": s.peer.transferred.load(Relaxed),
                        "from_bytes": s.peer.read.load(Relaxed),
                        "changed_at_runtime": snap.control.member_change(&b.full_name, &m.name).is_some(),
                    })
                })
                .collect();
            serde_json::json!({
                "name": &*b.full_name,
                "nonce": snap.control.nonce(&b.full_name).unwrap_or_default(),
                "lbmethod": p.lbmethod.as_str(),
                "timeout": p.timeout.map_or(0, |d| d.as_secs()),
                "maxattempts": b.max_attempts,
                "stickysession": p.sticky.as_ref().map(|s| s.cookie.to_string()),
                "nofailover": p.no_failover,
                "members": members,
            })
        })
        .collect();
    serde_json::json!({ "balancers": balancers })
}

/// httpd's XML output (`?xml=1`).
pub fn xml(snap: &Snapshot) -> String {
    let mut o = String::from(
        "<?xml version='1.0' encoding='UTF-8' ?>\n<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n  <httpd:balancers>\n",
    );
    for b in &snap.balancers {
        let p = &b.params;
        o.push_str("    <httpd:balancer>\n");
        let _ = writeln!(
            o,
            "      <httpd:name>{}</httpd:name>",
            escape_html(&b.full_name)
        );
        if let Some(s) = &p.sticky {
            let _ = writeln!(
                o,
                "      <httpd:stickysession>{}</httpd:stickysession>",
                escape_html(&s.cookie)
            );
            let _ = writeln!(
                o,
                "      <httpd:nofailover>{}</httpd:nofailover>",
                if p.no_failover { "On" } else { "Off" }
            );
        }
        let _ = writeln!(
            o,
            "      <httpd:timeout>{}</httpd:timeout>",
            p.timeout.map_or(0, |d| d.as_secs())
        );
        // httpd sets the effective value at start (members − 1 unless configured).
        let _ = writeln!(
            o,
            "      <httpd:maxattempts>{}</httpd:maxattempts>",
            b.max_attempts
        );
        let _ = writeln!(
            o,
            "      <httpd:lbmethod>{}</httpd:lbmethod>",
            p.lbmethod.as_str()
        );
        if p.sticky.is_some() {
            let _ = writeln!(
                o,
                "      <httpd:scolonpathdelim>{}</httpd:scolonpathdelim>",
                if p.scolon_path_delim { "On" } else { "Off" }
            );
        }
        o.push_str("      <httpd:workers>\n");
        for m in &b.members {
            let mp = &m.spec.params;
            let s = &m.state;
            o.push_str("        <httpd:worker>\n");
            let _ = writeln!(
                o,
                "          <httpd:name>{}</httpd:name>",
                escape_html(&m.name)
            );
            let _ = writeln!(
                o,
                "          <httpd:scheme>{}</httpd:scheme>",
                escape_html(&m.spec.url.scheme)
            );
            let _ = writeln!(
                o,
                "          <httpd:hostname>{}</httpd:hostname>",
                escape_html(&m.spec.url.host)
            );
            let _ = writeln!(
                o,
                "          <httpd:loadfactor>{:.2}</httpd:loadfactor>",
                mp.loadfactor as f64 / 100.0
            );
            let _ = writeln!(o, "          <httpd:port>{}</httpd:port>", m.spec.url.port);
            let _ = writeln!(
                o,
                "          <httpd:status>{}</httpd:status>",
                status_words(m)
            );
            let _ = writeln!(o, "          <httpd:retries>0</httpd:retries>");
            let _ = writeln!(
                o,
                "          <httpd:lbstatus>{}</httpd:lbstatus>",
                s.lbstatus.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "          <httpd:loadfactor>{:.2}</httpd:loadfactor>",
                mp.loadfactor as f64 / 100.0
            );
            let _ = writeln!(
                o,
                "          <httpd:transferred>{}</httpd:transferred>",
                s.peer.transferred.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "          <httpd:read>{}</httpd:read>",
                s.peer.read.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "          <httpd:elected>{}</httpd:elected>",
                s.elected.load(Relaxed)
            );
            let _ = writeln!(
                o,
                "          <httpd:route>{}</httpd:route>",
                escape_html(&mp.route)
            );
            let _ = writeln!(
                o,
                "          <httpd:redirect>{}</httpd:redirect>",
                escape_html(&mp.redirect)
            );
            let _ = writeln!(
                o,
                "          <httpd:busy>{}</httpd:busy>",
                s.peer.busy.load(Relaxed)
            );
            let _ = writeln!(o, "          <httpd:lbset>{}</httpd:lbset>", mp.lbset);
            o.push_str("        </httpd:worker>\n");
        }
        o.push_str("      </httpd:workers>\n    </httpd:balancer>\n");
    }
    o.push_str("  </httpd:balancers>\n</httpd:manager>");
    o
}

fn radio(o: &mut String, name: &str, on: bool) {
    let _ = writeln!(
        o,
        "<td><label for='{name}1'>On</label> <input name='{name}' id='{name}1' value='1' type=radio{}> <br/> <label for='{name}0'>Off</label> <input name='{name}' id='{name}0' value='0' type=radio{}></td>",
        if on { " checked" } else { "" },
        if on { "" } else { " checked" }
    );
}

/// The HTML page: every balancer and member, and the edit form of the one selected.
fn page(
    snap: &Snapshot,
    bsel: Option<usize>,
    wsel: Option<usize>,
    req: &ManagerRequest<'_>,
) -> String {
    let path = escape_uri(req.path);
    let mut o = String::from(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n<html><head><title>Balancer Manager</title>\n\
<style type='text/css'>table { border: 1px solid gray; border-collapse: collapse; text-align: center } th, td { border: 1px dotted gray; padding: 2px } th { background-color: lightgray }</style>\n</head>\n",
    );
    let _ = write!(
        o,
        "<body><h1>Load Balancer Manager for {}</h1>\n\n",
        escape_html(req.host)
    );
    let _ = writeln!(
        o,
        "<dl><dt>Server Version: balancerd/{}</dt>\n<dt>Balancer changes will be persisted on restart.</dt><dt>Balancers are inherited from main server.</dt><dt>ProxyPass settings are inherited from main server.</dt></dl>",
        env!("CARGO_PKG_VERSION")
    );
    for b in &snap.balancers {
        let p = &b.params;
        let nonce = snap.control.nonce(&b.full_name).unwrap_or_default();
        let name = short_name(b);
        let _ = write!(
            o,
            "<hr />\n<h3>LoadBalancer Status for <a href=\"{path}?b={}&amp;nonce={}\">{}</a> [{}]</h3>\n\n\n",
            escape_uri(name),
            escape_html(&nonce),
            escape_html(&b.full_name),
            escape_html(name)
        );
        o.push_str("<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th><th>Timeout</th><th>FailoverAttempts</th><th>Method</th><th>Path</th><th>Active</th></tr>\n<tr>");
        let _ = writeln!(
            o,
            "<td>{} [{} Used]</td>",
            b.members.len() as u32 + p.growth,
            b.members.len()
        );
        match &p.sticky {
            Some(s) if s.cookie != s.url_param => {
                let _ = write!(
                    o,
                    "<td>{} | {}",
                    escape_html(&s.cookie),
                    escape_html(&s.url_param)
                );
            }
            Some(s) => {
                let _ = write!(o, "<td>{}", escape_html(&s.cookie));
            }
            None => o.push_str("<td> (None) "),
        }
        let _ = write!(
            o,
            "</td><td>{}</td>\n<td>{}</td><td>{}</td>\n<td>{}</td>\n<td>/</td>\n<td>Yes</td>\n</tr>\n</table>\n<br />",
            if p.no_failover { "On" } else { "Off" },
            p.timeout.map_or(0, |d| d.as_secs()),
            b.max_attempts,
            p.lbmethod.as_str()
        );
        o.push_str("\n\n<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th><th>HC uri</th><th>HC Expr</th></tr>\n");
        for m in &b.members {
            let mp = &m.spec.params;
            let s = &m.state;
            let hc = &mp.hc;
            let _ = write!(
                o,
                "<tr>\n<td><a href=\"{path}?b={}&amp;w={}&amp;nonce={}\">{}</a></td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}ms</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>\n",
                escape_uri(name),
                escape_uri(&m.name),
                escape_html(&nonce),
                escape_html(&m.name),
                escape_html(&mp.route),
                escape_html(&mp.redirect),
                mp.loadfactor as f64 / 100.0,
                mp.lbset,
                escape_html(&status_words(m)),
                s.elected.load(Relaxed),
                s.peer.busy.load(Relaxed),
                s.lbstatus.load(Relaxed),
                s.peer.transferred.load(Relaxed),
                s.peer.read.load(Relaxed),
                escape_html(if hc.method.is_empty() {
                    "NONE"
                } else {
                    &hc.method
                }),
                hc.interval.as_millis(),
                hc.passes,
                s.hc_passes.load(Relaxed),
                hc.fails,
                s.hc_fails.load(Relaxed),
                escape_html(hc.uri.as_deref().unwrap_or("")),
                escape_html(hc.expr.as_deref().unwrap_or("")),
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("<hr />\n");
    if let Some(bi) = bsel {
        let b = &snap.balancers[bi];
        let nonce = escape_html(&snap.control.nonce(&b.full_name).unwrap_or_default());
        let name = escape_html(short_name(b));
        if let Some(wi) = wsel {
            let m = &b.members[wi];
            let mp = &m.spec.params;
            let f = mp.status;
            let _ = write!(
                o,
                "<h3>Edit worker settings for {}</h3>\n<form method='POST' enctype='application/x-www-form-urlencoded' action=\"{path}\">\n<table><tr><td>Load factor:</td><td><input name='w_lf' id='w_lf' type=text value='{:.2}'></td></tr>\n<tr><td>LB Set:</td><td><input name='w_ls' id='w_ls' type=text value='{}'></td></tr>\n<tr><td>Route:</td><td><input name='w_wr' id='w_wr' type=text value=\"{}\"></td></tr>\n<tr><td>Route Redirect:</td><td><input name='w_rr' id='w_rr' type=text value=\"{}\"></td></tr>\n<tr><td>Status:</td><td><table><tr><th>Ignore Errors</th><th>Draining Mode</th><th>Disabled</th><th>Hot Standby</th><th>Hot Spare</th><th>HC Fail</th><th>Stopped</th></tr>\n<tr>",
                escape_html(&m.name),
                mp.loadfactor as f64 / 100.0,
                mp.lbset,
                escape_html(&mp.route),
                escape_html(&mp.redirect)
            );
            for (n, bit) in [
                ("w_status_I", StatusFlags::IGNORE_ERRORS),
                ("w_status_N", StatusFlags::DRAIN),
                ("w_status_D", StatusFlags::DISABLED),
                ("w_status_H", StatusFlags::HOT_STANDBY),
                ("w_status_R", StatusFlags::HOT_SPARE),
                ("w_status_C", StatusFlags::HC_FAILED),
                ("w_status_S", StatusFlags::STOPPED),
            ] {
                radio(&mut o, n, f.has(bit));
            }
            o.push_str("</tr></table></td></tr>\n<tr><td colspan='2'>\n<table align='center'><tr><th>Health Check param</th><th>Value</th></tr>\n<tr><td>Method</td><td><select name='w_hm'>\n");
            let hc = &mp.hc;
            for hm in HC_METHODS {
                let sel = if hm.eq_ignore_ascii_case(&hc.method) {
                    "selected"
                } else {
                    ""
                };
                let _ = writeln!(o, "<option value='{hm}' {sel} >{hm}</option>");
            }
            o.push_str("</select>\n</td></tr>\n<tr><td>Expr</td><td><select name='w_he'>\n<option value=''></option>\n");
            for e in snap.control.hc_expr_names() {
                let sel = if hc.expr.as_deref() == Some(e.as_str()) {
                    "selected"
                } else {
                    ""
                };
                let e = escape_html(&e);
                let _ = writeln!(o, "<option value='{e}' {sel} >{e}</option>");
            }
            let _ = write!(
                o,
                "</select>\n</td></tr>\n<tr><td>Interval (ms)</td><td><input name='w_hi' id='w_hi' type='text' value='{}'></td></tr>\n<tr><td>Passes trigger</td><td><input name='w_hp' id='w_hp' type='text' value='{}'></td></tr>\n<tr><td>Fails trigger</td><td><input name='w_hf' id='w_hf' type='text' value='{}'></td></tr>\n<tr><td>HC uri</td><td><input name='w_hu' id='w_hu' type='text' value=\"{}\"></td></tr>\n</table>\n</td></tr>\n",
                hc.interval.as_millis(),
                hc.passes,
                hc.fails,
                escape_html(hc.uri.as_deref().unwrap_or(""))
            );
            let _ = write!(
                o,
                "<tr><td colspan='2'><input type=submit value='Submit'></td></tr>\n</table>\n<input type=hidden name='w' id='w' value=\"{}\">\n<input type=hidden name='b' id='b' value=\"{name}\">\n<input type=hidden name='nonce' id='nonce' value='{nonce}'>\n</form>\n<hr />\n",
                escape_html(&m.name)
            );
        } else {
            let p = &b.params;
            let _ = write!(
                o,
                "<h3>Edit balancer settings for {}</h3>\n<form method='POST' enctype='application/x-www-form-urlencoded' action=\"{path}\">\n<table>\n<tr><td>LBmethod:</td><td>\n<select name='b_lbm' id='b_lbm'>",
                escape_html(&b.full_name)
            );
            for m in ["bybusyness", "byrequests", "bytraffic"] {
                let sel = if m == p.lbmethod.as_str() {
                    " selected "
                } else {
                    ""
                };
                let _ = writeln!(o, "<option value='{m}'{sel}>{m}");
            }
            let ss = match &p.sticky {
                Some(s) if s.cookie != s.url_param => format!("{} | {}", s.cookie, s.url_param),
                Some(s) => s.cookie.to_string(),
                None => String::new(),
            };
            let _ = write!(
                o,
                "</select>\n</td></tr>\n<tr><td>Timeout:</td><td><input name='b_tmo' id='b_tmo' type=text value='{}'></td></tr>\n<tr><td>Failover Attempts:</td><td><input name='b_max' id='b_max' type=text value='{}'></td></tr>\n<tr><td>Disable Failover:</td>",
                p.timeout.map_or(0, |d| d.as_secs()),
                b.max_attempts
            );
            radio(&mut o, "b_sforce", p.no_failover);
            let _ = write!(
                o,
                "</tr>\n<tr><td>Sticky Session:</td><td><input name='b_ss' id='b_ss' size=64 type=text value =\"{}\">&nbsp;&nbsp;&nbsp;&nbsp;(Use '-' to delete)</td></tr>\n",
                escape_html(&ss)
            );
            let added = snap
                .control
                .balancer_change(&b.full_name)
                .map_or(0, |c| c.added.len());
            if b.members.len() < b.members.len() - added + p.growth as usize {
                o.push_str("<tr><td>Add New Worker:</td><td><input name='b_nwrkr' id='b_nwrkr' size=32 type=text>&nbsp;&nbsp;&nbsp;&nbsp;Are you sure? <input name='b_wyes' id='b_wyes' type=checkbox value='1'></td></tr>");
            }
            let _ = write!(
                o,
                "<tr><td colspan=2><input type=submit value='Submit'></td></tr>\n</table>\n<input type=hidden name='b' id='b' value=\"{name}\">\n<input type=hidden name='nonce' id='nonce' value='{nonce}'>\n</form>\n<hr />\n"
            );
        }
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_and_filter() {
        let mut p = Vec::new();
        params(
            "b=t1%2Drws&w_status_D=1&x=1&b=t2",
            Some(&["b", "w"]),
            &mut p,
        );
        assert_eq!(p, [("b".to_string(), "t2".to_string())]);
        let mut p = Vec::new();
        params("w=http%3A%2F%2Fa%3A1&nonce=abc", None, &mut p);
        assert_eq!(p[0].1, "http://a:1");
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            url_host("http://lb.example/bm").as_deref(),
            Some("lb.example")
        );
        assert_eq!(
            url_host("https://LB.example:8443/").as_deref(),
            Some("lb.example")
        );
        assert_eq!(url_host("http://u@[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(url_host("/relative"), None);
        assert_eq!(url_host("null"), None);
    }
}
