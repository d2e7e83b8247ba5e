//! The model builder both dialects feed: balancers found or created by name, members added
//! with httpd's "sharing worker" identity rule, routes and rules appended in config order.
//! `finish` runs the lints and yields the [`Config`].

use super::diag::{Diagnostics, Origin};
use super::lint;
use super::model::*;

/// Which server a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSel {
    /// The main server.
    Main,
    /// A `<VirtualHost>` by index.
    VHost(usize),
}

/// Collects the model while files are read.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    /// The config under construction.
    pub config: Config,
    /// Cookie-path rules written inside `<Proxy>` sections.
    pub scoped_cookie_paths: Vec<ScopedCookiePath>,
    /// True once a `Listen` (or TOML listener) was seen.
    pub saw_listen: bool,
    /// Balancer name → index, so 2,500 balancers are found without a linear scan.
    index: std::collections::HashMap<String, usize>,
}

impl ModelBuilder {
    /// The rules of one server.
    pub fn host_mut(&mut self, sel: HostSel) -> &mut HostRules {
        match sel {
            HostSel::Main => &mut self.config.main,
            HostSel::VHost(i) => &mut self.config.vhosts[i].rules,
        }
    }

    /// Finds a balancer by (already lower-cased) name, or creates it.
    pub fn balancer_index(&mut self, name: &str, origin: &Origin) -> usize {
        if let Some(i) = self.find_balancer(name) {
            return i;
        }
        self.config
            .balancers
            .push(Balancer::new(name.to_string(), origin.clone()));
        let i = self.config.balancers.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// Finds a balancer by (already lower-cased) name.
    pub fn find_balancer(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Adds a member with httpd's identity rule: a URL that extends (or repeats) an existing
    /// member of the same balancer is a "sharing worker" whose parameters httpd ignores.
    /// balancerd keeps that meaning and says so.
    pub fn add_member(
        &mut self,
        bi: usize,
        url: MemberUrl,
        params: MemberParams,
        had_params: bool,
        origin: Origin,
        diags: &mut Diagnostics,
    ) {
        let b = &mut self.config.balancers[bi];
        let shared = b
            .members
            .iter()
            .filter(|m| {
                m.url.scheme == url.scheme
                    && m.url.host == url.host
                    && m.url.port == url.port
                    && url.path.starts_with(&m.url.path)
            })
            .max_by_key(|m| m.url.path.len());
        if let Some(existing) = shared {
            let d = diags.warning(
                &origin,
                format!(
                    "member {url} shares the worker {} declared at {} (httpd: \"Sharing worker\"); {}",
                    existing.url,
                    existing.origin,
                    if had_params {
                        "its parameters are ignored, as httpd ignores them"
                    } else {
                        "the line adds nothing"
                    }
                ),
            );
            if had_params {
                d.hint("remove this line, or give the member a distinct host:port; httpd keeps only the first definition (AH01150)");
            } else {
                d.hint("remove the duplicate line");
            }
            return;
        }
        b.members.push(Member {
            url,
            params,
            origin,
        });
    }
}

/// Parses a member URL (`http://host:port/path`) and normalises it as httpd does.
pub fn parse_member_url(s: &str) -> Result<(MemberUrl, Option<String>), String> {
    if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("unix:")) {
        return Err(
            "unix: sockets are not supported (and have been a source of SSRF in httpd, CVE-2021-40438)"
                .into(),
        );
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("'{s}' is not a URL (expected http://host[:port][/path])"))?;
    // A space or control character would end up in every request line sent to the member.
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{}' has a space or control character; a member URL is one word",
            s.escape_debug()
        ));
    }
    let scheme_l = scheme.to_ascii_lowercase();
    let (scheme_n, upgrade) = match scheme_l.as_str() {
        "http" => ("http", None),
        "https" => ("https", None),
        "ws" => ("http", Some("websocket".to_string())),
        "wss" => ("https", Some("websocket".to_string())),
        "unix" => {
            return Err(
                "unix: sockets are not supported (and have been a source of SSRF in httpd, CVE-2021-40438)"
                    .into(),
            );
        }
        "ajp" => ("ajp", None),
        "fcgi" | "scgi" | "uwsgi" | "h2" | "h2c" | "ftp" => {
            return Err(format!(
                "{scheme_l}:// members are not supported; balancerd speaks HTTP/1.1 (http://, https://) and AJP13 (ajp://) to members"
            ));
        }
        _ => return Err(format!("unknown scheme '{scheme}' in '{s}'")),
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!(
            "member URL '{s}' may not carry a query or fragment"
        ));
    }
    if auth.contains('@') {
        return Err(format!("member URL '{s}' may not carry user information"));
    }
    if auth.is_empty() {
        return Err(format!("member URL '{s}' has no host"));
    }
    let default_port = match scheme_n {
        "https" => 443,
        "ajp" => 8009,
        _ => 80,
    };
    let (host, port, explicit) = if let Some(r) = auth.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| format!("unterminated IPv6 address in '{s}'"))?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), parse_port(p, s)?, true),
            None if after.is_empty() => (h.to_string(), default_port, false),
            None => return Err(format!("bad host in '{s}'")),
        }
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), parse_port(p, s)?, true),
            None => (auth.to_string(), default_port, false),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return Err(format!("bad host name '{host}' in '{s}'"));
    }
    Ok((
        MemberUrl {
            scheme: scheme_n.to_string(),
            host: host.to_ascii_lowercase(),
            port,
            port_explicit: explicit && port != default_port,
            path: path.to_string(),
        },
        upgrade,
    ))
}

fn parse_port(p: &str, s: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("bad port '{p}' in '{s}'")),
    }
}

