//! Lints httpd never gives: problems that load fine but route traffic in a way the admin
//! almost certainly did not mean (shadowed `ProxyPass`, sticky cookies that never come back,
//! rules httpd applies more widely than they appear to: a `<Proxy>` section matches by prefix). Run on the finished model, so both
//! dialects get them.

use super::diag::{Diagnostics, Origin};
use super::model::ScopedCookiePath;
use super::model::*;
use std::sync::Arc;

/// Runs every lint.
pub fn run(
    c: &Config,
    scoped_cookie_paths: &[ScopedCookiePath],
    saw_listen: bool,
    main_file: &Arc<str>,
    diags: &mut Diagnostics,
) {
    if !saw_listen && c.listeners.is_empty() {
        diags.note(
            &Origin::new(main_file, 1, 1),
            "no Listen directive: this file is checked on its own (as a tenant file included from the main config); it serves nothing by itself",
        );
    }
    shadowed_routes(c, diags);
    balancers(c, diags);
    tls(c, saw_listen || !c.listeners.is_empty(), diags);
    cookies(c, diags);
    // httpd matches a `<Proxy balancer://t1>` section by prefix: its rules also apply to
    // balancer://t10 and balancer://t1rcs (pinned in tests/httpd_diff.rs). balancerd scopes
    // them to the balancer named.
    for s in scoped_cookie_paths {
        let also: Vec<String> = c
            .balancers
            .iter()
            .filter(|b| b.name != s.balancer && b.name.starts_with(s.balancer.as_str()))
            .map(|b| format!("balancer://{}", b.name))
            .collect();
        if also.is_empty() {
            continue;
        }
        diags
            .warning(
                &s.origin,
                format!(
                    "ProxyPassReverseCookiePath inside <Proxy balancer://{b}>: httpd matches <Proxy> sections by prefix, so it also rewrites the cookies of {}; balancerd applies it only to balancer://{b}",
                    also.join(", "),
                    b = s.balancer
                ),
            )
            .hint("nothing to change for balancerd; under httpd, give balancers names that are not prefixes of each other");
    }
    proxy_prefix_leak(c, diags);
}

fn collapse_slashes(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut prev = false;
    for ch in p.chars() {
        if ch == '/' {
            if !prev {
                out.push(ch);
            }
            prev = true;
        } else {
            out.push(ch);
            prev = false;
        }
    }
    out
}

/// True when every path the prefix `q` matches is also matched by the prefix `p`.
fn prefix_covers(p: &str, q: &str) -> bool {
    prefix_covers_collapsed(&collapse_slashes(p), &collapse_slashes(q))
}

