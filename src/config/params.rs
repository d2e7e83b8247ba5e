//! Member and balancer parameters (`key=value`), parsed with httpd's units, ranges and
//! defaults (httpd-semantics §2). Shared by both dialects, so a parameter means the same
//! thing whichever file it came from.
//!
//! Where httpd silently reads a value in a surprising way (`timeout=500ms` is 500 seconds),
//! we refuse it with a hint instead of guessing.

use super::diag::{Severity, closest};
use super::model::{BalancerParams, LbMethod, MemberParams, ReadStage, StatusFlags, StickySession};
use std::time::Duration;

/// A problem with one parameter; the caller attaches the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamIssue {
    /// Error, or warning when the value is accepted.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

impl ParamIssue {
    fn error(message: impl Into<String>) -> Self {
        ParamIssue {
            severity: Severity::Error,
            message: message.into(),
            hint: None,
        }
    }
    fn warning(message: impl Into<String>) -> Self {
        ParamIssue {
            severity: Severity::Warning,
            message: message.into(),
            hint: None,
        }
    }
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

/// Result of setting one parameter: `Ok(Some(_))` is accepted with a warning.
pub type ParamResult = Result<Option<ParamIssue>, ParamIssue>;

/// Every member (worker) parameter key httpd knows.
pub const MEMBER_KEYS: &[&str] = &[
    "loadfactor",
    "lbset",
    "route",
    "redirect",
    "status",
    "retry",
    "timeout",
    "connectiontimeout",
    "acquire",
    "ping",
    "disablereuse",
    "enablereuse",
    "keepalive",
    "max",
    "smax",
    "min",
    "ttl",
    "flushpackets",
    "flushwait",
    "iobuffersize",
    "receivebuffersize",
    "upgrade",
    "secret",
    "addressttl",
    "hcmethod",
    "hcuri",
    "hcinterval",
    "hcpasses",
    "hcfails",
    "hcexpr",
    "hctemplate",
    "responsefieldsize",
];

/// The health-check methods mod_proxy_hcheck implements (`hcmethod=`, and the
/// balancer-manager's `w_hm`).
pub const HC_METHODS: [&str; 8] = [
    "None",
    "TCP",
    "OPTIONS",
    "HEAD",
    "GET",
    "OPTIONS11",
    "HEAD11",
    "GET11",
];

/// Every balancer parameter key httpd knows.
pub const BALANCER_KEYS: &[&str] = &[
    "stickysession",
    "stickysessionsep",
    "scolonpathdelim",
    "nofailover",
    "maxattempts",
    "forcerecovery",
    "failonstatus",
    "failontimeout",
    "lbmethod",
    "timeout",
    "growth",
    "nonce",
];

/// Longest route, redirect, hcuri or sticky name httpd stores.
pub const MAX_NAME: usize = 63;

fn on_off(key: &str, v: &str) -> Result<bool, ParamIssue> {
    if v.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(ParamIssue::error(format!(
            "{key} must be On or Off, not '{v}'"
        )))
    }
}

fn int_in(key: &str, v: &str, lo: i64, hi: i64) -> Result<i64, ParamIssue> {
    match v.parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) => Err(ParamIssue::error(format!(
            "{key}={v} is out of range ({lo} to {hi})"
        ))),
        Err(_) => Err(ParamIssue::error(format!(
            "{key}={v} is not a whole number"
        ))),
    }
}

/// httpd reads some durations with `atoi`: whole seconds, any suffix ignored. Accept digits
/// (optionally followed by `s`); refuse every other suffix, since httpd would silently read
/// `500ms` as 500 seconds.
fn atoi_seconds(key: &str, v: &str, min: u64) -> Result<Duration, ParamIssue> {
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, suffix) = v.split_at(digits_end);
    if num.is_empty() {
        return Err(ParamIssue::error(format!(
            "{key}={v} is not a number of seconds"
        )));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| ParamIssue::error(format!("{key}={v} is too large")))?;
    if !(suffix.is_empty() || suffix == "s") {
        let msg = format!(
            "{key}={v}: httpd reads {key} as whole seconds and ignores the unit, so this means {n} seconds"
        );
        let hint = if suffix.eq_ignore_ascii_case("ms") {
            let secs = n.div_ceil(1000).max(1);
            format!(
                "write {key}={secs} for about {n} ms (httpd's {key} has one-second resolution), or {key}={n} if you really mean {n} seconds"
            )
        } else {
            format!("write {key}={n} (seconds, no unit)")
        };
        return Err(ParamIssue::error(msg).hint(hint));
    }
    if n < min {
        return Err(ParamIssue::error(format!(
            "{key}={v}: must be at least {min}"
        )));
    }
    Ok(Duration::from_secs(n))
}

