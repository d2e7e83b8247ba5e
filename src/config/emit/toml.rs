//! The model written in the TOML dialect. The dialect's own tables take what they can say
//! (server settings, listeners with TLS, member TLS, balancers with their members, headers
//! and reverse maps, routes, headers, simple `<Location>`s); the rest goes, as httpd
//! directives, into the top-level `httpd = [...]` list, which the TOML dialect reads in
//! place (virtual hosts, mod_rewrite, redirects, error documents, access rules beyond an
//! address list, ...). Each thing written that way is reported as a [`Loss`] (nothing is
//! lost, but the admin reading the TOML should know where it went).
//!
//! Order is kept where it matters: when one balancer, route or `<Location>` needs httpd
//! directives, all of that kind (and, for balancers, the routes after them) go there too.

use super::{Loss, httpd, toml_duration};
use crate::config::model::*;
use std::fmt::Write as _;

/// The TOML-dialect text of `c`, and what went into `httpd = [...]`.
pub fn emit(c: &Config) -> (String, Vec<Loss>) {
    let mut losses = Vec::new();
    let mut native = String::new();
    let mut rest = Config {
        listeners: Vec::new(),
        balancers: c.balancers.clone(),
        upstream_tls: UpstreamTls::default(),
        hc_exprs: c.hc_exprs.clone(),
        proxy_access: c.proxy_access.clone(),
        vhosts: c.vhosts.clone(),
        ..Config::default()
    };
    // The httpd emitter writes only what differs from these: start from the config's and
    // take back what TOML says itself.
    rest.server = c.server.clone();
    for (k, _) in &c.hc_exprs {
        losses.push(Loss {
            origin: None,
            what: format!("ProxyHCExpr {k}: no TOML key; kept as an httpd directive"),
        });
    }

    server(&mut native, c, &mut rest.server, &mut losses);
    for r in &c.site_redirects {
        let _ = write!(
            native,
            "\n[[site_redirect]]\nentry = {}\nlocal = {}\nbackup_host = {}\nparam = {}\nstatus = {}\n",
            string(&r.entry()),
            string(&r.local),
            string(&r.backup_host),
            string(&r.param),
            r.status
        );
    }
    for l in &c.listeners {
        listen(&mut native, l);
    }
    if c.upstream_tls.engine {
        upstream_tls(&mut native, &c.upstream_tls, &mut rest, &mut losses);
    }

    // Balancers: natively when every one can be said in TOML.
    let explicit: Vec<&Balancer> = c.balancers.iter().filter(|b| !b.implicit).collect();
    let balancers_native = explicit.iter().all(|b| balancer_is_native(b));
    let routes_native = balancers_native && c.main.routes.iter().all(|r| route_is_native(c, r));
    if balancers_native {
        for b in &explicit {
            balancer(&mut native, b);
        }
    } else {
        for b in &explicit {
            losses.push(Loss {
                origin: b.definitions.first().cloned(),
                what: format!(
                    "balancer://{}: a <Proxy> section with settings TOML has no key for (access rules, SetEnv) or beside one; kept as httpd directives",
                    b.name
                ),
            });
        }
    }
    let mut main = c.main.clone();
    if routes_native {
        for r in &c.main.routes {
            route(&mut native, c, r);
        }
        main.routes.clear();
    } else {
        for r in &c.main.routes {
            losses.push(Loss {
                origin: Some(r.origin.clone()),
                what: format!(
                    "ProxyPass {}: kept as an httpd directive (with the routes around it, to keep their order)",
                    r.matcher.as_str()
                ),
            });
        }
    }
    for (list, key, req) in [
        (&c.main.response_headers, "header", false),
        (&c.main.request_headers, "request_header", true),
    ] {
        if list.iter().all(header_is_native) {
            for h in list {
                header(&mut native, key, h);
            }
            if req {
                main.request_headers.clear();
            } else {
                main.response_headers.clear();
            }
        } else {
            for h in list {
                losses.push(Loss {
                    origin: Some(h.origin.clone()),
                    what: format!(
                        "{} {}: kept as an httpd directive",
                        if req { "RequestHeader" } else { "Header" },
                        h.name
                    ),
                });
            }
        }
    }
    if c.main.locations.iter().all(location_is_native)
        && !c.main.routes.iter().any(|r| r.in_location)
    {
        for l in &c.main.locations {
            location(&mut native, l);
        }
        main.locations.clear();
    } else {
        for l in &c.main.locations {
            losses.push(Loss {
                origin: Some(l.origin.clone()),
                what: format!("<Location {}>: kept as httpd directives", l.path),
            });
        }
    }
    // What stays in the main server's rules: said in httpd lines.
    let kept = |what: &str, o: Option<&crate::config::diag::Origin>, losses: &mut Vec<Loss>| {
        losses.push(Loss {
            origin: o.cloned(),
            what: format!("{what}: no TOML key; kept as httpd directives"),
        });
    };
    if !main.reverse.is_empty() {
        kept(
            "ProxyPassReverse at server level",
            main.reverse.location.first().map(|m| &m.origin),
            &mut losses,
        );
    }
    if main.tls.is_some() {
        kept(
            "SSLEngine at server level",
            main.tls.as_ref().and_then(|t| t.origin.as_ref()),
            &mut losses,
        );
    }
    if main.proxy_switches.0 != 0 {
        kept("SetEnv proxy-*", None, &mut losses);
    }
    for r in &main.redirects {
        kept("Redirect", Some(&r.origin), &mut losses);
    }
    for r in &main.rewrite.rules {
        kept("RewriteRule", Some(&r.origin), &mut losses);
    }
    if !main.error_documents.is_empty() {
        kept("ErrorDocument", None, &mut losses);
    }
    if main.access_logs.len() > 1 {
        kept("CustomLog", None, &mut losses);
    }
    for v in &c.vhosts {
        kept(
            &format!("<VirtualHost {}>", v.addrs.join(" ")),
            Some(&v.origin),
            &mut losses,
        );
    }
    if c.proxy_access.is_some() {
        kept("<Proxy *> access rules", None, &mut losses);
    }
    if main.access_logs.len() == 1 {
        main.access_logs.clear();
    }
    rest.main = main;
    let (httpd_text, mut more) = httpd::emit_with(&rest, !balancers_native);
    losses.append(&mut more);
    let lines: Vec<&str> = httpd_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();

    let mut out = String::from("# Written by `balancerd convert` from the validated config.\n");
    if !lines.is_empty() {
        out.push_str(
            "# What the TOML dialect has no key for, as httpd directives, read in place.\n",
        );
        out.push_str("httpd = [\n");
        for l in lines {
            let _ = writeln!(out, "  {},", string(l));
        }
        out.push_str("]\n");
    }
    out.push_str(&native);
    (out, losses)
}