fn first_segment(p: &str) -> &str {
    p.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn shadowed_routes(c: &Config, diags: &mut Diagnostics) {
    let mut lists: Vec<Vec<&Route>> = vec![c.main.routes.iter().collect()];
    for v in &c.vhosts {
        lists.push(c.main.routes.iter().chain(v.rules.routes.iter()).collect());
    }
    let mut seen = std::collections::HashSet::new();
    for list in lists {
        // Only routes with the same first segment (or the root) can cover each other, so
        // index by it: 500 tenants stay linear.
        let collapsed: Vec<Option<String>> = list
            .iter()
            .map(|r| match &r.matcher {
                RouteMatch::Prefix(p) => Some(collapse_slashes(p)),
                RouteMatch::Regex(_) => None,
            })
            .collect();
        let mut by_seg: std::collections::HashMap<&str, Vec<usize>> =
            std::collections::HashMap::new();
        for (j, q) in collapsed.iter().enumerate() {
            let Some(q) = q else { continue };
            let seg = first_segment(q);
            let mut cands: Vec<usize> = by_seg.get(seg).cloned().unwrap_or_default();
            if !seg.is_empty() {
                cands.extend(by_seg.get("").into_iter().flatten().copied());
                cands.sort_unstable();
            }
            for i in cands {
                let p = collapsed[i].as_deref().unwrap_or("");
                if prefix_covers_collapsed(p, q) {
                    let (ri, rj) = (list[i], list[j]);
                    if seen.insert(rj.origin.clone()) {
                        diags
                            .warning(
                                &rj.origin,
                                format!(
                                    "ProxyPass {} can never match: the earlier ProxyPass {} at {} matches every path it would (httpd takes the first match in config order, not the longest)",
                                    rj.matcher.as_str(),
                                    ri.matcher.as_str(),
                                    ri.origin
                                ),
                            )
                            .hint(format!("move this line above {}", ri.origin));
                    }
                    break;
                }
            }
            by_seg.entry(seg).or_default().push(j);
        }
    }
}

fn prefix_covers_collapsed(p: &str, q: &str) -> bool {
    q.starts_with(p) && (p.ends_with('/') || q.len() == p.len() || q.as_bytes()[p.len()] == b'/')
}

fn routes_by_balancer(c: &Config) -> Vec<Vec<&Route>> {
    let mut out = vec![Vec::new(); c.balancers.len()];
    for r in c
        .main
        .routes
        .iter()
        .chain(c.vhosts.iter().flat_map(|v| v.rules.routes.iter()))
    {
        if let RouteTarget::Balancer { balancer, .. } = &r.target {
            out[*balancer].push(r);
        }
    }
    out
}

fn balancers(c: &Config, diags: &mut Diagnostics) {
    let by_b = routes_by_balancer(c);
    for (bi, b) in c.balancers.iter().enumerate() {
        let used = &by_b[bi];
        if b.members.is_empty() {
            // httpd starts with it and answers 503 ("No workers in balancer"); some products
            // ship a balancer empty and add members at run time.
            for r in used {
                diags
                    .warning(
                        &r.origin,
                        format!(
                            "balancer://{} has no members: every request to {} gets 503 (as in httpd: \"No workers in balancer\")",
                            b.name,
                            r.matcher.as_str()
                        ),
                    )
                    .hint(format!(
                        "add BalancerMember lines in <Proxy balancer://{}>, or check the spelling of the balancer name",
                        b.name
                    ));
            }
            if used.is_empty() {
                diags.warning(
                    &b.definitions[0],
                    format!("balancer://{} has no members", b.name),
                );
            }
            continue;
        }
        for (i, m) in b.members.iter().enumerate() {
            if m.params.route.is_empty() {
                continue;
            }
            if let Some(prev) = b.members[..i]
                .iter()
                .find(|p| p.params.route == m.params.route)
            {
                diags
                    .warning(
                        &m.origin,
                        format!(
                            "route '{}' is also used by {} ({}) in balancer://{}: sessions for that route always go to the first of them",
                            m.params.route, prev.url, prev.origin, b.name
                        ),
                    )
                    .hint("give every member of a balancer its own route");
            }
        }
        if let (Some(s), Some(o)) = (&b.params.sticky, &b.params.sticky_origin)
            && b.members.iter().all(|m| m.params.route.is_empty())
        {
            diags
                    .warning(
                        o,
                        format!(
                            "stickysession={} is set but no member of balancer://{} has a route, so no session can ever stick",
                            s.cookie, b.name
                        ),
                    )
                    .hint("add route=NAME to each BalancerMember (the text after the '.' in the session id)");
        }
        if !b.members.is_empty()
            && b.members
                .iter()
                .all(|m| m.params.status.has(StatusFlags::HOT_STANDBY))
        {
            diags
                .warning(
                    &b.definitions[0],
                    format!(
                        "every member of balancer://{} is a hot standby (status=H): they are used only because nothing else is",
                        b.name
                    ),
                )
                .hint("remove status=H from the primary member(s)");
        }
    }
}

fn tls(c: &Config, complete: bool, diags: &mut Diagnostics) {
    let t = &c.upstream_tls;
    if !t.engine {
        for b in &c.balancers {
            if let Some(m) = b.members.iter().find(|m| m.url.is_tls()) {
                let msg = format!(
                    "member {} uses https but SSLProxyEngine is not On: httpd fails every request to it with 500",
                    m.url
                );
                if complete {
                    diags.error(&m.origin, msg).hint("add SSLProxyEngine On (and SSLProxyVerify require with SSLProxyCACertificateFile)");
                } else {
                    diags.warning(&m.origin, msg).hint("the main config must set SSLProxyEngine On (the vendor guide puts it in ssl.conf)");
                }
            }
        }
    } else if !t.verify {
        let o = t.engine_origin.clone();
        if let Some(o) = o {
            diags
                .warning(
                    &o,
                    "SSLProxyEngine On without SSLProxyVerify require: member certificates are not verified (httpd's default), so anyone on the path to a member can impersonate it",
                )
                .hint("add SSLProxyVerify require and SSLProxyCACertificateFile /path/to/ca.pem");
        }
    }
}

/// A `Set-Cookie` header rule that carries the balancer route (the vendor's ROUTEID line).
struct RouteCookie<'a> {
    name: String,
    path: Option<String>,
    rule: &'a HeaderRule,
}

