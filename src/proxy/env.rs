//! The `BALANCER_*` variables and the `Header` / `RequestHeader` rules that read them
//! (mod_headers semantics, httpd-semantics §4.9 and §10).

use crate::config::model::{
    FormatPart, HeaderAction, HeaderCondition, HeaderRule, HeaderValueFormat,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The variables mod_proxy_balancer sets for one request.
#[derive(Debug, Default, Clone)]
pub struct BalancerVars {
    /// `BALANCER_NAME`.
    pub name: Option<Arc<str>>,
    /// `BALANCER_WORKER_NAME`.
    pub worker_name: Option<Arc<str>>,
    /// `BALANCER_WORKER_ROUTE` ("" when the member has none).
    pub worker_route: Option<Arc<str>>,
    /// `BALANCER_SESSION_STICKY`.
    pub session_sticky: Option<Arc<str>>,
    /// `BALANCER_SESSION_ROUTE`.
    pub session_route: Option<Arc<str>>,
    /// `BALANCER_ROUTE_CHANGED` (set to "1").
    pub route_changed: bool,
    /// `BALANCERD_ERROR`: the kind of the failure when forwarding failed
    /// (`upstream::error::ErrorKind::as_str`: `member-timeout`, `client-body-invalid`, …).
    pub error: Option<&'static str>,
    /// Variables a `RewriteRule`'s `E=` set (empty unless one did).
    pub extra: Vec<(String, String)>,
}

impl BalancerVars {
    /// A variable's value, `None` when unset.
    pub fn get(&self, var: &str) -> Option<&str> {
        match var {
            "BALANCER_NAME" => self.name.as_deref(),
            "BALANCER_WORKER_NAME" => self.worker_name.as_deref(),
            "BALANCER_WORKER_ROUTE" => self.worker_route.as_deref(),
            "BALANCER_SESSION_STICKY" => self.session_sticky.as_deref(),
            "BALANCER_SESSION_ROUTE" => self.session_route.as_deref(),
            "BALANCER_ROUTE_CHANGED" => self.route_changed.then_some("1"),
            "BALANCERD_ERROR" => self.error,
            _ => self
                .extra
                .iter()
                .rev()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// Expands a value format: `%{VAR}e` (or `(null)`), `%{NAME}i`, `%D`, `%t`.
pub fn expand(
    f: &HeaderValueFormat,
    vars: Option<&BalancerVars>,
    req: &HeaderMap,
    started: Instant,
) -> String {
    let mut out = String::new();
    for p in &f.parts {
        match p {
            FormatPart::Literal(s) => out.push_str(s),
            FormatPart::Env(v) => {
                let val = vars.and_then(|x| x.get(v)).unwrap_or("(null)");
                // CR and LF become spaces (mod_headers).
                out.extend(
                    val.chars()
                        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
                );
            }
            FormatPart::RequestHeader(h) => {
                if let Some(v) = req.get(h.as_str()).and_then(|v| v.to_str().ok()) {
                    out.push_str(v);
                }
            }
            FormatPart::Duration => {
                out.push_str("D=");
                out.push_str(&started.elapsed().as_micros().to_string());
            }
            FormatPart::Time => {
                let us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                out.push_str("t=");
                out.push_str(&us.to_string());
            }
        }
    }
    out
}

fn condition_holds(c: &HeaderCondition, vars: Option<&BalancerVars>) -> bool {
    match c {
        HeaderCondition::None | HeaderCondition::Early => true,
        HeaderCondition::Env(v) => vars.and_then(|x| x.get(v)).is_some(),
        HeaderCondition::NotEnv(v) => vars.and_then(|x| x.get(v)).is_none(),
    }
}

/// True when one of `rules` would act on a member's response (its condition holds), i.e.
/// the response's fields cannot be passed on as received.
pub fn any_rule_applies<'a>(
    rules: impl IntoIterator<Item = &'a HeaderRule>,
    vars: Option<&BalancerVars>,
) -> bool {
    rules
        .into_iter()
        .any(|r| condition_holds(&r.condition, vars))
}

/// Applies `rules` to `headers`. On balancerd's own error responses only `always` rules
/// run (mod_headers' onsuccess never touches them).
pub fn apply_rules<'a>(
    rules: impl IntoIterator<Item = &'a HeaderRule>,
    headers: &mut HeaderMap,
    vars: Option<&BalancerVars>,
    req: &HeaderMap,
    own_error: bool,
    started: Instant,
) {
    for r in rules {
        if own_error && !r.always {
            continue;
        }
        if !condition_holds(&r.condition, vars) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(r.name.as_bytes()) else {
            continue;
        };
        let value = || -> Option<HeaderValue> {
            HeaderValue::from_str(&expand(&r.value, vars, req, started)).ok()
        };
        match &r.action {
            HeaderAction::Set => {
                if let Some(v) = value() {
                    headers.insert(name, v);
                }
            }
            HeaderAction::SetIfEmpty => {
                let empty = headers.get(&name).is_none_or(|v| v.is_empty());
                if empty && let Some(v) = value() {
                    headers.insert(name, v);
                }
            }
            HeaderAction::Add => {
                if let Some(v) = value() {
                    headers.append(name, v);
                }
            }
            HeaderAction::Append | HeaderAction::Merge => {
                let new = expand(&r.value, vars, req, started);
                let old: Vec<String> = headers
                    .get_all(&name)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_string))
                    .collect();
                let joined = old.join(", ");
                let combined = if joined.is_empty() {
                    new
                } else if matches!(r.action, HeaderAction::Merge) && has_token(&joined, &new) {
                    joined
                } else {
                    format!("{joined}, {new}")
                };
                if let Ok(v) = HeaderValue::from_str(&combined) {
                    headers.insert(name, v);
                }
            }
            HeaderAction::Unset => {
                headers.remove(&name);
            }
            HeaderAction::Edit {
                regex,
                replacement,
                all,
            } => {
                let rep = expand(replacement, vars, req, started);
                let vals: Vec<HeaderValue> = headers
                    .get_all(&name)
                    .iter()
                    .map(|v| {
                        let s = v.to_str().unwrap_or("");
                        let out = if *all {
                            regex.replace_all(s, rep.as_str())
                        } else {
                            regex.replace(s, rep.as_str())
                        };
                        HeaderValue::from_str(&out).unwrap_or_else(|_| v.clone())
                    })
                    .collect();
                if !vals.is_empty() {
                    headers.remove(&name);
                    for v in vals {
                        headers.append(name.clone(), v);
                    }
                }
            }
        }
    }
}