/// A TOML basic string.
fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn server(out: &mut String, c: &Config, rest: &mut ServerSettings, losses: &mut Vec<Loss>) {
    let s = &c.server;
    let d = ServerSettings::default();
    out.push_str("\n[server]\n");
    if let Some(n) = &s.server_name {
        let _ = writeln!(out, "name = {}", string(n));
        rest.server_name = None;
    }
    if s.timeout != d.timeout {
        let _ = writeln!(out, "timeout = {}", string(&toml_duration(s.timeout)));
        rest.timeout = d.timeout;
    }
    if let Some(t) = s.proxy_timeout {
        let _ = writeln!(out, "proxy_timeout = {}", string(&toml_duration(t)));
        rest.proxy_timeout = None;
    }
    if s.keepalive != d.keepalive {
        let _ = writeln!(out, "keepalive = {}", s.keepalive);
        rest.keepalive = d.keepalive;
    }
    if s.keepalive_timeout != d.keepalive_timeout {
        let _ = writeln!(
            out,
            "keepalive_timeout = {}",
            string(&toml_duration(s.keepalive_timeout))
        );
        rest.keepalive_timeout = d.keepalive_timeout;
    }
    if s.preserve_host {
        out.push_str("preserve_host = true\n");
        rest.preserve_host = false;
    }
    if !s.add_headers {
        out.push_str("add_forwarded_headers = false\n");
        rest.add_headers = true;
    }
    if s.underscores_in_headers {
        out.push_str("underscores_in_headers = true\n");
        rest.underscores_in_headers = false;
    }
    for (key, v, dv) in [
        (
            "max_keepalive_requests",
            s.max_keepalive_requests,
            d.max_keepalive_requests,
        ),
        (
            "limit_request_line",
            s.limit_request_line,
            d.limit_request_line,
        ),
        (
            "limit_request_field_size",
            s.limit_request_field_size,
            d.limit_request_field_size,
        ),
        (
            "limit_request_fields",
            s.limit_request_fields,
            d.limit_request_fields,
        ),
    ] {
        if v != dv {
            let _ = writeln!(out, "{key} = {v}");
        }
    }
    rest.max_keepalive_requests = d.max_keepalive_requests;
    rest.limit_request_line = d.limit_request_line;
    rest.limit_request_field_size = d.limit_request_field_size;
    rest.limit_request_fields = d.limit_request_fields;
    if s.limit_request_body != d.limit_request_body {
        let _ = writeln!(out, "limit_request_body = {}", s.limit_request_body);
        rest.limit_request_body = d.limit_request_body;
    }
    if let Some(p) = &s.pid_file {
        let _ = writeln!(out, "pid_file = {}", string(&super::path_text(p)));
        rest.pid_file = None;
    }
    if let Some(l) = &s.log_level {
        let _ = writeln!(out, "log_level = {}", string(l));
        rest.log_level = None;
    }
    if s.graceful_timeout != d.graceful_timeout {
        let _ = writeln!(
            out,
            "graceful_timeout = {}",
            string(&toml_duration(s.graceful_timeout))
        );
        rest.graceful_timeout = d.graceful_timeout;
    }
    if s.shutdown_delay != d.shutdown_delay {
        let _ = writeln!(
            out,
            "shutdown_delay = {}",
            string(&toml_duration(s.shutdown_delay))
        );
        rest.shutdown_delay = d.shutdown_delay;
    }
    if let [(path, fmt)] = c.main.access_logs.as_slice() {
        let _ = writeln!(out, "access_log = {}", string(&super::path_text(path)));
        let _ = writeln!(out, "log_format = {}", string(fmt.source()));
    }
    for (what, differs) in [
        ("ProxyVia", s.proxy_via != d.proxy_via),
        ("ProxyStatus", s.proxy_status),
        ("TraceEnable", !s.trace_enable),
        (
            "AllowEncodedSlashes",
            s.allow_encoded_slashes != d.allow_encoded_slashes,
        ),
        ("UseCanonicalName", s.use_canonical_name),
        (
            "RequestReadTimeout",
            s.header_read_timeout != d.header_read_timeout
                || s.body_read_timeout != d.body_read_timeout,
        ),
    ] {
        if differs {
            losses.push(Loss {
                origin: None,
                what: format!("{what}: no TOML key; kept as an httpd directive"),
            });
        }
    }
}

