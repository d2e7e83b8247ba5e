//! The model written in the httpd dialect: one flat file (includes spliced in, `Define`s and
//! `<IfModule>`s resolved), settings that differ from httpd's defaults, then balancers,
//! the main server's rules and the virtual hosts. Everything the model holds has an httpd
//! form, except durations finer than httpd reads for a few settings (a [`Loss`]).

use super::{Loss, httpd_timeout, httpd_word as w, loadfactor};
use crate::config::model::*;
use std::fmt::Write as _;
use std::time::Duration;

/// The httpd-dialect text of `c`, and what it could not say.
pub fn emit(c: &Config) -> (String, Vec<Loss>) {
    emit_with(c, true)
}

/// [`emit`], leaving out the explicit balancers when `balancers` is false (the TOML
/// emitter wrote them as tables; routes still name them by index).
pub(super) fn emit_with(c: &Config, balancers: bool) -> (String, Vec<Loss>) {
    let mut e = Emitter {
        out: String::new(),
        losses: Vec::new(),
        config: c,
    };
    e.out
        .push_str("# Written by `balancerd convert` from the validated config.\n");
    e.server();
    e.upstream_tls();
    for (name, expr) in &c.hc_exprs {
        let _ = writeln!(e.out, "ProxyHCExpr {} {{{}}}", w(name), expr.source());
    }
    for b in c.balancers.iter().filter(|b| !b.implicit && balancers) {
        e.balancer(b);
    }
    if let Some(a) = &c.proxy_access {
        e.out.push_str("<Proxy *>\n");
        e.access(a, 1);
        e.out.push_str("</Proxy>\n");
    }
    e.host_rules(&c.main, 0);
    // TLS listeners of the TOML dialect: a virtual host per certificate on that address.
    for l in &c.listeners {
        for t in &l.tls {
            let _ = writeln!(e.out, "<VirtualHost {}>", l.addr);
            if let Some((first, rest)) = t.sni_names.split_first() {
                let _ = writeln!(e.out, "  ServerName {}", w(first));
                if !rest.is_empty() {
                    let names: Vec<String> = rest.iter().map(|n| w(n)).collect();
                    let _ = writeln!(e.out, "  ServerAlias {}", names.join(" "));
                }
            }
            e.front_tls(t, 1);
            e.out.push_str("</VirtualHost>\n");
        }
    }
    for v in &c.vhosts {
        let addrs: Vec<String> = v.addrs.iter().map(|a| w(a)).collect();
        let _ = writeln!(e.out, "<VirtualHost {}>", addrs.join(" "));
        if let Some(n) = &v.server_name {
            let _ = writeln!(e.out, "  ServerName {}", w(n));
        }
        if !v.aliases.is_empty() {
            let names: Vec<String> = v.aliases.iter().map(|n| w(n)).collect();
            let _ = writeln!(e.out, "  ServerAlias {}", names.join(" "));
        }
        e.host_rules(&v.rules, 1);
        e.out.push_str("</VirtualHost>\n");
    }
    (e.out, e.losses)
}

struct Emitter<'c> {
    out: String,
    losses: Vec<Loss>,
    config: &'c Config,
}

fn pad(depth: usize) -> String {
    "  ".repeat(depth)
}