/// True when `token` is one of the comma-separated, quote-aware tokens of `value`.
fn has_token(value: &str, token: &str) -> bool {
    let mut in_q = false;
    let mut start = 0;
    let b = value.as_bytes();
    for i in 0..=b.len() {
        let end = i == b.len();
        if !end && b[i] == b'"' {
            in_q = !in_q;
        }
        if end || (b[i] == b',' && !in_q) {
            if value[start..i].trim() == token {
                return true;
            }
            start = i + 1;
        }
    }
    false
}

impl crate::telemetry::access_log::LogVars for BalancerVars {
    fn get(&self, name: &str) -> Option<&str> {
        BalancerVars::get(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::headers::parse_format;

    #[test]
    fn null_for_unset_and_route_cookie() {
        let f = parse_format("ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1").unwrap();
        let vars = BalancerVars {
            worker_route: Some(Arc::from("T1RWS2")),
            ..Default::default()
        };
        let h = HeaderMap::new();
        assert_eq!(
            expand(&f, Some(&vars), &h, Instant::now()),
            "ROUTEID=.T1RWS2; path=/t1"
        );
        let f = parse_format("%{NOPE}e").unwrap();
        assert_eq!(expand(&f, Some(&vars), &h, Instant::now()), "(null)");
        assert!(has_token("a, \"b,c\", d", "d"));
        assert!(!has_token("a, \"b,c\"", "c"));
    }
}