fn listen(out: &mut String, l: &Listener) {
    out.push_str("\n[[listen]]\n");
    let _ = writeln!(out, "addr = {}", string(&l.addr.to_string()));
    let derived = (!l.tls.is_empty()).then_some("https");
    if let Some(p) = l.protocol.as_deref().filter(|p| Some(*p) != derived) {
        let _ = writeln!(out, "protocol = {}", string(p));
    }
    for t in &l.tls {
        out.push_str("  [[listen.tls]]\n");
        for (k, f) in [
            ("cert", &t.cert_file),
            ("key", &t.key_file),
            ("chain", &t.chain_file),
        ] {
            if let Some(f) = f {
                let _ = writeln!(out, "  {k} = {}", string(&super::path_text(f)));
            }
        }
        if !t.sni_names.is_empty() {
            let names: Vec<String> = t.sni_names.iter().map(|n| string(n)).collect();
            let _ = writeln!(out, "  sni = [{}]", names.join(", "));
        }
    }
}

fn upstream_tls(out: &mut String, u: &UpstreamTls, rest: &mut Config, losses: &mut Vec<Loss>) {
    out.push_str("\n[upstream_tls]\n");
    // The TOML dialect verifies unless told not to; httpd's default is not to.
    let _ = writeln!(out, "verify = {}", u.verify);
    if let Some(f) = &u.ca_file {
        let _ = writeln!(out, "ca = {}", string(&super::path_text(f)));
    }
    if !(u.check_peer_name && u.check_peer_cn) {
        out.push_str("check_peer_name = false\n");
    }
    if let Some(f) = &u.client_cert_file {
        let _ = writeln!(out, "client_cert = {}", string(&super::path_text(f)));
    }
    if let Some(f) = &u.client_key_file {
        let _ = writeln!(out, "client_key = {}", string(&super::path_text(f)));
    }
    if u.protocols.is_some() || !u.check_peer_expire || u.check_peer_name != u.check_peer_cn {
        losses.push(Loss {
            origin: u.engine_origin.clone(),
            what: "SSLProxyProtocol / SSLProxyCheckPeerExpire / SSLProxyCheckPeerCN apart from SSLProxyCheckPeerName: no TOML key; kept as httpd directives".into(),
        });
        rest.upstream_tls = UpstreamTls {
            engine: true,
            verify: u.verify,
            verify_explicit: true,
            protocols: u.protocols.clone(),
            check_peer_expire: u.check_peer_expire,
            check_peer_cn: u.check_peer_cn,
            check_peer_name: u.check_peer_name,
            ca_file: u.ca_file.clone(),
            ..UpstreamTls::default()
        };
    }
}