impl Emitter<'_> {
    fn line(&mut self, depth: usize, text: &str) {
        self.out.push_str(&pad(depth));
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Whole seconds for a setting httpd reads with `atoi`; a finer one is rounded up and
    /// listed.
    fn seconds(
        &mut self,
        what: &str,
        d: Duration,
        origin: Option<&crate::config::diag::Origin>,
    ) -> u64 {
        if d.subsec_nanos() != 0 {
            let up = d.as_secs() + 1;
            self.losses.push(Loss {
                origin: origin.cloned(),
                what: format!(
                    "{what} of {} ms: httpd reads whole seconds; written as {up}",
                    d.as_millis()
                ),
            });
            return up;
        }
        d.as_secs()
    }

    fn server(&mut self) {
        let s = &self.config.server;
        let d = ServerSettings::default();
        for l in &self.config.listeners {
            match &l.protocol {
                Some(p) if p != "http" || !l.tls.is_empty() => {
                    let _ = writeln!(self.out, "Listen {} {}", l.addr, w(p));
                }
                _ => {
                    let _ = writeln!(self.out, "Listen {}", l.addr);
                }
            }
        }
        if let Some(n) = &s.server_name {
            let _ = writeln!(self.out, "ServerName {}", w(n));
        }
        if let Some(r) = &s.server_root {
            let _ = writeln!(self.out, "ServerRoot {}", w(&super::path_text(r)));
        }
        if s.timeout != d.timeout {
            let n = self.seconds("Timeout", s.timeout, None);
            let _ = writeln!(self.out, "Timeout {n}");
        }
        if let Some(t) = s.proxy_timeout {
            let n = self.seconds("ProxyTimeout", t, None);
            let _ = writeln!(self.out, "ProxyTimeout {n}");
        }
        if !s.keepalive {
            self.out.push_str("KeepAlive Off\n");
        }
        if s.keepalive_timeout != d.keepalive_timeout {
            let _ = writeln!(
                self.out,
                "KeepAliveTimeout {}",
                httpd_timeout(s.keepalive_timeout)
            );
        }
        if s.max_keepalive_requests != d.max_keepalive_requests {
            let _ = writeln!(
                self.out,
                "MaxKeepAliveRequests {}",
                s.max_keepalive_requests
            );
        }
        if s.preserve_host {
            self.out.push_str("ProxyPreserveHost On\n");
        }
        if !s.add_headers {
            self.out.push_str("ProxyAddHeaders Off\n");
        }
        match s.proxy_via {
            ProxyVia::Off => {}
            ProxyVia::On => self.out.push_str("ProxyVia On\n"),
            ProxyVia::Full => self.out.push_str("ProxyVia Full\n"),
            ProxyVia::Block => self.out.push_str("ProxyVia Block\n"),
        }
        for (name, v, dv) in [
            (
                "LimitRequestLine",
                s.limit_request_line,
                d.limit_request_line,
            ),
            (
                "LimitRequestFieldSize",
                s.limit_request_field_size,
                d.limit_request_field_size,
            ),
            (
                "LimitRequestFields",
                s.limit_request_fields,
                d.limit_request_fields,
            ),
        ] {
            if v != dv {
                let _ = writeln!(self.out, "{name} {v}");
            }
        }
        if s.limit_request_body != d.limit_request_body {
            let _ = writeln!(self.out, "LimitRequestBody {}", s.limit_request_body);
        }
        if let Some(p) = &s.pid_file {
            let _ = writeln!(self.out, "PidFile {}", w(&super::path_text(p)));
        }
        if let Some(l) = &s.log_level {
            let _ = writeln!(self.out, "LogLevel {}", w(l));
        }
        if s.proxy_status {
            self.out.push_str("ProxyStatus On\n");
        }
        if s.graceful_timeout != d.graceful_timeout {
            let n = self.seconds("GracefulShutdownTimeout", s.graceful_timeout, None);
            let _ = writeln!(self.out, "GracefulShutdownTimeout {n}");
        }
        if s.shutdown_delay != d.shutdown_delay {
            let _ = writeln!(
                self.out,
                "ShutdownDelay {}",
                httpd_timeout(s.shutdown_delay)
            );
        }
        if !s.trace_enable {
            self.out.push_str("TraceEnable Off\n");
        }
        match s.allow_encoded_slashes {
            EncodedSlashes::Off => {}
            EncodedSlashes::On => self.out.push_str("AllowEncodedSlashes On\n"),
            EncodedSlashes::NoDecode => self.out.push_str("AllowEncodedSlashes NoDecode\n"),
        }
        if s.use_canonical_name {
            self.out.push_str("UseCanonicalName On\n");
        }
        if s.underscores_in_headers {
            self.out.push_str("UnderscoresInHeaders On\n");
        }
        if s.header_read_timeout != d.header_read_timeout
            || s.body_read_timeout != d.body_read_timeout
        {
            let stage = |name: &str, st: &Option<ReadStage>| match st {
                None => format!("{name}=0"),
                Some(r) => {
                    let mut t = format!("{name}={}", r.initial.as_secs());
                    if let Some(m) = r.max {
                        let _ = write!(t, "-{}", m.as_secs());
                    }
                    if r.min_rate > 0 {
                        let _ = write!(t, ",MinRate={}", r.min_rate);
                    }
                    t
                }
            };
            let _ = writeln!(
                self.out,
                "RequestReadTimeout {} {}",
                stage("header", &s.header_read_timeout),
                stage("body", &s.body_read_timeout)
            );
        }
        for r in &self.config.site_redirects {
            let _ = writeln!(
                self.out,
                "SiteRedirect {} {} {} param={} status={}",
                w(&r.entry()),
                w(&r.local),
                w(&r.backup_host),
                r.param,
                r.status
            );
        }
        for (path, fmt) in &self.config.main.access_logs {
            let _ = writeln!(
                self.out,
                "CustomLog {} {}",
                w(&super::path_text(path)),
                w(fmt.source())
            );
        }
    }

    fn upstream_tls(&mut self) {
        let u = &self.config.upstream_tls;
        if !u.engine {
            return;
        }
        self.out.push_str("SSLProxyEngine On\n");
        if u.verify_explicit || u.verify {
            let _ = writeln!(
                self.out,
                "SSLProxyVerify {}",
                if u.verify { "require" } else { "none" }
            );
        }
        if let Some(f) = &u.ca_file {
            let _ = writeln!(
                self.out,
                "SSLProxyCACertificateFile {}",
                w(&super::path_text(f))
            );
        }
        if !u.check_peer_name {
            self.out.push_str("SSLProxyCheckPeerName off\n");
        }
        if !u.check_peer_cn {
            self.out.push_str("SSLProxyCheckPeerCN off\n");
        }
        if !u.check_peer_expire {
            self.out.push_str("SSLProxyCheckPeerExpire off\n");
        }
        if let Some(f) = &u.client_cert_file {
            if let Some(k) = &u.client_key_file
                && k != f
            {
                self.losses.push(Loss {
                    origin: u.engine_origin.clone(),
                    what: format!(
                        "the member client key {} is a file of its own; httpd's SSLProxyMachineCertificateFile takes certificate and key in one file (concatenate them)",
                        k.display()
                    ),
                });
            }
            let _ = writeln!(
                self.out,
                "SSLProxyMachineCertificateFile {}",
                w(&super::path_text(f))
            );
        }
        if let Some(p) = &u.protocols {
            let _ = writeln!(self.out, "SSLProxyProtocol {p}");
        }
    }

    fn front_tls(&mut self, t: &FrontTls, depth: usize) {
        self.line(
            depth,
            if t.engine {
                "SSLEngine on"
            } else {
                "SSLEngine off"
            },
        );
        let file = |p: &std::path::PathBuf| w(&super::path_text(p));
        if let Some(f) = &t.cert_file {
            self.line(depth, &format!("SSLCertificateFile {}", file(f)));
        }
        if let Some(f) = &t.key_file {
            self.line(depth, &format!("SSLCertificateKeyFile {}", file(f)));
        }
        if let Some(f) = &t.chain_file {
            self.line(depth, &format!("SSLCertificateChainFile {}", file(f)));
        }
        if let Some(p) = &t.protocols {
            self.line(depth, &format!("SSLProtocol {p}"));
        }
        if let Some(p) = &t.ciphers {
            self.line(depth, &format!("SSLCipherSuite {}", w(p)));
        }
        if let Some(req) = t.verify_client {
            self.line(
                depth,
                &format!(
                    "SSLVerifyClient {}",
                    if req { "require" } else { "optional" }
                ),
            );
        }
        if let Some(f) = &t.client_ca_file {
            self.line(depth, &format!("SSLCACertificateFile {}", file(f)));
        }
    }

    fn balancer(&mut self, b: &Balancer) {
        if let Some(t) = b.params.timeout.filter(|t| t.subsec_nanos() > 0) {
            self.losses.push(Loss {
                origin: b.definitions.first().cloned(),
                what: format!(
                    "balancer://{} timeout of {} ms: httpd reads whole seconds; written as {}",
                    b.name,
                    t.as_millis(),
                    t.as_secs() + 1
                ),
            });
        }
        let _ = writeln!(self.out, "<Proxy balancer://{}>", b.name);
        for m in &b.members {
            let params = member_params(m, &mut self.losses);
            let _ = writeln!(self.out, "  BalancerMember {}{}", member_url(m), params);
        }
        let bp = balancer_params(&b.params);
        if !bp.is_empty() {
            let _ = writeln!(self.out, "  ProxySet{bp}");
        }
        self.headers(&b.response_headers, false, 1);
        self.headers(&b.request_headers, true, 1);
        self.reverse(&b.reverse, 1);
        if let Some(a) = &b.access {
            self.access(a, 1);
        }
        self.switches(b.proxy_switches, 1);
        if let Some(site) = &b.backup_site {
            self.line(1, &backup_site(site));
        }
        self.out.push_str("</Proxy>\n");
    }

    fn switches(&mut self, s: ProxySwitches, depth: usize) {
        for (flag, name) in [
            (ProxySwitches::SEND_CHUNKED, "proxy-sendchunked"),
            (
                ProxySwitches::INITIAL_NOT_POOLED,
                "proxy-initial-not-pooled",
            ),
            (ProxySwitches::NO_KEEPALIVE, "proxy-nokeepalive"),
            (ProxySwitches::FORCE_1_0, "force-proxy-request-1.0"),
        ] {
            if s.has(flag) {
                self.line(depth, &format!("SetEnv {name} 1"));
            }
        }
    }

    fn headers(&mut self, rules: &[HeaderRule], request: bool, depth: usize) {
        for r in rules {
            let t = header_rule(r, request);
            self.line(depth, &t);
        }
    }

    fn reverse(&mut self, r: &ReverseRules, depth: usize) {
        for (list, name) in [
            (&r.location, "ProxyPassReverse"),
            (&r.cookie_path, "ProxyPassReverseCookiePath"),
            (&r.cookie_domain, "ProxyPassReverseCookieDomain"),
        ] {
            for m in list {
                // `ProxyPassReverse public internal`; the cookie maps are written
                // `internal public`.
                let (a, b) = if name == "ProxyPassReverse" {
                    (&m.public, &m.internal)
                } else {
                    (&m.internal, &m.public)
                };
                self.line(depth, &format!("{name} {} {}", w(a), w(b)));
            }
        }
    }

    fn access(&mut self, a: &AccessRules, depth: usize) {
        if let Some(o) = a.order {
            let t = match o {
                Order::DenyAllow => "deny,allow",
                Order::AllowDeny => "allow,deny",
                Order::MutualFailure => "mutual-failure",
            };
            self.line(depth, &format!("Order {t}"));
        }
        for (list, name) in [(&a.allow, "Allow"), (&a.deny, "Deny")] {
            if !list.is_empty() {
                let hosts: Vec<String> = list.iter().map(host_match).collect();
                self.line(depth, &format!("{name} from {}", hosts.join(" ")));
            }
        }
        if a.satisfy_any {
            self.line(depth, "Satisfy Any");
        }
        match &a.require {
            None => {}
            Some(Require::Any(items)) => {
                for r in items {
                    self.require(r, depth);
                }
            }
            Some(r) => self.require(r, depth),
        }
    }

    fn require(&mut self, r: &Require, depth: usize) {
        let block = |e: &mut Self, name: &str, items: &[Require]| {
            e.line(depth, &format!("<{name}>"));
            for i in items {
                e.require(i, depth + 1);
            }
            e.line(depth, &format!("</{name}>"));
        };
        match r {
            Require::All(items) => block(self, "RequireAll", items),
            Require::Any(items) => block(self, "RequireAny", items),
            Require::None(items) => block(self, "RequireNone", items),
            leaf => {
                let t = format!("Require {}", require_leaf(leaf));
                self.line(depth, &t);
            }
        }
    }

    fn host_rules(&mut self, h: &HostRules, depth: usize) {
        if depth > 0 {
            if let Some(t) = &h.tls {
                self.front_tls(t, depth);
            }
            for (path, fmt) in &h.access_logs {
                self.line(
                    depth,
                    &format!(
                        "CustomLog {} {}",
                        w(&super::path_text(path)),
                        w(fmt.source())
                    ),
                );
            }
        } else if let Some(t) = &h.tls {
            self.front_tls(t, 0);
        }
        self.headers(&h.response_headers, false, depth);
        self.headers(&h.request_headers, true, depth);
        self.reverse(&h.reverse, depth);
        self.switches(h.proxy_switches, depth);
        for (code, doc) in &h.error_documents {
            let t = error_document(*code, doc);
            self.line(depth, &t);
        }
        for r in &h.redirects {
            let t = redirect(r);
            self.line(depth, &t);
        }
        if h.rewrite.engine {
            self.line(depth, "RewriteEngine On");
        }
        match h.rewrite.inherit {
            Some(InheritOrder::After) => self.line(depth, "RewriteOptions Inherit"),
            Some(InheritOrder::Before) => self.line(depth, "RewriteOptions InheritBefore"),
            None => {}
        }
        for r in &h.rewrite.rules {
            for c in &r.conds {
                self.line(depth, &c.source);
            }
            self.line(depth, &r.source);
        }
        for r in h.routes.iter().filter(|r| !r.in_location) {
            let t = self.route(r, "");
            self.line(depth, &t);
        }
        // `<Location>`s with the ProxyPass lines written inside them.
        let mut in_loc: Vec<&Route> = h.routes.iter().filter(|r| r.in_location).collect();
        for l in &h.locations {
            let (open, close) = match &l.regex {
                Some(_) => (
                    format!("<LocationMatch {}>", w(&l.path)),
                    "</LocationMatch>",
                ),
                None => (format!("<Location {}>", w(&l.path)), "</Location>"),
            };
            self.line(depth, &open);
            if let Some(i) = in_loc.iter().position(|r| r.matcher.as_str() == l.path) {
                let r = in_loc.remove(i);
                let t = self.route(r, "in");
                self.line(depth + 1, &t);
            }
            self.location_body(l, depth + 1);
            self.line(depth, close);
        }
        for r in in_loc {
            // A <Location> whose other directives were empty is not in the list.
            let (open, close) = match &r.matcher {
                RouteMatch::Regex(re) => (
                    format!("<LocationMatch {}>", w(re.as_str())),
                    "</LocationMatch>",
                ),
                RouteMatch::Prefix(p) => (format!("<Location {}>", w(p)), "</Location>"),
            };
            self.line(depth, &open);
            let t = self.route(r, "in");
            self.line(depth + 1, &t);
            self.line(depth, close);
        }
    }

    fn location_body(&mut self, l: &LocationSection, depth: usize) {
        if let Some(h) = l.handler {
            self.line(depth, &format!("SetHandler {}", h.as_str()));
        }
        self.access(&l.access, depth);
        self.headers(&l.response_headers, false, depth);
        self.headers(&l.request_headers, true, depth);
        self.reverse(&l.reverse, depth);
        for (code, doc) in &l.error_documents {
            let t = error_document(*code, doc);
            self.line(depth, &t);
        }
        self.switches(l.proxy_switches, depth);
        if let Some(site) = &l.backup_site {
            self.line(depth, &backup_site(site));
        }
        if let Some((status, target)) = &l.redirect {
            let mut t = format!("Redirect {status}");
            if let Some(u) = target {
                t.push(' ');
                t.push_str(&w(u));
            }
            self.line(depth, &t);
        }
    }

    /// A `ProxyPass` line (`in`: inside its `<Location>`, without the path).
    fn route(&mut self, r: &Route, place: &str) -> String {
        let target = match &r.target {
            RouteTarget::Exclude => "!".to_string(),
            RouteTarget::Balancer { balancer, path } => {
                let b = &self.config.balancers[*balancer];
                if b.implicit {
                    let m = &b.members[0];
                    format!("{}{}", member_url(m), path)
                } else {
                    format!("balancer://{}{}", b.name, path)
                }
            }
        };
        let mut t = match (&r.matcher, place) {
            (_, "in") => format!("ProxyPass {}", w(&target)),
            (RouteMatch::Prefix(p), _) => format!("ProxyPass {} {}", w(p), w(&target)),
            (RouteMatch::Regex(re), _) => {
                format!("ProxyPassMatch {} {}", w(re.as_str()), w(&target))
            }
        };
        if let RouteTarget::Balancer { balancer, .. } = &r.target {
            let b = &self.config.balancers[*balancer];
            if b.implicit {
                // The worker's own parameters go on the ProxyPass line.
                let m = &b.members[0];
                t.push_str(&member_params(m, &mut self.losses));
                t.push_str(&balancer_params(&b.params));
            }
        }
        if r.nocanon {
            t.push_str(" nocanon");
        }
        if r.noquery {
            t.push_str(" noquery");
        }
        let implicit_upgrade = matches!(&r.target, RouteTarget::Balancer { balancer, .. }
            if self.config.balancers[*balancer].implicit
                && self.config.balancers[*balancer].members[0].params.upgrade.is_some());
        if let Some(u) = r.upgrade.as_ref().filter(|_| !implicit_upgrade) {
            let _ = write!(t, " upgrade={}", w(u));
        }
        t
    }
}