/// httpd's `ap_timeout_parameter_parse`: a number with an optional unit `ms`, `s`, `mi`, `h`
/// (only the leading unit letters are checked, case-sensitively).
pub fn timeout_with_unit(key: &str, v: &str, default_ms: bool) -> Result<Duration, ParamIssue> {
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| {
        ParamIssue::error(format!("{key}={v} is not a number with an optional unit"))
            .hint(format!("write e.g. {key}=10 (seconds) or {key}=500ms"))
    })?;
    let bad = || {
        ParamIssue::error(format!(
            "{key}={v}: unknown unit '{unit}' (httpd accepts ms, s, mi, h, in lower case)"
        ))
        .hint(format!("write {key}={n}{}", unit.to_ascii_lowercase()))
    };
    let d = if unit.is_empty() {
        if default_ms {
            Duration::from_millis(n)
        } else {
            Duration::from_secs(n)
        }
    } else {
        let b = unit.as_bytes();
        match b[0] {
            b's' => Duration::from_secs(n),
            b'h' => Duration::from_secs(n.saturating_mul(3600)),
            b'm' => match b.get(1) {
                Some(b's') => Duration::from_millis(n),
                Some(b'i') => Duration::from_secs(n.saturating_mul(60)),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    };
    if d.is_zero() {
        return Err(ParamIssue::error(format!(
            "{key}={v}: must be at least 1 ms"
        )));
    }
    Ok(d)
}

/// Applies httpd's `status=` letters (each optionally signed; the sign persists).
pub fn apply_status(flags: &mut StatusFlags, v: &str) -> Result<(), ParamIssue> {
    let mut set = true;
    for c in v.chars() {
        match c {
            '+' => set = true,
            '-' => set = false,
            _ => {
                let up = c.to_ascii_uppercase();
                let Some((_, bit)) = StatusFlags::LETTERS.iter().find(|(l, _)| *l == up) else {
                    return Err(ParamIssue::error(format!(
                        "status={v}: unknown status letter '{c}'"
                    ))
                    .hint(
                        "status letters are D S I H R E N C, each optionally prefixed with + or -",
                    ));
                };
                if set {
                    flags.0 |= bit;
                } else {
                    flags.0 &= !bit;
                }
            }
        }
    }
    Ok(())
}

fn unknown_key(key: &str, known: &[&str], other: &[&str], what: &str) -> ParamIssue {
    let lower = key.to_ascii_lowercase();
    if lower == "lbfactor" {
        return ParamIssue::error(format!(
            "unknown {what} parameter 'lbfactor' (httpd refuses it too: it is the mod_jk name)"
        ))
        .hint("write loadfactor=");
    }
    if other.contains(&lower.as_str()) {
        let kind = if what == "member" {
            "balancer"
        } else {
            "member"
        };
        return ParamIssue::error(format!(
            "'{key}' is a {kind} parameter, not a {what} parameter here"
        ));
    }
    let mut e = ParamIssue::error(format!("unknown {what} parameter '{key}'"));
    if let Some(c) = closest(key, known.iter().copied()) {
        e = e.hint(format!("did you mean {c}=?"));
    }
    e
}

/// Sets one member parameter as httpd's `set_worker_param` would.
pub fn set_member_param(p: &mut MemberParams, key: &str, v: &str) -> ParamResult {
    let k = key.to_ascii_lowercase();
    match k.as_str() {
        "loadfactor" => {
            p.loadfactor = parse_loadfactor(v)?;
        }
        "lbset" => p.lbset = int_in(key, v, 0, 99)? as u8,
        "route" | "redirect" => {
            if v.len() > MAX_NAME {
                return Err(ParamIssue::error(format!(
                    "{k} is {} characters long; httpd allows at most {MAX_NAME}",
                    v.len()
                )));
            }
            if k == "route" {
                p.route = v.to_string();
            } else {
                p.redirect = v.to_string();
            }
        }
        "status" => apply_status(&mut p.status, v)?,
        "retry" => p.retry = atoi_seconds(key, v, 0)?,
        "timeout" => p.timeout = Some(atoi_seconds(key, v, 1)?),
        "connectiontimeout" => p.connection_timeout = Some(timeout_with_unit(key, v, false)?),
        "acquire" => p.acquire = Some(timeout_with_unit(key, v, true)?),
        "ping" => p.ping = Some(timeout_with_unit(key, v, false)?),
        "disablereuse" => p.disable_reuse = on_off(key, v)?,
        "enablereuse" => p.disable_reuse = !on_off(key, v)?,
        "keepalive" => p.tcp_keepalive = on_off(key, v)?,
        "max" => p.max = Some(int_in(key, v, 0, 1_000_000)? as u32),
        "smax" => p.smax = Some(int_in(key, v, 0, 1_000_000)? as u32),
        "min" => p.min = Some(int_in(key, v, 0, 1_000_000)? as u32),
        "ttl" => p.ttl = Some(atoi_seconds(key, v, 1)?),
        "flushpackets" => {
            let l = v.to_ascii_lowercase();
            if !matches!(l.as_str(), "on" | "off" | "auto") {
                return Err(ParamIssue::error(format!(
                    "flushpackets must be on, off or auto, not '{v}'"
                )));
            }
            p.flushpackets = Some(l);
        }
        "flushwait" => {
            p.flushwait = Some(Duration::from_millis(int_in(key, v, 0, 1_000_000)? as u64))
        }
        "iobuffersize" | "receivebuffersize" | "responsefieldsize" => {
            let n = int_in(key, v, 0, i32::MAX as i64)? as u32;
            if n != 0 && n < 512 {
                return Err(ParamIssue::error(format!(
                    "{k}={v}: must be at least 512 (or 0 for the default)"
                )));
            }
            if k == "iobuffersize" {
                p.iobuffersize = Some(n);
            } else if k == "receivebuffersize" {
                p.receivebuffersize = Some(n);
            }
        }
        "upgrade" => p.upgrade = Some(v.to_string()),
        "secret" => p.secret = Some(v.to_string()),
        "addressttl" => p.addressttl = Some(int_in(key, v, -1, i32::MAX as i64)?),
        "hcmethod" => {
            let Some(m) = HC_METHODS.iter().find(|m| m.eq_ignore_ascii_case(v)) else {
                return Err(ParamIssue::error(format!("hcmethod={v}: unknown method"))
                    .hint("use one of None, TCP, OPTIONS, HEAD, GET, OPTIONS11, HEAD11, GET11"));
            };
            p.hc.method = (*m).to_string();
        }
        "hcuri" => {
            if v.len() > MAX_NAME {
                return Err(ParamIssue::error(format!(
                    "hcuri is {} characters long; httpd allows at most {MAX_NAME}",
                    v.len()
                )));
            }
            p.hc.uri = Some(v.to_string());
        }
        "hcinterval" => {
            let d = timeout_with_unit(key, v, false)?;
            if d < Duration::from_millis(100) {
                return Err(ParamIssue::error(format!(
                    "hcinterval={v}: must be at least 100ms"
                )));
            }
            p.hc.interval = d;
        }
        "hcpasses" => p.hc.passes = int_in(key, v, 1, 1_000_000)? as u32,
        "hcfails" => p.hc.fails = int_in(key, v, 1, 1_000_000)? as u32,
        "hcexpr" => p.hc.expr = Some(v.to_string()),
        "hctemplate" => p.hc.template = Some(v.to_string()),
        _ => return Err(unknown_key(key, MEMBER_KEYS, BALANCER_KEYS, "member")),
    }
    Ok(None)
}

fn parse_loadfactor(v: &str) -> Result<u32, ParamIssue> {
    let bad = || {
        ParamIssue::error(format!(
            "loadfactor={v}: must be a number from 1 to 100 with at most two decimals"
        ))
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let i: u32 = int.parse().map_err(|_| bad())?;
    let f: u32 = if frac.is_empty() {
        0
    } else {
        let f: u32 = frac.parse().map_err(|_| bad())?;
        if frac.len() == 1 { f * 10 } else { f }
    };
    let x = i.saturating_mul(100).saturating_add(f);
    if !(100..=10000).contains(&x) {
        return Err(bad());
    }
    Ok(x)
}

/// Sets one balancer parameter as httpd's `set_balancer_param` would.
pub fn set_balancer_param(p: &mut BalancerParams, key: &str, v: &str) -> ParamResult {
    let k = key.to_ascii_lowercase();
    let mut warn = None;
    match k.as_str() {
        "stickysession" => {
            let (cookie, url) = v.split_once('|').unwrap_or((v, v));
            let mut trunc = |s: &str| -> String {
                if s.chars().count() > MAX_NAME {
                    let t: String = s.chars().take(MAX_NAME).collect();
                    warn = Some(
                        ParamIssue::warning(format!(
                            "stickysession name '{s}' is {} characters long; httpd silently truncates it to {MAX_NAME} ('{t}'), and so does balancerd",
                            s.chars().count()
                        ))
                        .hint("use a name of at most 63 characters so the config says what it does"),
                    );
                    t
                } else {
                    s.to_string()
                }
            };
            let cookie = trunc(cookie);
            let url_param = trunc(url);
            if cookie.is_empty() {
                return Err(ParamIssue::error("stickysession needs a name"));
            }
            p.sticky = Some(StickySession {
                cookie: cookie.into(),
                url_param: url_param.into(),
            });
        }
        "stickysessionsep" => {
            if v.len() == 1 {
                p.sticky_sep = Some(Some(v.as_bytes()[0]));
            } else if v.eq_ignore_ascii_case("off") {
                p.sticky_sep = Some(None);
            } else {
                return Err(ParamIssue::error(format!(
                    "stickysessionsep={v}: must be a single character or Off"
                )));
            }
        }
        "scolonpathdelim" => p.scolon_path_delim = on_off(key, v)?,
        "nofailover" => p.no_failover = on_off(key, v)?,
        "maxattempts" => p.max_attempts = Some(int_in(key, v, 0, 1000)? as u32),
        "forcerecovery" => p.force_recovery = Some(on_off(key, v)?),
        "failonstatus" => {
            let mut codes = Vec::new();
            for c in v.split([',', ' ']).filter(|s| !s.is_empty()) {
                let n = int_in("failonstatus", c, 100, 599)?;
                codes.push(n as u16);
            }
            if codes.is_empty() {
                return Err(ParamIssue::error(
                    "failonstatus needs at least one status code",
                ));
            }
            p.fail_on_status = codes;
        }
        "failontimeout" => p.fail_on_timeout = on_off(key, v)?,
        "lbmethod" => {
            p.lbmethod = match v.to_ascii_lowercase().as_str() {
                "byrequests" => LbMethod::ByRequests,
                "bybusyness" => LbMethod::ByBusyness,
                "bytraffic" => LbMethod::ByTraffic,
                "heartbeat" => {
                    return Err(ParamIssue::error(
                        "lbmethod=heartbeat needs mod_heartmonitor, which balancerd does not implement",
                    )
                    .hint("use byrequests, bybusyness or bytraffic"));
                }
                _ => {
                    let mut e = ParamIssue::error(format!("lbmethod={v}: unknown method"));
                    if let Some(c) = closest(v, ["byrequests", "bybusyness", "bytraffic"]) {
                        e = e.hint(format!("did you mean lbmethod={c}?"));
                    }
                    return Err(e);
                }
            }
        }
        "timeout" => p.timeout = Some(atoi_seconds(key, v, 1)?),
        "growth" => p.growth = int_in(key, v, 0, 100)? as u32,
        "nonce" => {
            p.nonce = if v.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(v.to_string())
            }
        }
        _ => return Err(unknown_key(key, BALANCER_KEYS, MEMBER_KEYS, "balancer")),
    }
    Ok(warn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadfactor_units() {
        assert_eq!(parse_loadfactor("1"), Ok(100));
        assert_eq!(parse_loadfactor("2.25"), Ok(225));
        assert_eq!(parse_loadfactor("2.5"), Ok(250));
        assert!(parse_loadfactor("0.5").is_err());
        assert!(parse_loadfactor("101").is_err());
        assert!(parse_loadfactor("1.234").is_err());
    }

    #[test]
    fn timeout_ms_trap_is_refused() {
        let mut p = MemberParams::default();
        let e = set_member_param(&mut p, "timeout", "500ms").unwrap_err();
        assert!(e.message.contains("means 500 seconds"), "{}", e.message);
        assert!(e.hint.unwrap().contains("timeout=1"));
        assert_eq!(set_member_param(&mut p, "timeout", "5s"), Ok(None));
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn connectiontimeout_units() {
        assert_eq!(
            timeout_with_unit("c", "10000ms", false),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            timeout_with_unit("c", "10sec", false),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            timeout_with_unit("c", "2mi", false),
            Ok(Duration::from_secs(120))
        );
        assert!(timeout_with_unit("c", "10000MS", false).is_err());
        assert_eq!(
            timeout_with_unit("a", "200", true),
            Ok(Duration::from_millis(200))
        );
    }

    #[test]
    fn status_sign_persists() {
        let mut f = StatusFlags::default();
        apply_status(&mut f, "D-E+H").unwrap();
        assert!(f.has(StatusFlags::DISABLED) && f.has(StatusFlags::HOT_STANDBY));
        apply_status(&mut f, "-DH").unwrap();
        assert_eq!(f.0, 0);
        assert!(apply_status(&mut f, "X").is_err());
    }

    #[test]
    fn lbfactor_hint() {
        let mut p = MemberParams::default();
        let e = set_member_param(&mut p, "lbfactor", "2").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("write loadfactor="));
    }

    #[test]
    fn sticky_forms() {
        let mut b = BalancerParams::default();
        set_balancer_param(&mut b, "stickysession", "JSESSIONID|jsessionid").unwrap();
        let s = b.sticky.clone().unwrap();
        assert_eq!((&*s.cookie, &*s.url_param), ("JSESSIONID", "jsessionid"));
        let long = "A".repeat(80);
        let w = set_balancer_param(&mut b, "stickysession", &long).unwrap();
        assert!(w.is_some());
        assert_eq!(b.sticky.unwrap().cookie.len(), 63);
    }
}

/// The stages `RequestReadTimeout` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStageName {
    /// The TLS handshake (balancerd has a fixed handshake limit).
    Handshake,
    /// The request head.
    Header,
    /// The request body.
    Body,
}

/// One `RequestReadTimeout` word as mod_reqtimeout reads it: `header=20-40,MinRate=500`,
/// `body=10`, `header=0` (disabled, `None`). A range needs `MinRate`; the maximum must be
/// larger than the initial timeout.
pub fn request_read_timeout(word: &str) -> Result<(ReadStageName, Option<ReadStage>), ParamIssue> {
    let fail = |why: &str| {
        ParamIssue::error(format!("RequestReadTimeout {word}: {why}"))
            .hint("write e.g. header=20-40,MinRate=500 body=20,MinRate=500")
    };
    let (key, val) = word
        .split_once('=')
        .ok_or_else(|| fail("a parameter is key=value"))?;
    let stage = match key.to_ascii_lowercase().as_str() {
        "handshake" => ReadStageName::Handshake,
        "header" => ReadStageName::Header,
        "body" => ReadStageName::Body,
        _ => return Err(fail("unknown stage (handshake, header or body)")),
    };
    let lower = val.to_ascii_lowercase();
    let (times, rate) = match lower.find(",minrate=") {
        Some(i) => (&val[..i], Some(&val[i + ",minrate=".len()..])),
        None => (val, None),
    };
    let secs = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| fail("not a whole number of seconds"))
    };
    let min_rate = match rate {
        Some(r) => match r.parse::<u32>() {
            Ok(0) => return Err(fail("MinRate must be larger than 0")),
            Ok(n) => n,
            Err(_) => return Err(fail("MinRate is not a whole number")),
        },
        None => 0,
    };
    let (initial, max) = match times.split_once('-') {
        Some(_) if rate.is_none() => return Err(fail("a timeout range needs MinRate")),
        Some((a, b)) => (secs(a)?, Some(secs(b)?)),
        None => (secs(times)?, None),
    };
    if let Some(m) = max
        && m != 0
        && initial >= m
    {
        return Err(fail("the maximum must be larger than the initial timeout"));
    }
    if initial == 0 {
        return Ok((stage, None));
    }
    Ok((
        stage,
        Some(ReadStage {
            initial: Duration::from_secs(initial),
            max: max.filter(|m| *m > 0).map(Duration::from_secs),
            min_rate,
        }),
    ))
}
