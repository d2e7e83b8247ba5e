//! Response rewriting: `ProxyPassReverse` on `Location`, `Content-Location` and `URI`;
//! `ProxyPassReverseCookiePath` / `-Domain` on `Set-Cookie` (httpd-semantics §9); and the
//! WebDAV `Destination` request header, mapped from the public URL to the member's.

use crate::balancer::BalancerRt;
use crate::config::model::{ReverseMap, ReverseRules};

/// Maps a `Location`-style value back to the public URL space, first matching rule wins.
/// `balancers` resolves `balancer://name/part` rules; `client_host` makes the result
/// absolute as httpd does.
pub fn map_location(
    value: &str,
    rule_sets: &[&ReverseRules],
    balancers: &[BalancerRt],
    client_host: &str,
) -> Option<String> {
    for rules in rule_sets {
        for r in &rules.location {
            if let Some(out) = map_one(value, r, balancers, client_host) {
                return Some(out);
            }
        }
    }
    None
}

fn absolute(public: &str, rest: &str, client_host: &str) -> String {
    if public.starts_with('/') {
        format!("http://{client_host}{public}{rest}")
    } else {
        format!("{public}{rest}")
    }
}

fn map_one(
    value: &str,
    r: &ReverseMap,
    balancers: &[BalancerRt],
    client_host: &str,
) -> Option<String> {
    let internal = r.internal.as_str();
    if internal.len() > 11
        && internal
            .get(..11)
            .is_some_and(|p| p.eq_ignore_ascii_case("balancer://"))
    {
        let rest = &internal[11..];
        let (name, part) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let b = balancers.iter().find(|b| {
            b.full_name
                .strip_prefix("balancer://")
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })?;
        for m in &b.members {
            let url = &*m.name;
            if value
                .get(..url.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(url))
            {
                let after = &value[url.len()..];
                if let Some(tail) = after.strip_prefix(part) {
                    return Some(absolute(&r.public, tail, client_host));
                }
            }
        }
        return None;
    }
    if internal.starts_with('/') {
        // Compare the path part only.
        let path_start = value
            .find("://")
            .and_then(|i| value[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(0);
        let path = &value[path_start..];
        return path
            .strip_prefix(internal)
            .map(|tail| absolute(&r.public, tail, client_host));
    }
    if value
        .get(..internal.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(internal))
    {
        return Some(absolute(&r.public, &value[internal.len()..], client_host));
    }
    None
}

/// Rewrites the `path=` and `domain=` attributes of a `Set-Cookie` value. The whole
/// attribute value is replaced (httpd): `Path=/rcs/app` with `/rcs → /t1/rcs` gives
/// `Path=/t1/rcs`.
pub fn map_cookie(value: &str, rule_sets: &[&ReverseRules]) -> Option<String> {
    if rule_sets
        .iter()
        .all(|r| r.cookie_path.is_empty() && r.cookie_domain.is_empty())
    {
        return None;
    }
    let mut out = String::with_capacity(value.len() + 16);
    let mut changed = false;
    for (i, tok) in value.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let lead = tok.len() - tok.trim_start().len();
        let t = &tok[lead..];
        out.push_str(&tok[..lead]);
        let replaced = t.split_once('=').and_then(|(k, v)| {
            if k.eq_ignore_ascii_case("path") {
                rule_sets
                    .iter()
                    .flat_map(|r| r.cookie_path.iter())
                    .find(|r| v.starts_with(r.internal.as_str()))
                    .map(|r| format!("{k}={}", r.public))
            } else if k.eq_ignore_ascii_case("domain") {
                rule_sets
                    .iter()
                    .flat_map(|r| r.cookie_domain.iter())
                    .find(|r| {
                        v.get(..r.internal.len())
                            .is_some_and(|p| p.eq_ignore_ascii_case(&r.internal))
                    })
                    .map(|r| format!("{k}={}", r.public))
            } else {
                None
            }
        });
        match replaced {
            Some(s) => {
                out.push_str(&s);
                changed = true;
            }
            None => out.push_str(t),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Origin;
    use std::sync::Arc;

    fn rules(path: (&str, &str)) -> ReverseRules {
        let f: Arc<str> = Arc::from("t");
        ReverseRules {
            cookie_path: vec![ReverseMap {
                public: path.1.into(),
                internal: path.0.into(),
                origin: Origin::new(&f, 1, 1),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn cookie_path_whole_value() {
        let r = rules(("/rcs", "/t1/rcs"));
        assert_eq!(
            map_cookie(
                "JSESSIONID=abc.RCS2; Path=/rcs/app; Domain=backend.local",
                &[&r]
            )
            .as_deref(),
            Some("JSESSIONID=abc.RCS2; Path=/t1/rcs; Domain=backend.local")
        );
        assert_eq!(map_cookie("a=b; Path=/other", &[&r]), None);
    }
}