/// A member's parameters as ` key=value` words (for the TOML emitter).
pub(super) fn member_params_text(m: &Member, losses: &mut Vec<Loss>) -> String {
    member_params(m, losses)
}

/// A balancer's parameters as ` key=value` words (for the TOML emitter).
pub(super) fn balancer_params_text(p: &BalancerParams) -> String {
    balancer_params(p)
}

/// The member URL as it was written (`ws`/`wss` schemes came in as `upgrade=websocket`).
fn member_url(m: &Member) -> String {
    m.url.to_string()
}

/// ` key=value` for every member parameter that differs from httpd's default.
fn member_params(m: &Member, losses: &mut Vec<Loss>) -> String {
    let p = &m.params;
    let d = MemberParams::default();
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = write!(s, " {}", w(&format!("{k}={v}")));
    };
    if p.loadfactor != d.loadfactor {
        kv("loadfactor", loadfactor(p.loadfactor));
    }
    if p.lbset != d.lbset {
        kv("lbset", p.lbset.to_string());
    }
    if !p.route.is_empty() {
        kv("route", p.route.clone());
    }
    if !p.redirect.is_empty() {
        kv("redirect", p.redirect.clone());
    }
    if p.status != d.status {
        let letters: String = StatusFlags::LETTERS[..8]
            .iter()
            .filter(|(_, b)| p.status.0 & b != 0)
            .map(|(c, _)| *c)
            .collect();
        if !letters.is_empty() {
            kv("status", format!("+{letters}"));
        }
    }
    let mut whole = |what: &str, d: Duration| -> String {
        if d.subsec_nanos() != 0 {
            losses.push(Loss {
                origin: Some(m.origin.clone()),
                what: format!(
                    "{what}={} ms on {}: httpd reads {what} in whole seconds; written as {}",
                    d.as_millis(),
                    m.url,
                    d.as_secs() + 1
                ),
            });
            return (d.as_secs() + 1).to_string();
        }
        d.as_secs().to_string()
    };
    let retry = (p.retry != d.retry).then(|| whole("retry", p.retry));
    let timeout = p.timeout.map(|t| whole("timeout", t));
    let ttl = p.ttl.map(|t| whole("ttl", t));
    if let Some(v) = retry {
        kv("retry", v);
    }
    if let Some(v) = timeout {
        kv("timeout", v);
    }
    if let Some(t) = p.connection_timeout {
        kv("connectiontimeout", httpd_timeout(t));
    }
    if let Some(t) = p.acquire {
        kv("acquire", format!("{}ms", t.as_millis()));
    }
    if let Some(t) = p.ping {
        kv("ping", httpd_timeout(t));
    }
    if p.disable_reuse {
        kv("disablereuse", "On".into());
    }
    if p.tcp_keepalive {
        kv("keepalive", "On".into());
    }
    for (k, v) in [("max", p.max), ("smax", p.smax), ("min", p.min)] {
        if let Some(v) = v {
            kv(k, v.to_string());
        }
    }
    if let Some(v) = ttl {
        kv("ttl", v);
    }
    if let Some(v) = &p.flushpackets {
        kv("flushpackets", v.clone());
    }
    if let Some(t) = p.flushwait {
        kv("flushwait", t.as_millis().to_string());
    }
    if let Some(v) = p.iobuffersize {
        kv("iobuffersize", v.to_string());
    }
    if let Some(v) = p.receivebuffersize {
        kv("receivebuffersize", v.to_string());
    }
    if let Some(v) = &p.upgrade {
        kv("upgrade", v.clone());
    }
    if let Some(v) = &p.secret {
        kv("secret", v.clone());
    }
    if let Some(v) = p.addressttl {
        kv("addressttl", v.to_string());
    }
    let hc = &p.hc;
    if hc.method != d.hc.method {
        kv("hcmethod", hc.method.clone());
    }
    if let Some(u) = &hc.uri {
        kv("hcuri", u.clone());
    }
    if hc.interval != d.hc.interval {
        kv("hcinterval", httpd_timeout(hc.interval));
    }
    if hc.passes != d.hc.passes {
        kv("hcpasses", hc.passes.to_string());
    }
    if hc.fails != d.hc.fails {
        kv("hcfails", hc.fails.to_string());
    }
    if let Some(x) = &hc.expr {
        kv("hcexpr", x.clone());
    }
    s
}

