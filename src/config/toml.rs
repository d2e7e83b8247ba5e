//! The native TOML dialect. It compiles into the same model as the httpd dialect and runs
//! the same lints; where it can choose safer defaults than httpd, it does (member
//! certificates are verified unless `verify = false`), and durations take real units
//! (`timeout = "500ms"` means 500 milliseconds here).
//!
//! Keys are checked against the known set, so a typo is an error with a suggestion, and
//! every diagnostic carries line and column.

use super::LoadCtx;
use super::builder::{HostSel, parse_member_url};
use super::diag::{Diagnostic, Origin, closest};
use super::model::*;
use super::params::{BALANCER_KEYS, MEMBER_KEYS, set_balancer_param, set_member_param};
use ::toml::de::{DeTable, DeValue};
use serde_spanned::Spanned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct Walker<'c> {
    ctx: &'c mut LoadCtx,
    file: Arc<str>,
    line_starts: Vec<usize>,
    text: String,
    dir: PathBuf,
}

type Val<'i> = Spanned<DeValue<'i>>;

impl Walker<'_> {
    fn origin(&self, offset: usize) -> Origin {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        Origin::new(&self.file, line as u32 + 1, col as u32)
    }

    fn err(&mut self, offset: usize, msg: impl Into<String>) -> &mut Diagnostic {
        let o = self.origin(offset);
        self.ctx.diags.error(&o, msg)
    }

    fn check_keys(&mut self, t: &DeTable<'_>, known: &[&str], what: &str) {
        for (k, _) in t.iter() {
            let name: &str = k.get_ref();
            if !known.contains(&name) {
                let off = k.span().start;
                let d = self.err(off, format!("unknown key '{name}' in {what}"));
                if let Some(c) = closest(name, known.iter().copied()) {
                    d.hint(format!("did you mean '{c}'?"));
                }
            }
        }
    }

    fn str_of(&mut self, v: &Val<'_>, what: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                let t = other.type_str();
                self.err(v.span().start, format!("{what} must be a string, not {t}"));
                None
            }
        }
    }

    fn bool_of(&mut self, v: &Val<'_>, what: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let t = other.type_str();
                self.err(
                    v.span().start,
                    format!("{what} must be true or false, not {t}"),
                );
                None
            }
        }
    }

    fn int_of(&mut self, v: &Val<'_>, what: &str) -> Option<u64> {
        match v.get_ref() {
            DeValue::Integer(i) if i.radix() == 10 => match i.as_str().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(
                        v.span().start,
                        format!("{what} must be a non-negative whole number"),
                    );
                    None
                }
            },
            other => {
                let t = other.type_str();
                self.err(
                    v.span().start,
                    format!("{what} must be a whole number, not {t}"),
                );
                None
            }
        }
    }

    /// A duration: an integer (seconds) or a string with a unit (ms, s, m, h).
    fn duration_of(&mut self, v: &Val<'_>, what: &str) -> Option<Duration> {
        match v.get_ref() {
            DeValue::Integer(_) => self.int_of(v, what).map(Duration::from_secs),
            DeValue::String(s) => {
                let s = s.trim();
                let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (n, unit) = s.split_at(end);
                let Ok(n) = n.parse::<u64>() else {
                    self.err(
                        v.span().start,
                        format!("{what} = \"{s}\" is not a duration"),
                    )
                    .hint("write e.g. \"500ms\", \"30s\", \"2m\" or a number of seconds");
                    return None;
                };
                let d = match unit.trim() {
                    "ms" => Duration::from_millis(n),
                    "" | "s" => Duration::from_secs(n),
                    "m" | "min" => Duration::from_secs(n * 60),
                    "h" => Duration::from_secs(n * 3600),
                    u => {
                        self.err(v.span().start, format!("{what}: unknown unit '{u}'"))
                            .hint("units are ms, s, m and h");
                        return None;
                    }
                };
                Some(d)
            }
            other => {
                let t = other.type_str();
                self.err(
                    v.span().start,
                    format!("{what} must be a duration, not {t}"),
                );
                None
            }
        }
    }

    /// A duration that must be more than zero (a zero timeout would fail everything at
    /// once; httpd refuses 0 for the same settings).
    fn positive_duration_of(&mut self, v: &Val<'_>, what: &str) -> Option<Duration> {
        let d = self.duration_of(v, what)?;
        if d.is_zero() {
            self.err(v.span().start, format!("{what} must be more than 0"))
                .hint(format!("write e.g. {what} = \"30s\""));
            return None;
        }
        Some(d)
    }

    fn path_of(&mut self, v: &Val<'_>, what: &str) -> Option<PathBuf> {
        let s = self.str_of(v, what)?;
        let p = Path::new(&s);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        })
    }

    fn tables<'a, 'i>(&mut self, v: &'a Val<'i>, what: &str) -> Vec<&'a Spanned<DeValue<'i>>> {
        match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            DeValue::Table(_) => vec![v],
            other => {
                let t = other.type_str();
                self.err(
                    v.span().start,
                    format!("{what} must be an array of tables ([[{what}]]), not {t}"),
                );
                Vec::new()
            }
        }
    }

    fn as_table<'a, 'i>(&mut self, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                let t = other.type_str();
                self.err(v.span().start, format!("{what} must be a table, not {t}"));
                None
            }
        }
    }

    fn walk(&mut self, root: &DeTable<'_>) {
        const TOP: &[&str] = &[
            "include",
            "server",
            "listen",
            "upstream_tls",
            "balancer",
            "route",
            "header",
            "request_header",
            "location",
            "httpd",
            "site_redirect",
        ];
        self.check_keys(root, TOP, "the top level");
        // Server settings first: they hold defaults other sections read.
        if let Some(s) = root.get("server") {
            self.server(s);
        }
        if let Some(t) = root.get("upstream_tls") {
            self.upstream_tls(t);
        }
        if let Some(l) = root.get("listen") {
            for t in self.tables(l, "listen") {
                self.listen(t);
            }
        }
        if let Some(b) = root.get("balancer") {
            for t in self.tables(b, "balancer") {
                self.balancer(t);
            }
        }
        if let Some(r) = root.get("route") {
            for t in self.tables(r, "route") {
                self.route(t);
            }
        }
        for (key, req) in [("header", false), ("request_header", true)] {
            if let Some(h) = root.get(key) {
                for t in self.tables(h, key) {
                    if let Some(rule) = self.header_rule(t, req) {
                        let main = self.ctx.builder.host_mut(HostSel::Main);
                        if req {
                            main.request_headers.push(rule);
                        } else {
                            main.response_headers.push(rule);
                        }
                    }
                }
            }
        }
        if let Some(l) = root.get("location") {
            for t in self.tables(l, "location") {
                self.location(t);
            }
        }
        if let Some(r) = root.get("site_redirect") {
            for t in self.tables(r, "site_redirect") {
                self.site_redirect(t);
            }
        }
        // httpd directives for what this dialect has no key for, read in place.
        if let Some(h) = root.get("httpd") {
            self.httpd_lines(h);
        }
        // Includes last, in order, so a TOML main file can pull in httpd tenant files.
        if let Some(inc) = root.get("include") {
            let items: Vec<&Val<'_>> = match inc.get_ref() {
                DeValue::Array(a) => a.iter().collect(),
                _ => vec![inc],
            };
            for it in items {
                let Some(pat) = self.str_of(it, "include") else {
                    continue;
                };
                let full = if Path::new(&pat).is_absolute() {
                    PathBuf::from(&pat)
                } else {
                    self.dir.join(&pat)
                };
                let o = self.origin(it.span().start);
                match super::resolve_include(&full) {
                    Ok(files) => {
                        if super::has_wildcard(&pat) || full.is_dir() {
                            self.ctx
                                .builder
                                .config
                                .watch_dirs
                                .push(super::wildcard_dir(&full));
                            self.ctx.builder.config.include_patterns.push(full.clone());
                        } else if files.is_empty() {
                            self.ctx
                                .diags
                                .error(&o, format!("include {pat}: no such file"));
                        }
                        for f in files {
                            self.ctx.load_path(&f, Some(&o));
                        }
                    }
                    Err(e) => {
                        // Wildcard includes of missing folders are optional in TOML.
                        if !super::has_wildcard(&pat) {
                            self.ctx.diags.error(&o, format!("include {pat}: {e}"));
                        }
                    }
                }
            }
        }
    }

    /// `httpd = ["Directive args", ...]`: httpd-dialect lines, read by the httpd parser in
    /// the main server's context after this file's tables. Each line keeps its place in the
    /// TOML file, so a diagnostic points at the string it came from.
    fn httpd_lines(&mut self, v: &Val<'_>) {
        let items: Vec<&Val<'_>> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![v],
        };
        let mut text = String::new();
        let mut line = 1u32;
        for it in items {
            let Some(s) = self.str_of(it, "httpd") else {
                continue;
            };
            let o = self.origin(it.span().start);
            for part in s.split('\n') {
                if line < o.line {
                    while line < o.line {
                        text.push('\n');
                        line += 1;
                    }
                } else if !text.is_empty() {
                    text.push('\n');
                    line += 1;
                }
                // The directive's column is the first character inside the quotes.
                text.push_str(&" ".repeat(o.col as usize));
                text.push_str(part);
            }
        }
        let path = PathBuf::from(&*self.file);
        let mut p = super::httpd::HttpdParser::new(self.ctx);
        p.parse_file(&path, &text);
    }

    /// `backup_site = { url = "https://…", status = 307, marker = "bd-failover" }`.
    fn backup_site(&mut self, v: &Val<'_>) -> Option<BackupSite> {
        let t = self.as_table(v, "backup_site")?;
        self.check_keys(t, &["url", "status", "marker"], "backup_site");
        let o = self.origin(v.span().start);
        let Some(u) = t.get("url") else {
            self.ctx
                .diags
                .error(&o, "backup_site needs url = \"https://backup-site\"");
            return None;
        };
        let url = self.str_of(u, "url")?;
        let url = match super::httpd::site::base_url(&url) {
            Ok(x) => x,
            Err(e) => {
                self.err(u.span().start, e);
                return None;
            }
        };
        let mut site = BackupSite {
            url,
            status: 307,
            marker: "bd-failover".into(),
            origin: o,
        };
        if let Some(s) = t.get("status") {
            let n = self.int_of(s, "status")?;
            match super::httpd::site::redirect_status(&n.to_string()) {
                Ok(c) => site.status = c,
                Err(e) => {
                    self.err(s.span().start, e);
                    return None;
                }
            }
        }
        if let Some(m) = t.get("marker") {
            let name = self.str_of(m, "marker")?;
            match super::httpd::site::param_name(&name) {
                Ok(n) => site.marker = n,
                Err(e) => {
                    self.err(m.span().start, e);
                    return None;
                }
            }
        }
        Some(site)
    }

    /// `[[site_redirect]] entry = "agents.example.com/ui", local = "https://…",
    /// backup_host = "…", param = "site-1", status = 302`.
    fn site_redirect(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "site_redirect") else {
            return;
        };
        self.check_keys(
            t,
            &["entry", "local", "backup_host", "param", "status"],
            "[[site_redirect]]",
        );
        let o = self.origin(v.span().start);
        let mut words = Vec::new();
        for key in ["entry", "local", "backup_host"] {
            let Some(x) = t.get(key) else {
                self.ctx
                    .diags
                    .error(&o, "a site_redirect needs entry, local and backup_host");
                return;
            };
            let Some(s) = self.str_of(x, key) else {
                return;
            };
            words.push(s);
        }
        if let Some(p) = t.get("param") {
            words.push(format!(
                "param={}",
                self.str_of(p, "param").unwrap_or_default()
            ));
        }
        if let Some(s) = t.get("status") {
            words.push(format!("status={}", self.int_of(s, "status").unwrap_or(0)));
        }
        match super::httpd::site::parse_site_redirect(&words, o.clone()) {
            Ok(r) => self.ctx.builder.config.site_redirects.push(r),
            Err(e) => {
                self.ctx.diags.error(&o, e);
            }
        }
    }

    fn server(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "server") else {
            return;
        };
        const K: &[&str] = &[
            "name",
            "timeout",
            "proxy_timeout",
            "keepalive",
            "keepalive_timeout",
            "max_keepalive_requests",
            "preserve_host",
            "add_forwarded_headers",
            "limit_request_line",
            "limit_request_field_size",
            "limit_request_fields",
            "limit_request_body",
            "pid_file",
            "log_level",
            "graceful_timeout",
            "access_log",
            "log_format",
            "request_read_timeout",
            "underscores_in_headers",
            "shutdown_delay",
        ];
        self.check_keys(t, K, "[server]");
        for (k, val) in t.iter() {
            let key: &str = k.get_ref();
            match key {
                "name" => self.ctx.builder.config.server.server_name = self.str_of(val, key),
                "timeout" => {
                    if let Some(d) = self.positive_duration_of(val, key) {
                        self.ctx.builder.config.server.timeout = d;
                    }
                }
                "proxy_timeout" => {
                    self.ctx.builder.config.server.proxy_timeout =
                        self.positive_duration_of(val, key)
                }
                "keepalive" => {
                    if let Some(b) = self.bool_of(val, key) {
                        self.ctx.builder.config.server.keepalive = b;
                    }
                }
                "keepalive_timeout" => {
                    if let Some(d) = self.positive_duration_of(val, key) {
                        self.ctx.builder.config.server.keepalive_timeout = d;
                    }
                }
                "preserve_host" => {
                    if let Some(b) = self.bool_of(val, key) {
                        self.ctx.builder.config.server.preserve_host = b;
                    }
                }
                "underscores_in_headers" => {
                    if let Some(b) = self.bool_of(val, key) {
                        self.ctx.builder.config.server.underscores_in_headers = b;
                    }
                }
                "add_forwarded_headers" => {
                    if let Some(b) = self.bool_of(val, key) {
                        self.ctx.builder.config.server.add_headers = b;
                    }
                }
                "max_keepalive_requests"
                | "limit_request_line"
                | "limit_request_field_size"
                | "limit_request_fields"
                | "limit_request_body" => {
                    if let Some(n) = self.int_of(val, key) {
                        let s = &mut self.ctx.builder.config.server;
                        let n32 = n.min(u32::MAX as u64) as u32;
                        match key {
                            "max_keepalive_requests" => s.max_keepalive_requests = n32,
                            "limit_request_line" => s.limit_request_line = n32,
                            "limit_request_field_size" => s.limit_request_field_size = n32,
                            "limit_request_fields" => s.limit_request_fields = n32,
                            _ => s.limit_request_body = n,
                        }
                    }
                }
                "pid_file" => self.ctx.builder.config.server.pid_file = self.path_of(val, key),
                "request_read_timeout" => {
                    use super::params::{ReadStageName, request_read_timeout};
                    let Some(text) = self.str_of(val, key) else {
                        continue;
                    };
                    for word in text.split_whitespace() {
                        match request_read_timeout(word) {
                            Ok((ReadStageName::Header, st)) => {
                                self.ctx.builder.config.server.header_read_timeout = st
                            }
                            Ok((ReadStageName::Body, st)) => {
                                self.ctx.builder.config.server.body_read_timeout = st
                            }
                            Ok((ReadStageName::Handshake, _)) => {}
                            Err(p) => self.issue(val.span().start, p),
                        }
                    }
                }
                "access_log" => {
                    if let Some(p) = self.path_of(val, key) {
                        let fmt = t
                            .get("log_format")
                            .and_then(|f| f.get_ref().as_str().map(str::to_string))
                            .unwrap_or_else(|| "combined".into());
                        let fmt = match fmt.as_str() {
                            "common" => crate::telemetry::access_log::COMMON,
                            "combined" => crate::telemetry::access_log::COMBINED,
                            f => f,
                        };
                        match crate::telemetry::access_log::LogFormat::parse(fmt) {
                            Ok(f) => {
                                self.ctx
                                    .builder
                                    .config
                                    .main
                                    .access_logs
                                    .push((p, std::sync::Arc::new(f)));
                            }
                            Err(e) => {
                                self.err(val.span().start, e);
                            }
                        }
                    }
                }
                "log_format" => {}
                "shutdown_delay" => {
                    if let Some(d) = self.duration_of(val, key) {
                        self.ctx.builder.config.server.shutdown_delay = d;
                    }
                }
                "graceful_timeout" => {
                    if let Some(d) = self.duration_of(val, key) {
                        self.ctx.builder.config.server.graceful_timeout = d;
                    }
                }
                "log_level" => self.ctx.builder.config.server.log_level = self.str_of(val, key),
                _ => {}
            }
        }
    }

    fn upstream_tls(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "upstream_tls") else {
            return;
        };
        const K: &[&str] = &[
            "verify",
            "ca",
            "check_peer_name",
            "client_cert",
            "client_key",
        ];
        self.check_keys(t, K, "[upstream_tls]");
        let o = self.origin(v.span().start);
        let mut u = UpstreamTls {
            engine: true,
            engine_origin: Some(o),
            verify: true,
            verify_explicit: true,
            check_peer_name: true,
            check_peer_cn: true,
            check_peer_expire: true,
            ..Default::default()
        };
        for (k, val) in t.iter() {
            match k.get_ref().as_ref() {
                "verify" => u.verify = self.bool_of(val, "verify").unwrap_or(true),
                "ca" => u.ca_file = self.path_of(val, "ca"),
                "check_peer_name" => {
                    u.check_peer_name = self.bool_of(val, "check_peer_name").unwrap_or(true)
                }
                "client_cert" => u.client_cert_file = self.path_of(val, "client_cert"),
                "client_key" => u.client_key_file = self.path_of(val, "client_key"),
                _ => {}
            }
        }
        if let Err(e) = u.client_config() {
            let o = self.origin(v.span().start);
            self.ctx.diags.error(&o, e);
        }
        self.ctx.builder.config.upstream_tls = u;
    }

    fn listen(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "listen") else {
            return;
        };
        self.check_keys(t, &["addr", "tls", "protocol"], "[[listen]]");
        let o = self.origin(v.span().start);
        let Some(a) = t.get("addr") else {
            self.ctx
                .diags
                .error(&o, "[[listen]] needs addr = \"ip:port\"");
            return;
        };
        let text = match a.get_ref() {
            DeValue::Integer(i) => i.as_str().to_string(),
            DeValue::String(s) => s.to_string(),
            _ => {
                self.err(a.span().start, "addr must be \"ip:port\" or a port number");
                return;
            }
        };
        let addr = text
            .parse::<u16>()
            .ok()
            .map(|p| std::net::SocketAddr::from(([0, 0, 0, 0], p)))
            .or_else(|| text.parse().ok());
        let Some(addr) = addr else {
            self.err(a.span().start, format!("addr '{text}' is not ip:port"))
                .hint("write e.g. addr = \"127.0.0.1:8080\"");
            return;
        };
        if let Some(prev) = self
            .ctx
            .builder
            .config
            .listeners
            .iter()
            .find(|l| l.addr == addr)
        {
            let p = prev.origin.clone();
            self.err(
                a.span().start,
                format!("{addr} is already a listener (at {p})"),
            );
            return;
        }
        let mut tls = Vec::new();
        if let Some(tv) = t.get("tls") {
            for ct in self.tables(tv, "tls") {
                let Some(ctab) = self.as_table(ct, "tls") else {
                    continue;
                };
                self.check_keys(ctab, &["cert", "key", "chain", "sni"], "[[listen.tls]]");
                let co = self.origin(ct.span().start);
                let mut f = FrontTls {
                    engine: true,
                    origin: Some(co.clone()),
                    ..Default::default()
                };
                for (k, val) in ctab.iter() {
                    match k.get_ref().as_ref() {
                        "cert" => f.cert_file = self.path_of(val, "cert"),
                        "key" => f.key_file = self.path_of(val, "key"),
                        "chain" => f.chain_file = self.path_of(val, "chain"),
                        "sni" => match val.get_ref() {
                            DeValue::Array(arr) => {
                                for s in arr.iter() {
                                    if let Some(n) = self.str_of(s, "sni") {
                                        f.sni_names.push(n);
                                    }
                                }
                            }
                            _ => {
                                if let Some(n) = self.str_of(val, "sni") {
                                    f.sni_names.push(n);
                                }
                            }
                        },
                        _ => {}
                    }
                }
                if f.cert_file.is_none() {
                    self.ctx
                        .diags
                        .error(&co, "a [[listen.tls]] entry needs cert = \"file.pem\"");
                } else if let Err(e) = f.certified_key() {
                    self.ctx.diags.error(&co, e);
                }
                tls.push(f);
            }
        }
        // `protocol` as httpd's `Listen addr protocol` (default: https with certificates,
        // else none, which is http).
        let protocol = match t.get("protocol") {
            Some(p) => self.str_of(p, "protocol").map(|s| s.to_ascii_lowercase()),
            None => None,
        };
        self.ctx.builder.saw_listen = true;
        self.ctx.builder.config.listeners.push(Listener {
            addr,
            protocol: protocol.or_else(|| (!tls.is_empty()).then(|| "https".into())),
            tls,
            origin: self.origin(v.span().start),
        });
    }

    /// A parameter value as httpd would have written it.
    fn param_text(&mut self, v: &Val<'_>, key: &str) -> Option<String> {
        Some(match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => i.as_str().to_string(),
            DeValue::Float(f) => f.as_str().to_string(),
            DeValue::Boolean(b) => if *b { "On" } else { "Off" }.to_string(),
            other => {
                let t = other.type_str();
                self.err(v.span().start, format!("{key} cannot be {t}"));
                return None;
            }
        })
    }

    fn issue(&mut self, off: usize, p: super::params::ParamIssue) {
        let o = self.origin(off);
        let mut d = Diagnostic::new(p.severity, Some(o), p.message);
        d.hint = p.hint;
        self.ctx.diags.push(d);
    }

    fn balancer(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "balancer") else {
            return;
        };
        let mut known: Vec<&str> = vec![
            "name",
            "member",
            "header",
            "request_header",
            "reverse",
            "cookie_path",
            "cookie_domain",
            "backup_site",
        ];
        known.extend(BALANCER_KEYS.iter().copied());
        self.check_keys(t, &known, "[[balancer]]");
        let o = self.origin(v.span().start);
        let Some(nv) = t.get("name") else {
            self.ctx
                .diags
                .error(&o, "[[balancer]] needs name = \"...\"");
            return;
        };
        let Some(name) = self.str_of(nv, "name") else {
            return;
        };
        let name = name.to_ascii_lowercase();
        // The name is the host part of `balancer://name`: letters, digits and `.-_~`.
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'~'))
        {
            self.err(
                nv.span().start,
                format!("balancer name '{name}' is not a name balancer:// can carry"),
            )
            .hint("use letters, digits, '.', '-', '_' or '~' (e.g. name = \"t1rws\")");
            return;
        }
        if self.ctx.builder.find_balancer(&name).is_some() {
            self.err(
                nv.span().start,
                format!("balancer '{name}' is defined twice"),
            )
            .hint("the TOML dialect does not merge balancers; use one [[balancer]] per name");
            return;
        }
        let bi = self.ctx.builder.balancer_index(&name, &o);
        for (k, val) in t.iter() {
            let key: &str = k.get_ref();
            if !BALANCER_KEYS.contains(&key) {
                continue;
            }
            if key == "timeout" {
                let d = self.positive_duration_of(val, key);
                self.ctx.builder.config.balancers[bi].params.timeout = d;
                continue;
            }
            let Some(text) = self.param_text(val, key) else {
                continue;
            };
            let p = &mut self.ctx.builder.config.balancers[bi].params;
            match set_balancer_param(p, key, &text) {
                Ok(w) => {
                    if key == "stickysession" {
                        let so = self.origin(val.span().start);
                        self.ctx.builder.config.balancers[bi].params.sticky_origin = Some(so);
                    }
                    if let Some(w) = w {
                        self.issue(val.span().start, w);
                    }
                }
                Err(e) => self.issue(val.span().start, e),
            }
        }
        if let Some(m) = t.get("member") {
            for mt in self.tables(m, "member") {
                self.member(bi, mt);
            }
        }
        if let Some(bs) = t.get("backup_site")
            && let Some(site) = self.backup_site(bs)
        {
            self.ctx.builder.config.balancers[bi].backup_site = Some(site);
        }
        for (key, req) in [("header", false), ("request_header", true)] {
            if let Some(h) = t.get(key) {
                for ht in self.tables(h, key) {
                    if let Some(rule) = self.header_rule(ht, req) {
                        let b = &mut self.ctx.builder.config.balancers[bi];
                        if req {
                            b.request_headers.push(rule);
                        } else {
                            b.response_headers.push(rule);
                        }
                    }
                }
            }
        }
        for key in ["reverse", "cookie_path", "cookie_domain"] {
            if let Some(h) = t.get(key) {
                for rt in self.tables(h, key) {
                    let Some(tab) = self.as_table(rt, key) else {
                        continue;
                    };
                    self.check_keys(tab, &["public", "internal"], key);
                    let ro = self.origin(rt.span().start);
                    let public = tab.get("public").and_then(|x| self.str_of(x, "public"));
                    let internal = tab.get("internal").and_then(|x| self.str_of(x, "internal"));
                    let (Some(public), Some(internal)) = (public, internal) else {
                        self.ctx.diags.error(
                            &ro,
                            format!("{key} needs public = \"...\" and internal = \"...\""),
                        );
                        continue;
                    };
                    let map = ReverseMap {
                        public,
                        internal,
                        origin: ro,
                    };
                    let r = &mut self.ctx.builder.config.balancers[bi].reverse;
                    match key {
                        "reverse" => r.location.push(map),
                        "cookie_path" => r.cookie_path.push(map),
                        _ => r.cookie_domain.push(map),
                    }
                }
            }
        }
    }

    fn member(&mut self, bi: usize, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "member") else {
            return;
        };
        let mut known: Vec<&str> = vec!["url"];
        known.extend(MEMBER_KEYS.iter().copied());
        self.check_keys(t, &known, "[[balancer.member]]");
        let o = self.origin(v.span().start);
        let Some(uv) = t.get("url") else {
            self.ctx
                .diags
                .error(&o, "a member needs url = \"http://host:port\"");
            return;
        };
        let Some(url) = self.str_of(uv, "url") else {
            return;
        };
        let (u, upgrade) = match parse_member_url(&url) {
            Ok(x) => x,
            Err(e) => {
                self.err(uv.span().start, e);
                return;
            }
        };
        let mut p = MemberParams {
            upgrade,
            ..Default::default()
        };
        let mut had = false;
        for (k, val) in t.iter() {
            let key: &str = k.get_ref();
            if key == "url" || !MEMBER_KEYS.contains(&key) {
                continue;
            }
            had = true;
            match key {
                "retry" | "timeout" | "connectiontimeout" | "acquire" | "ping" | "ttl"
                | "hcinterval" => {
                    let Some(d) = self.duration_of(val, key) else {
                        continue;
                    };
                    // The same lower bounds as the httpd dialect's (retry may be 0).
                    let min = match key {
                        "retry" => Duration::ZERO,
                        "hcinterval" => Duration::from_millis(100),
                        _ => Duration::from_millis(1),
                    };
                    if d < min {
                        self.err(
                            val.span().start,
                            format!("{key} must be at least {} ms", min.as_millis()),
                        );
                        continue;
                    }
                    match key {
                        "retry" => p.retry = d,
                        "timeout" => p.timeout = Some(d),
                        "connectiontimeout" => p.connection_timeout = Some(d),
                        "acquire" => p.acquire = Some(d),
                        "ping" => p.ping = Some(d),
                        "ttl" => p.ttl = Some(d),
                        _ => p.hc.interval = d,
                    }
                }
                _ => {
                    let Some(text) = self.param_text(val, key) else {
                        continue;
                    };
                    match set_member_param(&mut p, key, &text) {
                        Ok(None) => {}
                        Ok(Some(w)) | Err(w) => self.issue(val.span().start, w),
                    }
                }
            }
        }
        let uo = self.origin(uv.span().start);
        self.ctx
            .builder
            .add_member(bi, u, p, had, uo, &mut self.ctx.diags);
    }

    fn route(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "route") else {
            return;
        };
        self.check_keys(
            t,
            &["path", "match", "to", "noquery", "nocanon", "upgrade"],
            "[[route]]",
        );
        let o = self.origin(v.span().start);
        let matcher = match (t.get("path"), t.get("match")) {
            (Some(p), None) => {
                let Some(s) = self.str_of(p, "path") else {
                    return;
                };
                if !s.starts_with('/') {
                    self.err(p.span().start, format!("path '{s}' must start with '/'"));
                    return;
                }
                RouteMatch::Prefix(s)
            }
            (None, Some(m)) => {
                let Some(s) = self.str_of(m, "match") else {
                    return;
                };
                match regex::Regex::new(&s) {
                    Ok(r) => RouteMatch::Regex(r),
                    Err(e) => {
                        self.err(m.span().start, format!("match regex does not compile: {e}"));
                        return;
                    }
                }
            }
            _ => {
                self.ctx.diags.error(
                    &o,
                    "a route needs exactly one of path = \"/prefix\" or match = \"regex\"",
                );
                return;
            }
        };
        let Some(tv) = t.get("to") else {
            self.ctx
                .diags
                .error(&o, "a route needs to = \"balancer://name/path\" (or \"!\")");
            return;
        };
        let Some(to) = self.str_of(tv, "to") else {
            return;
        };
        let target = if to == "!" {
            RouteTarget::Exclude
        } else if let Some(rest) = to.to_ascii_lowercase().strip_prefix("balancer://") {
            let (name, _) = rest.split_once('/').unwrap_or((rest, ""));
            let path = to[11 + name.len()..].to_string();
            let bi = match self.ctx.builder.find_balancer(name) {
                Some(i) => i,
                None => {
                    self.err(
                        tv.span().start,
                        format!("no [[balancer]] named '{name}' is defined above this route"),
                    )
                    .hint("define the balancer before the routes that use it");
                    return;
                }
            };
            RouteTarget::Balancer { balancer: bi, path }
        } else {
            self.err(
                tv.span().start,
                format!("to = \"{to}\" must be balancer://name/path or \"!\""),
            );
            return;
        };
        let mut route = Route {
            matcher,
            target,
            target_text: to,
            nocanon: false,
            noquery: false,
            upgrade: None,
            in_location: false,
            origin: o,
        };
        if let Some(b) = t.get("noquery") {
            route.noquery = self.bool_of(b, "noquery").unwrap_or(false);
        }
        if let Some(b) = t.get("nocanon") {
            route.nocanon = self.bool_of(b, "nocanon").unwrap_or(false);
        }
        if let Some(u) = t.get("upgrade") {
            route.upgrade = self.str_of(u, "upgrade");
        }
        self.ctx.builder.host_mut(HostSel::Main).routes.push(route);
    }

    fn header_rule(&mut self, v: &Val<'_>, request: bool) -> Option<HeaderRule> {
        let t = self.as_table(v, "header")?;
        self.check_keys(
            t,
            &["action", "name", "value", "env", "always", "replacement"],
            "header rule",
        );
        let o = self.origin(v.span().start);
        let mut words: Vec<(String, Origin)> = Vec::new();
        if let Some(a) = t.get("always")
            && self.bool_of(a, "always") == Some(true)
        {
            words.push(("always".into(), o.clone()));
        }
        for key in ["action", "name", "value", "replacement"] {
            if let Some(x) = t.get(key) {
                let s = self.str_of(x, key)?;
                words.push((s, self.origin(x.span().start)));
            }
        }
        if let Some(e) = t.get("env") {
            let s = self.str_of(e, "env")?;
            words.push((format!("env={s}"), self.origin(e.span().start)));
        }
        match super::headers::parse_header_directive(&words, request, &o) {
            Ok(r) => Some(r),
            Err((eo, p)) => {
                let mut d = Diagnostic::new(p.severity, Some(eo), p.message);
                d.hint = p.hint;
                self.ctx.diags.push(d);
                None
            }
        }
    }

    fn location(&mut self, v: &Val<'_>) {
        let Some(t) = self.as_table(v, "location") else {
            return;
        };
        self.check_keys(t, &["path", "handler", "allow"], "[[location]]");
        let o = self.origin(v.span().start);
        let Some(path) = t.get("path").and_then(|p| self.str_of(p, "path")) else {
            self.ctx
                .diags
                .error(&o, "a location needs path = \"/server-status\"");
            return;
        };
        let handler = match t.get("handler") {
            None => None,
            Some(h) => {
                match self.str_of(h, "handler").as_deref() {
                    Some("server-status") => Some(Handler::ServerStatus),
                    Some("balancer-manager") => Some(Handler::BalancerManager),
                    Some("metrics") => Some(Handler::Metrics),
                    Some("ready") => Some(Handler::Ready),
                    Some("live") => Some(Handler::Live),
                    Some(other) => {
                        self.err(h.span().start, format!("unknown handler '{other}'"))
                        .hint("handlers are server-status, balancer-manager, metrics, ready and live");
                        return;
                    }
                    None => return,
                }
            }
        };
        let mut access = AccessRules::default();
        match t.get("allow") {
            Some(a) => {
                let mut nets = Vec::new();
                if let DeValue::Array(arr) = a.get_ref() {
                    for x in arr.iter() {
                        let Some(s) = self.str_of(x, "allow") else {
                            continue;
                        };
                        match super::httpd::parse_net(&s) {
                            Some(n) => nets.push(n),
                            None => {
                                self.err(
                                    x.span().start,
                                    format!("'{s}' is not an address or network"),
                                );
                            }
                        }
                    }
                } else {
                    self.err(
                        a.span().start,
                        "allow must be a list of addresses or networks",
                    );
                }
                // An empty list lets no one in: httpd's `Require all denied`.
                access.require = Some(Require::Any(vec![if nets.is_empty() {
                    Require::AllDenied
                } else {
                    Require::Ip(nets)
                }]));
            }
            None => {
                if handler.is_some() {
                    self.ctx
                        .diags
                        .warning(&o, format!("{path} has no allow list: anyone who can reach the listener can read it"))
                        .hint("add allow = [\"127.0.0.1\"]");
                }
            }
        }
        self.ctx
            .builder
            .host_mut(HostSel::Main)
            .locations
            .push(LocationSection {
                handler,
                access,
                ..LocationSection::new(path, None, o)
            });
    }
}

/// Reads a TOML file into the shared builder.
pub fn load_text(ctx: &mut LoadCtx, path: &Path, text: &str) {
    let file: Arc<str> = Arc::from(path.display().to_string());
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut w = Walker {
        ctx,
        file,
        line_starts,
        text: text.to_string(),
        dir,
    };
    match DeTable::parse(text) {
        Ok(root) => w.walk(root.get_ref()),
        Err(e) => {
            let off = e.span().map_or(0, |s| s.start);
            let msg = e.message().trim().to_string();
            w.err(off, format!("TOML syntax: {msg}"));
        }
    }
}