fn balancer_is_native(b: &Balancer) -> bool {
    // The TOML dialect's names are letters, digits and `.-_~` (httpd takes any word).
    let toml_name = !b.name.is_empty()
        && b.name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'~'));
    toml_name
        && b.access.is_none()
        && b.proxy_switches.0 == 0
        && b.response_headers.iter().all(header_is_native)
        && b.request_headers.iter().all(header_is_native)
}

fn header_is_native(h: &HeaderRule) -> bool {
    matches!(
        h.condition,
        HeaderCondition::None | HeaderCondition::Env(_) | HeaderCondition::NotEnv(_)
    )
}

fn route_is_native(c: &Config, r: &Route) -> bool {
    !r.in_location
        && match &r.target {
            RouteTarget::Exclude => true,
            RouteTarget::Balancer { balancer, .. } => !c.balancers[*balancer].implicit,
        }
}

fn location_is_native(l: &LocationSection) -> bool {
    let simple_access = l.access.is_open()
        || (l.access.order.is_none()
            && l.access.allow.is_empty()
            && l.access.deny.is_empty()
            && !l.access.satisfy_any
            && matches!(&l.access.require, Some(Require::Any(v)) if matches!(v.as_slice(), [Require::Ip(_)])));
    l.regex.is_none()
        && simple_access
        && l.response_headers.is_empty()
        && l.request_headers.is_empty()
        && l.reverse.is_empty()
        && l.error_documents.is_empty()
        && l.proxy_switches.0 == 0
        && l.redirect.is_none()
        && l.backup_site.is_none()
}

/// A parameter value: a number or boolean as such, else a string.
fn value(v: &str) -> String {
    if !v.is_empty() && v.len() < 10 && v.bytes().all(|c| c.is_ascii_digit()) && !v.starts_with('0')
    {
        return v.to_string();
    }
    match v {
        "On" => "true".into(),
        "Off" => "false".into(),
        _ => string(v),
    }
}

