//! mod_rewrite at request time, in server context, before `ProxyPass` (mod_rewrite's
//! translate hook runs first in httpd). Rules run in order against the %-decoded URL-path;
//! each rule's conditions are ANDed (`[OR]` joins one with the next); `$N` are the rule's
//! groups, `%N` the last matching condition's. The outcome: go on with the (possibly new)
//! path, proxy (`[P]`), redirect (`[R]` or a substitution with a scheme), 403 (`[F]`) or
//! 410 (`[G]`). Pinned against httpd in `tests/httpd_diff.rs`.

use crate::config::rewrite::{CmpOp, CondPattern, Piece, RewriteRule, ServerVar};
use crate::h1::fields::{FieldsView, field_str};

/// What the request knows that conditions and substitutions read.
pub(super) struct RequestFacts<'a> {
    pub(super) fields: FieldsView<'a>,
    pub(super) parts: &'a http::request::Parts,
    pub(super) tls: bool,
    pub(super) peer: std::net::SocketAddr,
    pub(super) local_port: u16,
    pub(super) server_name: &'a str,
    /// `UseCanonicalName On`: the name self-referential URLs and `SERVER_NAME` use.
    pub(super) canonical: Option<&'a str>,
}

/// What the rules decided.
pub(super) enum Outcome<'s> {
    /// No rule changed anything.
    Unchanged,
    /// A new path (and query) goes on to `ProxyPass`.
    NewPath(String, Option<String>),
    /// `[P]`: the rule, and the path and query after its target's prefix.
    Proxy(&'s RewriteRule, String, Option<String>),
    /// A redirect with this status to this URL.
    Redirect(u16, String),
    /// `[F]`.
    Forbidden,
    /// `[G]`.
    Gone,
}

/// Runs `rules` on `path` (decoded). Returns the outcome and the variables `E=` set.
#[inline]
pub(super) fn run<'s>(
    rules: &'s [RewriteRule],
    path: &str,
    facts: &RequestFacts<'_>,
) -> (Outcome<'s>, Vec<(String, String)>) {
    run_traced(rules, path, facts, None)
}

/// [`run`], noting in `applied` the index of every rule whose pattern and conditions held
/// (for `balancerd explain`).
pub(super) fn run_traced<'s>(
    rules: &'s [RewriteRule],
    path: &str,
    facts: &RequestFacts<'_>,
    mut applied: Option<&mut Vec<usize>>,
) -> (Outcome<'s>, Vec<(String, String)>) {
    let mut env = Vec::new();
    let mut current = path.to_string();
    let mut query: Option<String> = facts.parts.uri.query().map(str::to_string);
    let mut changed = false;
    for (i, rule) in rules.iter().enumerate() {
        let caps = rule.pattern.captures(&current);
        if caps.is_some() == rule.negate {
            continue;
        }
        let rule_groups: Vec<String> = caps
            .map(|c| {
                c.iter()
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let Some(cond_groups) = conds_hold(rule, &rule_groups, facts, &current, query.as_deref())
        else {
            continue;
        };
        if let Some(a) = applied.as_deref_mut() {
            a.push(i);
        }
        let expand = |pieces: &[Piece]| {
            expand(
                pieces,
                &rule_groups,
                &cond_groups,
                facts,
                &current,
                query.as_deref(),
            )
        };
        for (k, v) in &rule.flags.env {
            env.push((k.clone(), expand(v)));
        }
        if rule.flags.forbidden {
            return (Outcome::Forbidden, env);
        }
        if rule.flags.gone {
            return (Outcome::Gone, env);
        }
        let Some(subst) = &rule.subst else {
            if rule.flags.last {
                break;
            }
            continue;
        };
        let s = expand(subst);
        let (new_path, new_query) = match s.split_once('?') {
            Some((p, q)) => {
                let q = match (&query, rule.flags.qsa) {
                    (Some(orig), true) if !orig.is_empty() => {
                        if q.is_empty() {
                            orig.clone()
                        } else {
                            format!("{q}&{orig}")
                        }
                    }
                    _ => q.to_string(),
                };
                (p.to_string(), (!q.is_empty()).then_some(q))
            }
            None => (s.clone(), if rule.flags.qsd { None } else { query.clone() }),
        };
        if let Some(target) = &rule.proxy {
            let rest = new_path
                .get(target.prefix.len()..)
                .unwrap_or("")
                .to_string();
            return (Outcome::Proxy(rule, rest, new_query), env);
        }
        if rule.flags.redirect.is_some() || new_path.contains("://") {
            let status = rule.flags.redirect.unwrap_or(302);
            let mut url = if new_path.starts_with('/') {
                let host = facts
                    .canonical
                    .or_else(|| {
                        facts
                            .fields
                            .role_value(crate::h1::fields::FieldRole::Host)
                            .and_then(field_str)
                    })
                    .unwrap_or(facts.server_name);
                format!(
                    "{}://{host}{new_path}",
                    if facts.tls { "https" } else { "http" }
                )
            } else {
                new_path.clone()
            };
            if !rule.flags.no_escape {
                url = escape_url(&url);
            }
            if let Some(q) = &new_query {
                url.push('?');
                url.push_str(q);
            }
            return (Outcome::Redirect(status, url), env);
        }
        current = new_path;
        query = new_query;
        changed = true;
        if rule.flags.last {
            break;
        }
    }
    if changed {
        (Outcome::NewPath(current, query), env)
    } else {
        (Outcome::Unchanged, env)
    }
}

/// The conditions of `rule`: `Some(groups of the last matching regex condition)` when they
/// hold.
fn conds_hold(
    rule: &RewriteRule,
    rule_groups: &[String],
    facts: &RequestFacts<'_>,
    path: &str,
    query: Option<&str>,
) -> Option<Vec<String>> {
    let mut cond_groups: Vec<String> = Vec::new();
    let mut i = 0;
    let conds = &rule.conds;
    while i < conds.len() {
        // An [OR] group: this condition and the ones it joins.
        let mut group_ok = false;
        loop {
            let c = &conds[i];
            if !group_ok {
                let test = expand(&c.test, rule_groups, &cond_groups, facts, path, query);
                let (ok, groups) = match &c.pattern {
                    CondPattern::Regex(re) => match re.captures(&test) {
                        Some(cap) => (
                            true,
                            Some(
                                cap.iter()
                                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
                                    .collect(),
                            ),
                        ),
                        None => (false, None),
                    },
                    CondPattern::Lexical(op, v) => {
                        (compare(test.as_str().cmp(v.as_str()), *op), None)
                    }
                    CondPattern::Integer(op, v) => (
                        test.trim()
                            .parse::<i64>()
                            .is_ok_and(|n| compare(n.cmp(v), *op)),
                        None,
                    ),
                };
                let ok = ok != c.negate;
                if ok {
                    group_ok = true;
                    if let (Some(g), false) = (groups, c.negate) {
                        cond_groups = g;
                    }
                }
            }
            if !c.or_next || i + 1 >= conds.len() {
                break;
            }
            i += 1;
        }
        if !group_ok {
            return None;
        }
        i += 1;
    }
    Some(cond_groups)
}

fn compare(o: std::cmp::Ordering, op: CmpOp) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Lt => o == Less,
        CmpOp::Gt => o == Greater,
        CmpOp::Eq => o == Equal,
        CmpOp::Le => o != Greater,
        CmpOp::Ge => o != Less,
        CmpOp::Ne => o != Equal,
    }
}