/// ` key=value` for every balancer parameter that is set.
fn balancer_params(p: &BalancerParams) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = write!(s, " {}", w(&format!("{k}={v}")));
    };
    if let Some(st) = &p.sticky {
        if st.cookie == st.url_param {
            kv("stickysession", st.cookie.to_string());
        } else {
            kv("stickysession", format!("{}|{}", st.cookie, st.url_param));
        }
    }
    match p.sticky_sep {
        None | Some(Some(b'.')) => {}
        Some(None) => kv("stickysessionsep", "Off".into()),
        Some(Some(c)) => kv("stickysessionsep", (c as char).to_string()),
    }
    if p.scolon_path_delim {
        kv("scolonpathdelim", "On".into());
    }
    if p.no_failover {
        kv("nofailover", "On".into());
    }
    if let Some(n) = p.max_attempts {
        kv("maxattempts", n.to_string());
    }
    if let Some(f) = p.force_recovery {
        kv("forcerecovery", if f { "On" } else { "Off" }.into());
    }
    if !p.fail_on_status.is_empty() {
        let codes: Vec<String> = p.fail_on_status.iter().map(u16::to_string).collect();
        kv("failonstatus", codes.join(","));
    }
    if p.fail_on_timeout {
        kv("failontimeout", "On".into());
    }
    if p.lbmethod != LbMethod::ByRequests {
        kv("lbmethod", p.lbmethod.as_str().into());
    }
    if let Some(t) = p.timeout {
        // Whole seconds (a sub-second TOML timeout is listed by the caller).
        kv(
            "timeout",
            (t.as_secs() + u64::from(t.subsec_nanos() > 0)).to_string(),
        );
    }
    if p.growth != 0 {
        kv("growth", p.growth.to_string());
    }
    if let Some(n) = &p.nonce {
        kv("nonce", n.clone());
    }
    s
}