fn route_cookie(r: &HeaderRule) -> Option<RouteCookie<'_>> {
    if !r.name.eq_ignore_ascii_case("set-cookie") {
        return None;
    }
    if !r
        .value
        .parts
        .iter()
        .any(|p| matches!(p, FormatPart::Env(v) if v == "BALANCER_WORKER_ROUTE"))
    {
        return None;
    }
    let raw = &r.value.raw;
    let name = raw.split('=').next()?.trim().to_string();
    let path = raw.split(';').skip(1).find_map(|a| {
        let (k, v) = a.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("path")
            .then(|| v.trim().to_string())
    });
    Some(RouteCookie {
        name,
        path,
        rule: r,
    })
}

fn cookies(c: &Config, diags: &mut Diagnostics) {
    let all_prefixes: Vec<(String, &str)> = c
        .main
        .routes
        .iter()
        .chain(c.vhosts.iter().flat_map(|v| v.rules.routes.iter()))
        .filter(|r| r.target != RouteTarget::Exclude)
        .filter_map(|r| match &r.matcher {
            RouteMatch::Prefix(p) => Some((collapse_slashes(p), r.tenant().unwrap_or(""))),
            _ => None,
        })
        .collect();
    let by_b = routes_by_balancer(c);
    for (bi, b) in c.balancers.iter().enumerate() {
        let used = &by_b[bi];
        for rule in &b.response_headers {
            let Some(rc) = route_cookie(rule) else {
                continue;
            };
            if let Some(s) = &b.params.sticky
                && *s.cookie != *rc.name
            {
                diags
                        .warning(
                            &rc.rule.origin,
                            format!(
                                "this Header sets the cookie {} but balancer://{} reads stickysession={}: the cookie is never read back, so sessions do not stick",
                                rc.name, b.name, s.cookie
                            ),
                        )
                        .hint(format!("use the same name in both places (stickysession={} or the {} cookie)", rc.name, s.cookie));
            }
            let Some(path) = &rc.path else { continue };
            for r in used {
                if let RouteMatch::Prefix(p) = &r.matcher
                    && !prefix_covers(path, p)
                {
                    diags
                            .warning(
                                &rc.rule.origin,
                                format!(
                                    "the {} cookie is set with path={path}, which does not cover {p} (ProxyPass at {}): browsers will not send it there, so those requests never stick",
                                    rc.name, r.origin
                                ),
                            )
                            .hint(format!("use path=/{} (the tenant prefix)", r.tenant().unwrap_or("")));
                }
            }
            let cpath = collapse_slashes(path);
            let mut tenants: Vec<&str> = all_prefixes
                .iter()
                .filter(|(p, _)| prefix_covers_collapsed(&cpath, p))
                .map(|(_, t)| *t)
                .collect();
            tenants.sort_unstable();
            tenants.dedup();
            if tenants.len() > 1 {
                diags
                    .warning(
                        &rc.rule.origin,
                        format!(
                            "the {} cookie with path={path} is sent to several tenants ({}): one tenant's route overwrites another's and sessions move between members",
                            rc.name,
                            tenants.join(", ")
                        ),
                    )
                    .hint("scope the cookie to the tenant prefix, e.g. path=/t1");
            }
        }
    }
}

fn proxy_prefix_leak(c: &Config, diags: &mut Diagnostics) {
    for a in &c.balancers {
        if a.implicit || (a.response_headers.is_empty() && a.request_headers.is_empty()) {
            continue;
        }
        let leaks: Vec<&str> = c
            .balancers
            .iter()
            .filter(|b| !b.implicit && b.name != a.name && b.name.starts_with(&a.name))
            .map(|b| b.name.as_str())
            .collect();
        if !leaks.is_empty() {
            diags.warning(
                &a.definitions[0],
                format!(
                    "httpd matches <Proxy balancer://{}> by prefix, so its Header rules also apply to {}; balancerd applies them only to balancer://{}",
                    a.name,
                    leaks.iter().map(|n| format!("balancer://{n}")).collect::<Vec<_>>().join(", "),
                    a.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_covers;

    #[test]
    fn covers() {
        assert!(prefix_covers("/t1", "/t1/api"));
        assert!(prefix_covers("/t1/api", "/t1/api"));
        assert!(prefix_covers("/", "/t2/api"));
        assert!(prefix_covers("/t1/", "/t1/api"));
        assert!(!prefix_covers("/t1", "/t10/api"));
        assert!(!prefix_covers("/t1/api/", "/t1/api"));
        assert!(prefix_covers("/ord", "//ord/long"));
    }
}