/// ` key=value` pairs (as the httpd emitter writes them) split back into pairs.
fn pairs(s: &str) -> Vec<(String, String)> {
    let words = crate::config::httpd::lexer::split_words(s);
    words
        .into_iter()
        .filter_map(|w| {
            w.text
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn balancer(out: &mut String, b: &Balancer) {
    out.push_str("\n[[balancer]]\n");
    let _ = writeln!(out, "name = {}", string(&b.name));
    for (k, v) in pairs(&httpd::balancer_params_text(&b.params)) {
        if k == "timeout" {
            let _ = writeln!(out, "timeout = {}", string(&format!("{v}s")));
        } else {
            let _ = writeln!(out, "{k} = {}", value(&v));
        }
    }
    if let Some(s) = &b.backup_site {
        let _ = writeln!(
            out,
            "backup_site = {{ url = {}, status = {}, marker = {} }}",
            string(&s.url),
            s.status,
            string(&s.marker)
        );
    }
    for m in &b.members {
        out.push_str("  [[balancer.member]]\n");
        let _ = writeln!(out, "  url = {}", string(&m.url.to_string()));
        let p = &m.params;
        let mut dummy = Vec::new();
        for (k, v) in pairs(&httpd::member_params_text(m, &mut dummy)) {
            let dur = match k.as_str() {
                "retry" => Some(p.retry),
                "timeout" => p.timeout,
                "connectiontimeout" => p.connection_timeout,
                "acquire" => p.acquire,
                "ping" => p.ping,
                "ttl" => p.ttl,
                "hcinterval" => Some(p.hc.interval),
                _ => None,
            };
            match dur {
                Some(d) => {
                    let _ = writeln!(out, "  {k} = {}", string(&toml_duration(d)));
                }
                None => {
                    let _ = writeln!(out, "  {k} = {}", value(&v));
                }
            }
        }
    }
    for (list, key) in [
        (&b.response_headers, "balancer.header"),
        (&b.request_headers, "balancer.request_header"),
    ] {
        for h in list {
            header_table(out, key, h, "  ");
        }
    }
    for (list, key) in [
        (&b.reverse.location, "reverse"),
        (&b.reverse.cookie_path, "cookie_path"),
        (&b.reverse.cookie_domain, "cookie_domain"),
    ] {
        for m in list {
            let _ = writeln!(out, "  [[balancer.{key}]]");
            let _ = writeln!(out, "  public = {}", string(&m.public));
            let _ = writeln!(out, "  internal = {}", string(&m.internal));
        }
    }
}

fn header(out: &mut String, key: &str, h: &HeaderRule) {
    out.push('\n');
    header_table(out, key, h, "");
}

fn header_table(out: &mut String, key: &str, h: &HeaderRule, indent: &str) {
    let _ = writeln!(out, "{indent}[[{key}]]");
    if h.always {
        let _ = writeln!(out, "{indent}always = true");
    }
    let action = match &h.action {
        HeaderAction::Set => "set",
        HeaderAction::SetIfEmpty => "setifempty",
        HeaderAction::Add => "add",
        HeaderAction::Append => "append",
        HeaderAction::Merge => "merge",
        HeaderAction::Unset => "unset",
        HeaderAction::Edit { all: false, .. } => "edit",
        HeaderAction::Edit { all: true, .. } => "edit*",
    };
    let _ = writeln!(out, "{indent}action = {}", string(action));
    let _ = writeln!(out, "{indent}name = {}", string(&h.name));
    match &h.action {
        HeaderAction::Unset => {}
        HeaderAction::Edit {
            regex, replacement, ..
        } => {
            let _ = writeln!(out, "{indent}value = {}", string(regex.as_str()));
            let _ = writeln!(out, "{indent}replacement = {}", string(&replacement.raw));
        }
        _ => {
            let _ = writeln!(out, "{indent}value = {}", string(&h.value.raw));
        }
    }
    match &h.condition {
        HeaderCondition::Env(v) => {
            let _ = writeln!(out, "{indent}env = {}", string(v));
        }
        HeaderCondition::NotEnv(v) => {
            let _ = writeln!(out, "{indent}env = {}", string(&format!("!{v}")));
        }
        _ => {}
    }
}

fn route(out: &mut String, c: &Config, r: &Route) {
    out.push_str("\n[[route]]\n");
    match &r.matcher {
        RouteMatch::Prefix(p) => {
            let _ = writeln!(out, "path = {}", string(p));
        }
        RouteMatch::Regex(re) => {
            let _ = writeln!(out, "match = {}", string(re.as_str()));
        }
    }
    let to = match &r.target {
        RouteTarget::Exclude => "!".to_string(),
        RouteTarget::Balancer { balancer, path } => {
            format!("balancer://{}{}", c.balancers[*balancer].name, path)
        }
    };
    let _ = writeln!(out, "to = {}", string(&to));
    if r.noquery {
        out.push_str("noquery = true\n");
    }
    if r.nocanon {
        out.push_str("nocanon = true\n");
    }
    if let Some(u) = &r.upgrade {
        let _ = writeln!(out, "upgrade = {}", string(u));
    }
}

fn location(out: &mut String, l: &LocationSection) {
    out.push_str("\n[[location]]\n");
    let _ = writeln!(out, "path = {}", string(&l.path));
    if let Some(h) = l.handler {
        let _ = writeln!(out, "handler = {}", string(h.as_str()));
    }
    if let Some(Require::Any(v)) = &l.access.require
        && let [Require::Ip(nets)] = v.as_slice()
    {
        let n: Vec<String> = nets.iter().map(|n| string(&n.to_string())).collect();
        let _ = writeln!(out, "allow = [{}]", n.join(", "));
    }
}