fn header_rule(r: &HeaderRule, request: bool) -> String {
    let mut t = String::from(if request { "RequestHeader" } else { "Header" });
    if r.always {
        t.push_str(" always");
    }
    let (action, rest) = match &r.action {
        HeaderAction::Set => ("set", Some(r.value.raw.clone())),
        HeaderAction::SetIfEmpty => ("setifempty", Some(r.value.raw.clone())),
        HeaderAction::Add => ("add", Some(r.value.raw.clone())),
        HeaderAction::Append => ("append", Some(r.value.raw.clone())),
        HeaderAction::Merge => ("merge", Some(r.value.raw.clone())),
        HeaderAction::Unset => ("unset", None),
        HeaderAction::Edit {
            regex,
            replacement,
            all,
        } => {
            let _ = write!(
                t,
                " {} {} {} {}",
                if *all { "edit*" } else { "edit" },
                w(&r.name),
                w(regex.as_str()),
                w(&replacement.raw)
            );
            return with_condition(t, &r.condition);
        }
    };
    let _ = write!(t, " {action} {}", w(&r.name));
    if let Some(v) = rest {
        t.push(' ');
        t.push_str(&w(&v));
    }
    with_condition(t, &r.condition)
}

fn with_condition(mut t: String, c: &HeaderCondition) -> String {
    match c {
        HeaderCondition::None => {}
        HeaderCondition::Env(v) => {
            let _ = write!(t, " env={}", v);
        }
        HeaderCondition::NotEnv(v) => {
            let _ = write!(t, " env=!{}", v);
        }
        HeaderCondition::Early => t.push_str(" early"),
    }
    t
}