fn expand(
    pieces: &[Piece],
    rule_groups: &[String],
    cond_groups: &[String],
    facts: &RequestFacts<'_>,
    path: &str,
    query: Option<&str>,
) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::RuleRef(n) => out.push_str(rule_groups.get(*n).map_or("", String::as_str)),
            Piece::CondRef(n) => out.push_str(cond_groups.get(*n).map_or("", String::as_str)),
            Piece::Var(v) => push_var(&mut out, v, facts, path, query),
        }
    }
    out
}

fn push_var(
    out: &mut String,
    v: &ServerVar,
    f: &RequestFacts<'_>,
    path: &str,
    query: Option<&str>,
) {
    use std::fmt::Write as _;
    match v {
        ServerVar::Header(name) => {
            let value = f
                .fields
                .iter()
                .filter(|(k, _, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v, _)| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&value);
        }
        ServerVar::RequestUri => out.push_str(path),
        ServerVar::QueryString => out.push_str(query.unwrap_or("")),
        ServerVar::Https => out.push_str(if f.tls { "on" } else { "off" }),
        ServerVar::RemoteAddr => {
            let _ = write!(out, "{}", f.peer.ip());
        }
        ServerVar::RemotePort => {
            let _ = write!(out, "{}", f.peer.port());
        }
        ServerVar::RequestMethod => out.push_str(f.parts.method.as_str()),
        ServerVar::RequestScheme => out.push_str(if f.tls { "https" } else { "http" }),
        ServerVar::ServerName => {
            let host = f.canonical.or_else(|| {
                f.fields
                    .role_value(crate::h1::fields::FieldRole::Host)
                    .and_then(field_str)
            });
            let host = host.map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n));
            out.push_str(host.unwrap_or(f.server_name));
        }
        ServerVar::ServerPort => {
            let _ = write!(out, "{}", f.local_port);
        }
        ServerVar::ServerProtocol => {
            let _ = write!(out, "{:?}", f.parts.version);
        }
        ServerVar::TheRequest => {
            let _ = write!(
                out,
                "{} {} {:?}",
                f.parts.method, f.parts.uri, f.parts.version
            );
        }
    }
}

/// mod_rewrite's escaping of a redirect URL (without `[NE]`): characters outside a URL's
/// own set, `%` and `#` included, are %-encoded.
fn escape_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_alphanumeric() || b"/:;@&=+$,-_.!~*'()?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