impl ModelBuilder {
    /// Runs the lints and returns the finished model.
    pub fn finish(
        self,
        diags: &mut Diagnostics,
        main_file: &std::sync::Arc<str>,
        read_ok: bool,
    ) -> Config {
        let ModelBuilder {
            mut config,
            scoped_cookie_paths,
            saw_listen,
            ..
        } = self;
        resolve_health_checks(&mut config, diags);
        for t in std::iter::once(&config.main.tls)
            .chain(config.vhosts.iter().map(|v| &v.rules.tls))
            .flatten()
        {
            if t.verify_client.is_some() && t.client_ca_file.is_none() {
                let d = super::diag::Diagnostic::new(
                    super::diag::Severity::Error,
                    t.origin.clone(),
                    "SSLVerifyClient needs SSLCACertificateFile: the CAs client certificates must chain to",
                );
                diags.push(d);
            }
        }
        order_routes_as_httpd(&mut config);
        if read_ok {
            lint::run(&config, &scoped_cookie_paths, saw_listen, main_file, diags);
        }
        config
    }
}

/// Puts each server's routes in the order httpd tries them: `ProxyPass` lines inside
/// `<Location>` sections first, the last such section first (httpd merges the matching
/// sections in order and a later one's `ProxyPass` replaces an earlier one's), then the
/// server's own lines in config order (first match wins). Matching, the summary and the
/// shadowing lint all follow this order.
fn order_routes_as_httpd(config: &mut Config) {
    let hosts =
        std::iter::once(&mut config.main).chain(config.vhosts.iter_mut().map(|v| &mut v.rules));
    for h in hosts {
        if !h.routes.iter().any(|r| r.in_location) {
            continue;
        }
        let (mut located, server): (Vec<Route>, Vec<Route>) = std::mem::take(&mut h.routes)
            .into_iter()
            .partition(|r| r.in_location);
        located.reverse();
        located.extend(server);
        h.routes = located;
    }
}

/// Resolves what members name by reference, once, so that a snapshot build only opens
/// files and sockets: `hctemplate` (the template's `hc*` values are applied to the member)
/// and `hcexpr` (the compiled `ProxyHCExpr`). A name nobody defined is an error at the
/// member's line (httpd: "Unknown ProxyHCTemplate name" / "Unknown ProxyHCExpr name";
/// balancerd also accepts a definition that comes after the member).
fn resolve_health_checks(config: &mut Config, diags: &mut Diagnostics) {
    let Config {
        balancers,
        hc_templates,
        hc_exprs,
        ..
    } = config;
    for m in balancers.iter_mut().flat_map(|b| b.members.iter_mut()) {
        if let Some(t) = m.params.hc.template.clone() {
            match hc_templates.iter().find(|(n, _)| *n == t) {
                Some((_, kv)) => {
                    for (k, v) in kv {
                        // Checked when the template was defined.
                        if let Err(e) = super::params::set_member_param(&mut m.params, k, v) {
                            diags.error(
                                &m.origin,
                                format!("hctemplate={t}: {k}={v}: {}", e.message),
                            );
                        }
                    }
                }
                None => undefined_name(
                    diags,
                    &m.origin,
                    "hctemplate",
                    "ProxyHCTemplate",
                    &t,
                    hc_templates.iter().map(|(n, _)| n.as_str()),
                ),
            }
        }
        let method = m.params.hc.method.to_ascii_uppercase();
        if m.url.is_ajp() && !matches!(method.as_str(), "" | "NONE" | "TCP") {
            diags
                .error(
                    &m.origin,
                    format!(
                        "hcmethod={}: HTTP health checks of ajp:// members are not supported",
                        m.params.hc.method
                    ),
                )
                .hint("use hcmethod=TCP (a connect check) for an AJP member");
        }
        if let Some(name) = m.params.hc.expr.clone() {
            match hc_exprs.iter().find(|(n, _)| *n == name) {
                Some((_, e)) => m.params.hc.check = Some(e.clone()),
                None => undefined_name(
                    diags,
                    &m.origin,
                    "hcexpr",
                    "ProxyHCExpr",
                    &name,
                    hc_exprs.iter().map(|(n, _)| n.as_str()),
                ),
            }
        }
    }
}

/// `key=name` on a member names a `directive` nobody defined: an error at the member, with
/// the closest defined name as a hint.
fn undefined_name<'a>(
    diags: &mut Diagnostics,
    origin: &Origin,
    key: &str,
    directive: &str,
    name: &str,
    defined: impl IntoIterator<Item = &'a str>,
) {
    let d = diags.error(
        origin,
        format!("{key}={name}: no {directive} named '{name}' is defined"),
    );
    if let Some(c) = super::diag::closest(name, defined) {
        d.hint(format!("did you mean {c}?"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_urls_normalise() {
        let (u, _) = parse_member_url("HTTP://TLRWS1:8080").unwrap();
        assert_eq!(u.to_string(), "http://tlrws1:8080");
        assert_eq!(u.host_header(), "tlrws1:8080");
        let (u, _) = parse_member_url("http://h:80/app").unwrap();
        assert_eq!(u.to_string(), "http://h/app");
        assert_eq!(u.host_header(), "h");
        let (u, up) = parse_member_url("wss://[::1]:9000").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.port, up.as_deref()),
            ("https", 9000, Some("websocket"))
        );
        assert!(parse_member_url("unix:/run/x.sock|http://h").is_err());
        assert!(parse_member_url("http://h:0").is_err());
        assert!(parse_member_url("http://u@h").is_err());
        // Byte 5 inside a multi-byte character must not panic (found by the proptest).
        assert!(parse_member_url("ab€cd://x").is_err());
    }
}