fn host_match(h: &HostMatch) -> String {
    match h {
        HostMatch::All => "all".into(),
        HostMatch::Net(n) => n.to_string(),
        HostMatch::Host(h) => h.clone(),
        HostMatch::Env(v, true) => format!("env={v}"),
        HostMatch::Env(v, false) => format!("env=!{v}"),
    }
}

fn require_leaf(r: &Require) -> String {
    match r {
        Require::AllGranted => "all granted".into(),
        Require::AllDenied => "all denied".into(),
        Require::Ip(nets) if nets.is_empty() => "all denied".into(),
        Require::Ip(nets) => {
            let n: Vec<String> = nets.iter().map(ToString::to_string).collect();
            format!("ip {}", n.join(" "))
        }
        Require::Host(h) => format!("host {}", h.join(" ")),
        Require::Local => "local".into(),
        Require::Not(inner) => format!("not {}", require_leaf(inner)),
        Require::All(_) | Require::Any(_) | Require::None(_) => "all granted".into(),
    }
}

fn error_document(code: u16, d: &ErrorDocument) -> String {
    match d {
        // A message is written quoted; one without a space gets a leading quote, as httpd
        // reads a message that does not look like a path or URL.
        ErrorDocument::Text(t) => format!("ErrorDocument {code} {}", w(t)),
        ErrorDocument::Local(p) => format!("ErrorDocument {code} {}", w(p)),
        ErrorDocument::Remote(u) => format!("ErrorDocument {code} {}", w(u)),
        ErrorDocument::Default => format!("ErrorDocument {code} default"),
    }
}

fn redirect(r: &RedirectRule) -> String {
    let (name, pat) = match &r.matcher {
        RedirectMatcher::Prefix(p) => ("Redirect", p.clone()),
        RedirectMatcher::Regex(re) => ("RedirectMatch", re.as_str().to_string()),
    };
    let mut t = format!("{name} {} {}", r.status, w(&pat));
    if let Some(u) = &r.target {
        t.push(' ');
        t.push_str(&w(u));
    }
    t
}

fn backup_site(s: &BackupSite) -> String {
    format!(
        "BackupSiteRedirect {} status={} marker={}",
        w(&s.url),
        s.status,
        s.marker
    )
}
