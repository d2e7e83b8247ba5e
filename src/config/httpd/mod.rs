//! The httpd dialect: reads the admins' existing Apache files as httpd 2.4 reads them and
//! feeds the shared [`ModelBuilder`]. Sections, includes and `Define`s are tracked here;
//! parameter meaning lives in `params.rs`, header formats in `headers.rs`.

pub mod lexer;

use super::LoadCtx;
use super::builder::{HostSel, ScopedCookiePath, parse_member_url};
use super::diag::{Diagnostic, Origin, closest};
use super::headers::parse_header_directive;
use super::model::*;
use super::params::{ParamIssue, set_balancer_param, set_member_param, timeout_with_unit};
use crate::telemetry::access_log::LogFormat;
use lexer::{LogicalLine, Word, logical_lines, split_words, substitute};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Directives balancerd implements.
const SUPPORTED: &[&str] = &[
    "Listen",
    "ServerName",
    "ServerAlias",
    "ServerRoot",
    "Define",
    "UnDefine",
    "Include",
    "IncludeOptional",
    "BalancerMember",
    "ProxySet",
    "ProxyPass",
    "ProxyPassMatch",
    "ProxyPassReverse",
    "ProxyPassReverseCookiePath",
    "ProxyPassReverseCookieDomain",
    "ProxyPreserveHost",
    "ProxyTimeout",
    "ProxyAddHeaders",
    "ProxyRequests",
    "ProxyVia",
    "ProxyStatus",
    "ProxyHCExpr",
    "ProxyHCTemplate",
    "ProxyHCTPsize",
    "Timeout",
    "KeepAlive",
    "KeepAliveTimeout",
    "MaxKeepAliveRequests",
    "LimitRequestLine",
    "LimitRequestFieldSize",
    "LimitRequestFields",
    "LimitRequestBody",
    "Header",
    "RequestHeader",
    "SetHandler",
    "Order",
    "Allow",
    "Deny",
    "Satisfy",
    "Require",
    "SSLEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "SSLCertificateChainFile",
    "SSLProtocol",
    "SSLCipherSuite",
    "SSLProxyEngine",
    "SSLProxyVerify",
    "SSLProxyCACertificateFile",
    "SSLProxyCheckPeerName",
    "SSLProxyCheckPeerCN",
    "SSLProxyCheckPeerExpire",
    "SSLProxyMachineCertificateFile",
    "SSLProxyProtocol",
    "PidFile",
    "LogLevel",
    "GracefulShutdownTimeout",
    "LogFormat",
    "CustomLog",
];

/// httpd directives that mean nothing to balancerd: a note, then skipped.
const IGNORED: &[&str] = &[
    "LoadModule",
    "User",
    "Group",
    "ErrorLog",
    "DocumentRoot",
    "ServerAdmin",
    "ServerTokens",
    "ServerSignature",
    "AddDefaultCharset",
    "EnableSendfile",
    "EnableMMAP",
    "TypesConfig",
    "AddType",
    "AddHandler",
    "DirectoryIndex",
    "Options",
    "AllowOverride",
    "StartServers",
    "MinSpareServers",
    "MaxSpareServers",
    "MinSpareThreads",
    "MaxSpareThreads",
    "ThreadsPerChild",
    "ThreadLimit",
    "MaxRequestWorkers",
    "ServerLimit",
    "MaxConnectionsPerChild",
    "MaxClients",
    "MaxRequestsPerChild",
    "ListenBackLog",
    "HostnameLookups",
    "UseCanonicalName",
    "TraceEnable",
    "ExtendedStatus",
    "Mutex",
    "DefaultRuntimeDir",
    "SSLRandomSeed",
    "SSLSessionCache",
    "SSLSessionCacheTimeout",
    "SSLPassPhraseDialog",
    "SSLCryptoDevice",
    "SSLHonorCipherOrder",
    "SSLCompression",
    "SSLProxyVerifyDepth",
    "SSLProxyCipherSuite",
    "ErrorLogFormat",
    "MIMEMagicFile",
    "AddLanguage",
    "LanguagePriority",
    "ForceLanguagePriority",
    "AddOutputFilter",
    "AddCharset",
    "BalancerPersist",
    "BalancerGrowth",
    "BalancerInherit",
    "ProxyPassInherit",
    "ProxyErrorOverride",
    "IndexOptions",
    "IndexIgnore",
    "Alias",
    "ScriptAlias",
];

/// Section tags whose content has no meaning to balancerd (skipped with a note).
const IGNORED_SECTIONS: &[&str] = &[
    "Directory",
    "DirectoryMatch",
    "Files",
    "FilesMatch",
    "Limit",
    "LimitExcept",
    "If",
    "ElseIf",
    "Else",
    "IfVersion",
];

/// Modules balancerd implements: `<IfModule>` is true for these.
const MODULES: &[&str] = &[
    "proxy",
    "proxy_balancer",
    "proxy_http",
    "proxy_wstunnel",
    "proxy_hcheck",
    "headers",
    "status",
    "ssl",
    "lbmethod_byrequests",
    "lbmethod_bybusyness",
    "lbmethod_bytraffic",
    "access_compat",
    "authz_core",
    "authz_host",
    "slotmem_shm",
    "log_config",
    "mpm_event",
    "unixd",
    "watchdog",
];

fn module_known(m: &str) -> bool {
    let m = m.trim();
    let base = if let Some(c) = m.strip_prefix("mod_") {
        c.strip_suffix(".c").unwrap_or(c)
    } else {
        m.strip_suffix("_module").unwrap_or(m)
    };
    MODULES.iter().any(|k| k.eq_ignore_ascii_case(base))
}

/// Directives that take `key=value` words; a following line made only of such words is
/// joined to them (the vendor guide's wrapped lines).
const TAKES_KEY_VALUES: &[&str] = &[
    "balancermember",
    "proxyset",
    "proxypass",
    "proxypassmatch",
    "header",
    "requestheader",
];

/// An open section.
#[derive(Debug)]
enum Frame {
    Proxy {
        balancer: Option<usize>,
        origin: Origin,
        /// Members and sticky setting when a repeated section opened (for the merge warning).
        reopened: Option<(usize, Option<StickySession>, Option<Origin>, Origin)>,
    },
    Location {
        host: HostSel,
        index: usize,
    },
    VirtualHost,
    Conditional,
    Require {
        kind: &'static str,
        items: Vec<Require>,
        origin: Origin,
    },
}

impl Frame {
    fn tag(&self) -> &'static str {
        match self {
            Frame::Proxy { .. } => "proxy",
            Frame::Location { .. } => "location",
            Frame::VirtualHost => "virtualhost",
            Frame::Conditional => "if",
            Frame::Require { .. } => "require",
        }
    }
}

/// One directive as read: name, words and position.
struct Dir {
    name: String,
    lower: String,
    args: Vec<Word>,
    file: Arc<str>,
    line: u32,
    indent: u32,
}

impl Dir {
    fn origin(&self) -> Origin {
        Origin::new(&self.file, self.line, self.indent + 1)
    }
    fn arg_origin(&self, i: usize) -> Origin {
        match self.args.get(i) {
            Some(w) => Origin::new(&self.file, self.line, self.indent + w.offset + 1),
            None => self.origin(),
        }
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|w| w.text.as_str())
    }
}

/// Reads httpd-dialect files into the shared builder.
pub struct HttpdParser<'a> {
    ctx: &'a mut LoadCtx,
    stack: Vec<Frame>,
    host: HostSel,
}

impl<'a> HttpdParser<'a> {
    /// A parser at the top level of the main server.
    pub fn new(ctx: &'a mut LoadCtx) -> Self {
        HttpdParser {
            ctx,
            stack: Vec::new(),
            host: HostSel::Main,
        }
    }

    /// Reads one file (and everything it includes).
    pub fn parse_file(&mut self, path: &Path, text: &str) {
        let file: Arc<str> = Arc::from(path.display().to_string());
        let lines = logical_lines(text);
        let base_depth = self.stack.len();
        let mut i = 0;
        while i < lines.len() {
            let ll = &lines[i];
            i += 1;
            let mut words = self.words_of(&file, ll);
            if words.is_empty() {
                continue;
            }
            // Join following lines made only of key=value words (the guide's wrapped lines).
            let lower0 = words[0].text.to_ascii_lowercase();
            if TAKES_KEY_VALUES.contains(&lower0.as_str()) {
                while i < lines.len() && is_wrapped_kv_line(&lines[i].text) {
                    let next = &lines[i];
                    let nw = self.words_of(&file, next);
                    let joined: Vec<&str> = nw.iter().map(|w| w.text.as_str()).collect();
                    let origin = Origin::new(&file, next.line, next.indent + 1);
                    self.ctx
                        .diags
                        .warning(
                            &origin,
                            format!(
                                "line {} holds only '{}'; joined to the {} directive on line {} (httpd rejects this file: Invalid command '{}')",
                                next.line,
                                joined.join(" "),
                                words[0].text,
                                ll.line,
                                nw[0].text
                            ),
                        )
                        .hint(format!(
                            "move it to the end of line {}, or end line {} with a backslash",
                            ll.line, ll.line
                        ));
                    // Offsets of joined words point past the end of the first line's text.
                    let base = ll.text.chars().count() as u32 + 1;
                    for mut w in nw {
                        w.offset += base;
                        words.push(w);
                    }
                    i += 1;
                }
            }
            let first = words.remove(0);
            let d = Dir {
                lower: first.text.to_ascii_lowercase(),
                name: first.text,
                args: words,
                file: file.clone(),
                line: ll.line,
                indent: ll.indent,
            };
            if d.name.starts_with('<') {
                if let Some(skip) = self.section(&d) {
                    // Skip an inactive or ignored section's body, nesting included.
                    let mut depth = 1;
                    while i < lines.len() && depth > 0 {
                        let t = lines[i].text.trim_start();
                        if t.starts_with("</") {
                            depth -= 1;
                        } else if t.starts_with('<') {
                            depth += 1;
                        }
                        i += 1;
                    }
                    if depth > 0 {
                        self.ctx.diags.error(
                            &d.origin(),
                            format!("<{}> is not closed before the end of the file", skip),
                        );
                    }
                }
            } else {
                self.directive(&d);
            }
        }
        while self.stack.len() > base_depth {
            if let Some(f) = self.stack.pop() {
                let o = Origin::new(&file, lines.last().map_or(1, |l| l.line), 1);
                self.ctx.diags.error(
                    &o,
                    format!("missing </{}> at the end of the file", frame_close_name(&f)),
                );
            }
        }
    }

    fn words_of(&mut self, file: &Arc<str>, ll: &LogicalLine) -> Vec<Word> {
        let ctx = &mut *self.ctx;
        let mut missing = Vec::new();
        let text = substitute(
            &ll.text,
            |n| {
                ctx.defines
                    .get(n)
                    .cloned()
                    .or_else(|| std::env::var(n).ok())
            },
            |m| missing.push(m.to_string()),
        );
        for m in missing {
            let col = ll.text.find(&format!("${{{m}}}")).unwrap_or(0) as u32;
            ctx.diags
                .warning(
                    &Origin::new(file, ll.line, ll.indent + col + 1),
                    format!("${{{m}}} is not defined (no Define and no environment variable); left as written"),
                )
                .hint(format!("add 'Define {m} value' before this line"));
        }
        split_words(&text)
    }

    fn err(&mut self, o: &Origin, msg: impl Into<String>) -> &mut Diagnostic {
        self.ctx.diags.error(o, msg)
    }

    fn issue(&mut self, o: &Origin, p: ParamIssue) {
        let mut d = Diagnostic::new(p.severity, Some(o.clone()), p.message);
        d.hint = p.hint;
        self.ctx.diags.push(d);
    }

    fn current_balancer(&self) -> Option<usize> {
        self.stack.iter().rev().find_map(|f| match f {
            Frame::Proxy { balancer, .. } => Some(*balancer),
            _ => None,
        })?
    }

    fn in_proxy(&self) -> bool {
        self.stack.iter().any(|f| matches!(f, Frame::Proxy { .. }))
    }

    fn current_location(&self) -> Option<(HostSel, usize)> {
        self.stack.iter().rev().find_map(|f| match f {
            Frame::Location { host, index } => Some((*host, *index)),
            _ => None,
        })
    }

    /// Handles a section open or close. Returns `Some(tag)` when the section's body must be
    /// skipped.
    fn section(&mut self, d: &Dir) -> Option<String> {
        let o = d.origin();
        if let Some(close) = d.name.strip_prefix("</") {
            let tag = close.trim_end_matches('>').to_ascii_lowercase();
            self.close_section(&tag, &o);
            return None;
        }
        // `<Proxy balancer://x>`: the last word ends with '>'.
        let mut args: Vec<String> = d.args.iter().map(|w| w.text.clone()).collect();
        let mut tag = d.name[1..].to_string();
        if let Some(t) = tag.strip_suffix('>') {
            tag = t.to_string();
        } else if let Some(last) = args.last_mut() {
            if let Some(t) = last.strip_suffix('>') {
                *last = t.to_string();
                if last.is_empty() {
                    args.pop();
                }
            } else {
                self.err(&o, format!("<{tag} ...> is missing its closing '>'"));
            }
        } else {
            self.err(&o, format!("<{tag} is missing its closing '>'"));
        }
        let lower = tag.to_ascii_lowercase();
        match lower.as_str() {
            "proxy" | "proxymatch" => self.open_proxy(&lower, args.first().map(String::as_str), &o),
            "location" | "locationmatch" => {
                let Some(path) = args.first() else {
                    self.err(&o, format!("<{tag}> needs a path"));
                    self.stack.push(Frame::Conditional);
                    return None;
                };
                let regex = if lower == "locationmatch" || path == "~" {
                    let src = if path == "~" {
                        args.get(1).cloned().unwrap_or_default()
                    } else {
                        path.clone()
                    };
                    match regex::Regex::new(&src) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            self.err(&o, format!("<{tag}> regex does not compile: {e}"));
                            None
                        }
                    }
                } else {
                    None
                };
                let host = self.host;
                let locs = &mut self.ctx.builder.host_mut(host).locations;
                locs.push(LocationSection {
                    path: regex
                        .as_ref()
                        .map_or(path.clone(), |r| r.as_str().to_string()),
                    regex,
                    handler: None,
                    access: AccessRules::default(),
                    response_headers: Vec::new(),
                    request_headers: Vec::new(),
                    reverse: ReverseRules::default(),
                    origin: o.clone(),
                });
                let index = locs.len() - 1;
                self.stack.push(Frame::Location { host, index });
            }
            "virtualhost" => {
                if self.host != HostSel::Main {
                    self.err(&o, "<VirtualHost> cannot be nested");
                }
                let vh = VirtualHost {
                    addrs: args,
                    server_name: None,
                    aliases: Vec::new(),
                    rules: HostRules::default(),
                    origin: o.clone(),
                };
                self.ctx.builder.config.vhosts.push(vh);
                self.host = HostSel::VHost(self.ctx.builder.config.vhosts.len() - 1);
                self.stack.push(Frame::VirtualHost);
            }
            "ifmodule" | "ifdefine" => {
                let Some(a) = args.first() else {
                    self.err(&o, format!("<{tag}> needs an argument"));
                    return Some(tag);
                };
                let (neg, name) = match a.strip_prefix('!') {
                    Some(n) => (true, n),
                    None => (false, a.as_str()),
                };
                let truth = if lower == "ifmodule" {
                    module_known(name)
                } else {
                    self.ctx.defines.contains_key(name)
                };
                if truth != neg {
                    self.stack.push(Frame::Conditional);
                } else {
                    return Some(tag);
                }
            }
            "requireall" | "requireany" | "requirenone" => {
                if self.current_location().is_none() && !self.in_proxy() {
                    self.err(
                        &o,
                        format!("<{tag}> is only meaningful inside <Location> or <Proxy>"),
                    );
                }
                let kind = match lower.as_str() {
                    "requireall" => "all",
                    "requireany" => "any",
                    _ => "none",
                };
                self.stack.push(Frame::Require {
                    kind,
                    items: Vec::new(),
                    origin: o.clone(),
                });
            }
            _ if IGNORED_SECTIONS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&lower)) =>
            {
                self.ctx.diags.note(
                    &o,
                    format!("<{tag}> has no meaning for a proxy; section skipped"),
                );
                return Some(tag);
            }
            _ => {
                let known = [
                    "Proxy",
                    "ProxyMatch",
                    "Location",
                    "LocationMatch",
                    "VirtualHost",
                    "IfModule",
                    "IfDefine",
                    "RequireAll",
                    "RequireAny",
                    "RequireNone",
                ];
                let d = self.err(&o, format!("unknown section <{tag}>"));
                if let Some(c) = closest(&tag, known) {
                    d.hint(format!("did you mean <{c}>?"));
                }
                return Some(tag);
            }
        }
        None
    }

    fn open_proxy(&mut self, lower: &str, arg: Option<&str>, o: &Origin) {
        let Some(url) = arg else {
            self.err(o, "<Proxy> needs a URL");
            self.stack.push(Frame::Proxy {
                balancer: None,
                origin: o.clone(),
                reopened: None,
            });
            return;
        };
        let lurl = url.to_ascii_lowercase();
        if lower == "proxy"
            && let Some(rest) = lurl.strip_prefix("balancer://")
        {
            // Any path after the name is ignored by httpd.
            let name = rest.split('/').next().unwrap_or("").to_string();
            if name.is_empty() {
                self.err(o, "balancer:// needs a name");
            }
            if name.contains(['*', '?', '[']) {
                self.err(
                    o,
                    "wildcard <Proxy balancer://...> sections are not supported",
                )
                .hint("name the balancer exactly");
            }
            let existing = self.ctx.builder.find_balancer(&name);
            let bi = self.ctx.builder.balancer_index(&name, o);
            let reopened = existing.map(|i| {
                let b = &mut self.ctx.builder.config.balancers[i];
                let first = b.definitions[0].clone();
                b.definitions.push(o.clone());
                (
                    b.members.len(),
                    b.params.sticky.clone(),
                    b.params.sticky_origin.clone(),
                    first,
                )
            });
            self.stack.push(Frame::Proxy {
                balancer: Some(bi),
                origin: o.clone(),
                reopened,
            });
            return;
        }
        self.ctx
            .diags
            .warning(
                o,
                format!(
                    "<{} {url}> is not a balancer section; only its access rules are used (they apply to every proxied request)",
                    if lower == "proxy" { "Proxy" } else { "ProxyMatch" }
                ),
            );
        self.stack.push(Frame::Proxy {
            balancer: None,
            origin: o.clone(),
            reopened: None,
        });
    }

    fn close_section(&mut self, tag: &str, o: &Origin) {
        let Some(top) = self.stack.pop() else {
            self.err(o, format!("</{tag}> without a matching opening section"));
            return;
        };
        let expected = top.tag();
        let ok = match expected {
            "proxy" => tag == "proxy" || tag == "proxymatch",
            "location" => tag == "location" || tag == "locationmatch",
            "virtualhost" => tag == "virtualhost",
            "if" => tag == "ifmodule" || tag == "ifdefine",
            "require" => tag.starts_with("require"),
            _ => false,
        };
        if !ok {
            self.err(o, format!("</{tag}> closes <{}>", frame_close_name(&top)));
        }
        match top {
            Frame::VirtualHost => self.host = HostSel::Main,
            Frame::Require {
                kind,
                items,
                origin,
            } => {
                let node = match kind {
                    "all" => Require::All(items),
                    "none" => Require::None(items),
                    _ => Require::Any(items),
                };
                if let Frame::Require { items, .. } =
                    self.stack.last_mut().unwrap_or(&mut Frame::Conditional)
                {
                    items.push(node);
                } else {
                    let _ = origin;
                    self.add_require(node);
                }
            }
            Frame::Proxy {
                balancer: Some(bi),
                origin,
                reopened: Some((before, sticky_before, sticky_origin_before, first)),
            } => {
                let b = &self.ctx.builder.config.balancers[bi];
                let added: Vec<String> = b.members[before..]
                    .iter()
                    .map(|m| m.url.to_string())
                    .collect();
                let mut consequences = Vec::new();
                if !added.is_empty() {
                    consequences.push(format!(
                        "the members {} join the {} member(s) defined there",
                        added.join(", "),
                        before
                    ));
                }
                if let (Some(old), Some(new)) = (&sticky_before, &b.params.sticky)
                    && old != new
                {
                    consequences.push(format!(
                            "the last stickysession wins: {} (line {}) replaces {} (line {}) for every member",
                            new.cookie,
                            b.params.sticky_origin.as_ref().map_or(0, |o| o.line),
                            old.cookie,
                            sticky_origin_before.as_ref().map_or(0, |o| o.line),
                        ));
                }
                let msg = format!(
                    "balancer://{} is defined again here; it was first defined at {}. httpd merges both sections into one balancer{}{}",
                    b.name,
                    first,
                    if consequences.is_empty() { "" } else { ": " },
                    consequences.join("; ")
                );
                self.ctx
                    .diags
                    .warning(&origin, msg)
                    .hint("give each service its own balancer name (e.g. balancer://t1rcs for the RCS members)");
            }
            _ => {}
        }
    }

    fn add_require(&mut self, node: Require) {
        if let Some(acc) = self.access_target() {
            acc.require = Some(match acc.require.take() {
                None => Require::Any(vec![node]),
                Some(Require::Any(mut v)) => {
                    v.push(node);
                    Require::Any(v)
                }
                Some(other) => Require::Any(vec![other, node]),
            });
        }
    }

    fn access_target(&mut self) -> Option<&mut AccessRules> {
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let (h, i) = (*host, *index);
                    return Some(&mut self.ctx.builder.host_mut(h).locations[i].access);
                }
                Frame::Proxy { balancer, .. } => {
                    return Some(match balancer {
                        Some(bi) => self.ctx.builder.config.balancers[*bi]
                            .access
                            .get_or_insert_with(AccessRules::default),
                        None => self
                            .ctx
                            .proxy_access
                            .get_or_insert_with(AccessRules::default),
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// Handles one directive.
    fn directive(&mut self, d: &Dir) {
        let o = d.origin();
        // httpd has no trailing comments: a '#' word is an argument and the line fails.
        if let Some((i, _)) = d
            .args
            .iter()
            .enumerate()
            .find(|(_, w)| !w.quoted && w.text.starts_with('#'))
        {
            self.err(
                &d.arg_origin(i),
                format!(
                    "'#' here is not a comment: httpd only treats '#' as a comment at the start of a line, and rejects this {} line",
                    d.name
                ),
            )
            .hint("move the comment to a line of its own");
            return;
        }
        match d.lower.as_str() {
            "listen" => self.listen(d),
            "servername" => {
                let Some(n) = self.one_arg(d) else { return };
                match self.host {
                    HostSel::Main => self.ctx.builder.config.server.server_name = Some(n),
                    HostSel::VHost(i) => self.ctx.builder.config.vhosts[i].server_name = Some(n),
                }
            }
            "serveralias" => match self.host {
                HostSel::Main => {
                    self.err(&o, "ServerAlias is only allowed inside <VirtualHost>");
                }
                HostSel::VHost(i) => {
                    let names = d.args.iter().map(|w| w.text.clone());
                    self.ctx.builder.config.vhosts[i].aliases.extend(names);
                }
            },
            "serverroot" => {
                let Some(n) = self.one_arg(d) else { return };
                self.ctx.builder.config.server.server_root = Some(PathBuf::from(n));
            }
            "define" => match d.args.len() {
                1 | 2 => {
                    let v = d.arg(1).unwrap_or("").to_string();
                    let k = d.args[0].text.clone();
                    if k.contains(':') {
                        self.err(&o, "Define names may not contain ':'");
                    } else {
                        self.ctx.defines.insert(k, v);
                    }
                }
                _ => {
                    self.err(&o, "Define takes a name and an optional value");
                }
            },
            "undefine" => {
                if let Some(k) = d.arg(0) {
                    self.ctx.defines.remove(k);
                }
            }
            "include" | "includeoptional" => self.include(d, d.lower == "includeoptional"),
            "balancermember" => self.balancer_member(d),
            "proxyset" => self.proxy_set(d),
            "proxypass" | "proxypassmatch" => self.proxy_pass(d, d.lower == "proxypassmatch"),
            "proxypassreverse" | "proxypassreversecookiepath" | "proxypassreversecookiedomain" => {
                self.pass_reverse(d)
            }
            "proxypreservehost" => {
                if let Some(b) = self.flag(d) {
                    self.ctx.builder.config.server.preserve_host = b;
                }
            }
            "proxyaddheaders" => {
                if let Some(b) = self.flag(d) {
                    self.ctx.builder.config.server.add_headers = b;
                }
            }
            "proxystatus" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                self.ctx.builder.config.server.proxy_status = v == "on" || v == "full";
            }
            "proxyrequests" => {
                if let Some(true) = self.flag(d) {
                    self.err(&o, "ProxyRequests On makes httpd a forward proxy; balancerd is a reverse proxy only")
                        .hint("remove the line or write ProxyRequests Off");
                }
            }
            "proxyvia" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                if v != "off" {
                    self.ctx.diags.warning(&o, format!("ProxyVia {v} is not implemented; balancerd adds no Via header (httpd's default, Off)"));
                }
            }
            "proxytimeout" | "timeout" => {
                let Some(v) = self.one_arg(d) else { return };
                match v.parse::<u64>() {
                    Ok(n) if n >= 1 => {
                        let s = &mut self.ctx.builder.config.server;
                        if d.lower == "timeout" {
                            s.timeout = Duration::from_secs(n);
                        } else {
                            s.proxy_timeout = Some(Duration::from_secs(n));
                        }
                    }
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("{} takes whole seconds (at least 1), not '{v}'", d.name),
                        )
                        .hint(format!(
                            "httpd reads {} with atoi; write a plain number such as {} 60",
                            d.name, d.name
                        ));
                    }
                }
            }
            "keepalive" => {
                if let Some(b) = self.flag(d) {
                    self.ctx.builder.config.server.keepalive = b;
                }
            }
            "keepalivetimeout" => {
                let Some(v) = self.one_arg(d) else { return };
                match timeout_with_unit("KeepAliveTimeout", &v, false) {
                    Ok(t) => self.ctx.builder.config.server.keepalive_timeout = t,
                    Err(e) => self.issue(&d.arg_origin(0), e),
                }
            }
            "maxkeepaliverequests"
            | "limitrequestline"
            | "limitrequestfieldsize"
            | "limitrequestfields"
            | "limitrequestbody"
            | "proxyhctpsize" => {
                let Some(v) = self.one_arg(d) else { return };
                let Ok(n) = v.parse::<u64>() else {
                    self.err(
                        &d.arg_origin(0),
                        format!("{} takes a whole number, not '{v}'", d.name),
                    );
                    return;
                };
                let s = &mut self.ctx.builder.config.server;
                let n32 = n.min(u32::MAX as u64) as u32;
                match d.lower.as_str() {
                    "maxkeepaliverequests" => s.max_keepalive_requests = n32,
                    "limitrequestline" => s.limit_request_line = n32,
                    "limitrequestfieldsize" => s.limit_request_field_size = n32,
                    "limitrequestfields" => s.limit_request_fields = n32,
                    "limitrequestbody" => s.limit_request_body = n,
                    _ => {}
                }
            }
            "header" | "requestheader" => self.header(d),
            "sethandler" => self.set_handler(d),
            "order" | "allow" | "deny" | "satisfy" | "require" => self.access(d),
            "logformat" => {
                let (Some(fmt), nick) = (d.arg(0), d.arg(1)) else {
                    self.err(&o, "LogFormat takes a format and an optional nickname");
                    return;
                };
                let compiled = match LogFormat::parse(fmt) {
                    Ok(f) => std::sync::Arc::new(f),
                    Err(e) => {
                        self.err(&d.arg_origin(0), e);
                        return;
                    }
                };
                self.ctx
                    .log_formats
                    .insert(nick.unwrap_or("default").to_string(), compiled);
            }
            "customlog" => {
                let (Some(path), Some(f)) = (d.arg(0), d.arg(1)) else {
                    self.err(
                        &o,
                        "CustomLog takes a file and a format (or a LogFormat nickname)",
                    );
                    return;
                };
                if path.starts_with('|') {
                    self.err(
                        &d.arg_origin(0),
                        "piped logs are not supported; log to a file",
                    )
                    .hint("use logrotate with SIGHUP (balancerd reopens the log on reload)");
                    return;
                }
                // A nickname defined above, httpd's predefined `common`/`combined`, or a
                // format written in place.
                let fmt = match self.ctx.log_formats.get(f) {
                    Some(x) => Ok(x.clone()),
                    None => match f {
                        "common" => LogFormat::parse(crate::telemetry::access_log::COMMON),
                        "combined" => LogFormat::parse(crate::telemetry::access_log::COMBINED),
                        other if other.contains('%') => LogFormat::parse(other),
                        other => {
                            self.err(
                                &d.arg_origin(1),
                                format!("no LogFormat named '{other}' is defined above this line"),
                            );
                            return;
                        }
                    }
                    .map(std::sync::Arc::new),
                };
                let fmt = match fmt {
                    Ok(f) => f,
                    Err(e) => {
                        self.err(&d.arg_origin(1), e);
                        return;
                    }
                };
                let base = self.ctx.include_base(&d.file);
                let p = Path::new(path);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                };
                self.ctx.builder.config.server.access_log = Some((full, fmt));
            }
            "gracefulshutdowntimeout" => {
                let Some(v) = self.one_arg(d) else { return };
                match v.parse::<u64>() {
                    // httpd: 0 = wait forever; balancerd caps the wait at a day.
                    Ok(0) => {
                        self.ctx.builder.config.server.graceful_timeout =
                            Duration::from_secs(86_400)
                    }
                    Ok(n) => {
                        self.ctx.builder.config.server.graceful_timeout = Duration::from_secs(n)
                    }
                    Err(_) => {
                        self.err(
                            &d.arg_origin(0),
                            format!("GracefulShutdownTimeout takes whole seconds, not '{v}'"),
                        );
                    }
                }
            }
            "pidfile" => {
                if let Some(v) = self.one_arg(d) {
                    self.ctx.builder.config.server.pid_file = Some(PathBuf::from(v));
                }
            }
            "loglevel" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                self.ctx.builder.config.server.log_level = Some(v.join(" "));
            }
            "proxyhcexpr" => {
                if d.args.len() < 2 {
                    self.err(&o, "ProxyHCExpr takes a name and an {expression}");
                } else {
                    let rest: Vec<&str> = d.args[1..].iter().map(|w| w.text.as_str()).collect();
                    match crate::config::hcexpr::HcExpr::parse(&rest.join(" ")) {
                        Ok(e) => self
                            .ctx
                            .builder
                            .config
                            .hc_exprs
                            .push((d.args[0].text.clone(), std::sync::Arc::new(e))),
                        Err(why) => {
                            self.err(
                                &d.arg_origin(1),
                                format!("ProxyHCExpr {}: {why}", d.args[0].text),
                            );
                        }
                    }
                }
            }
            "proxyhctemplate" => {
                let Some(name) = d.arg(0) else {
                    self.err(&o, "ProxyHCTemplate takes a name and hc* parameters");
                    return;
                };
                let mut kv = Vec::new();
                let mut probe = MemberParams::default();
                for (i, w) in d.args.iter().enumerate().skip(1) {
                    match w.text.split_once('=') {
                        Some((k, v)) if k.to_ascii_lowercase().starts_with("hc") => {
                            if let Err(e) = set_member_param(&mut probe, k, v) {
                                self.issue(&d.arg_origin(i), e);
                            }
                            kv.push((k.to_ascii_lowercase(), v.to_string()));
                        }
                        _ => {
                            self.err(
                                &d.arg_origin(i),
                                format!(
                                    "ProxyHCTemplate takes hc*=value parameters, not '{}'",
                                    w.text
                                ),
                            );
                        }
                    }
                }
                self.ctx
                    .builder
                    .config
                    .hc_templates
                    .push((name.to_string(), kv));
            }
            l if l.starts_with("ssl") => self.ssl(d),
            _ => {
                if let Some(n) = IGNORED.iter().find(|n| n.eq_ignore_ascii_case(&d.name)) {
                    let what = match *n {
                        "ProxyErrorOverride" => "balancerd passes member error pages through",
                        "Alias" | "ScriptAlias" | "DocumentRoot" => "balancerd serves no files",
                        _ => "it has no meaning for balancerd",
                    };
                    self.ctx.diags.note(&o, format!("{n} ignored: {what}"));
                    return;
                }
                let all = SUPPORTED.iter().chain(IGNORED.iter()).copied();
                let looks_kv = d.name.contains('=');
                let dd = self.err(&o, format!("unknown directive '{}'", d.name));
                if looks_kv {
                    dd.hint("a key=value word must be on the same line as its directive");
                } else if let Some(c) = closest(&d.name, all) {
                    dd.hint(format!("did you mean {c}?"));
                }
            }
        }
    }

    fn one_arg(&mut self, d: &Dir) -> Option<String> {
        if d.args.len() != 1 {
            self.err(&d.origin(), format!("{} takes one argument", d.name));
            return None;
        }
        Some(d.args[0].text.clone())
    }

    fn flag(&mut self, d: &Dir) -> Option<bool> {
        let v = self.one_arg(d)?;
        if v.eq_ignore_ascii_case("on") {
            Some(true)
        } else if v.eq_ignore_ascii_case("off") {
            Some(false)
        } else {
            self.err(
                &d.arg_origin(0),
                format!("{} must be On or Off, not '{v}'", d.name),
            );
            None
        }
    }

    fn listen(&mut self, d: &Dir) {
        let o = d.origin();
        let Some(a) = d.arg(0) else {
            self.err(&o, "Listen needs an address or port");
            return;
        };
        let addr = if let Ok(p) = a.parse::<u16>() {
            Some(std::net::SocketAddr::from(([0, 0, 0, 0], p)))
        } else {
            a.parse::<std::net::SocketAddr>().ok()
        };
        let Some(addr) = addr else {
            self.err(
                &d.arg_origin(0),
                format!("Listen {a}: not a port or IP:port"),
            )
            .hint("write Listen 80, Listen 127.0.0.1:8080 or Listen [::1]:8080");
            return;
        };
        if addr.port() == 0 {
            self.err(&d.arg_origin(0), "Listen needs a port other than 0");
            return;
        }
        let protocol = d.arg(1).map(|p| p.to_ascii_lowercase());
        if let Some(p) = &protocol
            && p != "http"
            && p != "https"
        {
            self.err(
                &d.arg_origin(1),
                format!("Listen protocol '{p}' is not supported (http or https)"),
            );
        }
        let b = &mut self.ctx.builder;
        if let Some(prev) = b.config.listeners.iter().find(|l| l.addr == addr) {
            let prev = prev.origin.clone();
            self.err(
                &o,
                format!(
                    "Cannot define multiple Listeners on the same IP:port ({addr}); first at {prev}"
                ),
            );
            return;
        }
        b.saw_listen = true;
        b.config.listeners.push(Listener {
            addr,
            protocol,
            tls: Vec::new(),
            origin: o,
        });
    }

    fn include(&mut self, d: &Dir, optional: bool) {
        let o = d.origin();
        let Some(pat) = d.arg(0) else {
            self.err(&o, format!("{} needs a path", d.name));
            return;
        };
        let base = self.ctx.include_base(&d.file);
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let files = match super::resolve_include(&full) {
            Ok(f) => f,
            Err(e) => {
                if !optional {
                    self.err(&d.arg_origin(0), format!("Include {pat}: {e}"))
                        .hint("use IncludeOptional for a path that may be missing");
                }
                return;
            }
        };
        if files.is_empty() && !optional {
            self.err(
                &d.arg_origin(0),
                format!("Include {pat}: the wildcard matches no file"),
            )
            .hint("use IncludeOptional for a folder that may be empty");
            return;
        }
        if super::has_wildcard(pat) || full.is_dir() {
            let dir = super::wildcard_dir(&full);
            self.ctx.builder.config.watch_dirs.push(dir);
        }
        for f in files {
            self.load_included(&f, &o);
        }
    }

    /// Parses an included httpd file in the current section context.
    pub fn include_text(&mut self, path: &Path, text: &str) {
        self.parse_file(path, text);
    }

    /// The shared load state.
    pub(crate) fn ctx_mut(&mut self) -> &mut LoadCtx {
        self.ctx
    }

    fn kv_words(&mut self, d: &Dir, from: usize) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        let words: Vec<(usize, String)> = d
            .args
            .iter()
            .enumerate()
            .skip(from)
            .map(|(i, w)| (i, w.text.clone()))
            .collect();
        let mut j = 0;
        while j < words.len() {
            let (i, w) = &words[j];
            match w.split_once('=') {
                Some((k, v)) if !k.is_empty() => out.push((*i, k.to_string(), v.to_string())),
                _ => {
                    // "sticky session=ROUTEID": a stray space inside a parameter name.
                    let mut hint = None;
                    if let Some((_, next)) = words.get(j + 1)
                        && let Some((k2, v2)) = next.split_once('=')
                    {
                        let glued = format!("{w}{k2}").to_ascii_lowercase();
                        if super::params::BALANCER_KEYS.contains(&glued.as_str())
                            || super::params::MEMBER_KEYS.contains(&glued.as_str())
                        {
                            hint = Some(format!(
                                "write {glued}={v2} (no space inside the parameter name)"
                            ));
                        }
                    }
                    let e = self.err(
                        &d.arg_origin(*i),
                        format!(
                            "{} parameter '{w}' is not in the form key=value (httpd: \"Invalid {} parameter\")",
                            d.name, d.name
                        ),
                    );
                    if let Some(h) = hint {
                        e.hint(h);
                        j += 1; // the glued word is part of the same mistake
                    }
                }
            }
            j += 1;
        }
        out
    }

    fn balancer_member(&mut self, d: &Dir) {
        let o = d.origin();
        let (bi, url_at) = match self.current_balancer() {
            Some(bi) => (bi, 0),
            None => {
                if self.current_location().is_some() || self.in_proxy() {
                    self.err(&o, "BalancerMember here needs a <Proxy balancer://...> section (httpd: \"Bad syntax for a balancer name\")");
                    return;
                }
                match d.arg(0) {
                    Some(b) if b.to_ascii_lowercase().starts_with("balancer://") => {
                        let name = b[11..].split('/').next().unwrap_or("").to_ascii_lowercase();
                        (self.ctx.builder.balancer_index(&name, &o), 1)
                    }
                    _ => {
                        self.err(
                            &o,
                            "BalancerMember outside <Proxy> must name its balancer first",
                        )
                        .hint("write BalancerMember balancer://NAME http://host:port ...");
                        return;
                    }
                }
            }
        };
        let Some(url) = d.arg(url_at).map(str::to_string) else {
            self.err(&o, "BalancerMember needs a member URL");
            return;
        };
        let (murl, upgrade) = match parse_member_url(&url) {
            Ok(u) => u,
            Err(e) => {
                self.err(&d.arg_origin(url_at), e);
                return;
            }
        };
        let mut params = MemberParams {
            upgrade,
            ..Default::default()
        };
        let kvs = self.kv_words(d, url_at + 1);
        let had = !kvs.is_empty();
        for (i, k, v) in kvs {
            match set_member_param(&mut params, &k, &v) {
                Ok(None) => {}
                Ok(Some(w)) => self.issue(&d.arg_origin(i), w),
                Err(e) => self.issue(&d.arg_origin(i), e),
            }
        }
        self.ctx.builder.add_member(
            bi,
            murl,
            params,
            had,
            d.arg_origin(url_at),
            &mut self.ctx.diags,
        );
    }

    fn proxy_set(&mut self, d: &Dir) {
        let o = d.origin();
        let (target, from) = match self.current_balancer() {
            Some(bi) => (Some(bi), 0),
            None if self.in_proxy() => {
                self.err(
                    &o,
                    "ProxySet in a non-balancer <Proxy> section is not supported",
                );
                return;
            }
            None => (None, 1),
        };
        if let Some(bi) = target {
            for (i, k, v) in self.kv_words(d, from) {
                self.set_balancer_kv(bi, i, &k, &v, d);
            }
            return;
        }
        let Some(name) = d.arg(0).map(str::to_string) else {
            self.err(&o, "ProxySet needs a balancer or worker name");
            return;
        };
        let lname = name.to_ascii_lowercase();
        if let Some(rest) = lname.strip_prefix("balancer://") {
            let bname = rest.split('/').next().unwrap_or("");
            let Some(bi) = self.ctx.builder.find_balancer(bname) else {
                self.err(&d.arg_origin(0), format!("ProxySet can not find '{name}': no balancer of that name is defined above this line"))
                    .hint("define the balancer (<Proxy balancer://...> or BalancerMember) before ProxySet");
                return;
            };
            for (i, k, v) in self.kv_words(d, 1) {
                self.set_balancer_kv(bi, i, &k, &v, d);
            }
            return;
        }
        // A worker URL: set member parameters on every member with that URL.
        let Ok((u, _)) = parse_member_url(&name) else {
            self.err(&d.arg_origin(0), format!("ProxySet can not find '{name}'"));
            return;
        };
        let kvs = self.kv_words(d, 1);
        let mut found = false;
        for bi in 0..self.ctx.builder.config.balancers.len() {
            for mi in 0..self.ctx.builder.config.balancers[bi].members.len() {
                if self.ctx.builder.config.balancers[bi].members[mi].url == u {
                    found = true;
                    for (i, k, v) in &kvs {
                        let p = &mut self.ctx.builder.config.balancers[bi].members[mi].params;
                        match set_member_param(p, k, v) {
                            Ok(None) => {}
                            Ok(Some(w)) | Err(w) => self.issue(&d.arg_origin(*i), w),
                        }
                    }
                }
            }
        }
        if !found {
            self.err(
                &d.arg_origin(0),
                format!("ProxySet can not find worker '{name}'"),
            );
        }
    }

    fn set_balancer_kv(&mut self, bi: usize, i: usize, k: &str, v: &str, d: &Dir) {
        let p = &mut self.ctx.builder.config.balancers[bi].params;
        match set_balancer_param(p, k, v) {
            Ok(w) => {
                if k.eq_ignore_ascii_case("stickysession") {
                    p.sticky_origin = Some(d.arg_origin(i));
                }
                if let Some(w) = w {
                    self.issue(&d.arg_origin(i), w);
                }
            }
            Err(e) => self.issue(&d.arg_origin(i), e),
        }
    }

    fn proxy_pass(&mut self, d: &Dir, is_match: bool) {
        let o = d.origin();
        let mut args: Vec<(usize, String)> = d
            .args
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.text.clone()))
            .collect();
        let mut regex = is_match;
        if args.first().is_some_and(|(_, a)| a == "~") {
            regex = true;
            args.remove(0);
        }
        let loc = self.current_location();
        let (pattern, pat_at) = if let Some((h, li)) = loc {
            let l = &self.ctx.builder.host_mut(h).locations[li];
            if l.regex.is_some() {
                regex = true;
            }
            (l.path.clone(), None)
        } else if self.in_proxy() {
            self.err(&o, format!("{} is not allowed inside <Proxy>", d.name))
                .hint("place it after </Proxy>");
            return;
        } else {
            if args.is_empty() {
                self.err(&o, format!("{} needs a path and a target", d.name));
                return;
            }
            let (i, p) = args.remove(0);
            (p, Some(i))
        };
        let Some((ti, target)) = (if args.is_empty() {
            None
        } else {
            Some(args.remove(0))
        }) else {
            self.err(&o, format!("{} needs a target URL (or !)", d.name));
            return;
        };
        let pat_origin = pat_at.map_or(o.clone(), |i| d.arg_origin(i));
        let matcher = if regex {
            match regex::Regex::new(&pattern) {
                Ok(r) => RouteMatch::Regex(r),
                Err(e) => {
                    self.err(
                        &pat_origin,
                        format!("{} regex does not compile: {e}", d.name),
                    );
                    return;
                }
            }
        } else {
            if !pattern.starts_with('/') {
                self.err(
                    &pat_origin,
                    format!("ProxyPass path '{pattern}' must start with '/'"),
                );
                return;
            }
            RouteMatch::Prefix(pattern.clone())
        };
        let mut route = Route {
            matcher,
            target: RouteTarget::Exclude,
            target_text: target.clone(),
            nocanon: false,
            noquery: false,
            upgrade: None,
            origin: o.clone(),
        };
        let mut kv = Vec::new();
        for (i, w) in args {
            match w.to_ascii_lowercase().as_str() {
                "nocanon" => route.nocanon = true,
                "noquery" => route.noquery = true,
                "interpolate" => {
                    self.ctx.diags.warning(
                        &d.arg_origin(i),
                        "interpolate is not supported; the ProxyPass is used as written",
                    );
                }
                _ => match w.split_once('=') {
                    Some((k, v)) => kv.push((i, k.to_string(), v.to_string())),
                    None => {
                        self.err(&d.arg_origin(i), format!("unknown ProxyPass flag '{w}'"))
                            .hint("flags are nocanon, noquery and key=value parameters");
                    }
                },
            }
        }
        if target == "!" {
            if !kv.is_empty() {
                self.err(
                    &d.arg_origin(kv[0].0),
                    "an excluded path (!) takes no parameters",
                );
            }
        } else {
            let lt = target.to_ascii_lowercase();
            if let Some(rest) = lt.strip_prefix("balancer://") {
                let (name, _) = rest.split_once('/').unwrap_or((rest, ""));
                let path = target[11 + name.len()..].to_string();
                let bi = self.ctx.builder.balancer_index(name, &o);
                for (i, k, v) in kv {
                    if k.eq_ignore_ascii_case("upgrade") {
                        route.upgrade = Some(v);
                    } else if k.eq_ignore_ascii_case("mapping") {
                        self.ctx.diags.warning(
                            &d.arg_origin(i),
                            "mapping= is not supported; the path is mapped as httpd's default",
                        );
                    } else if super::params::MEMBER_KEYS.contains(&k.to_ascii_lowercase().as_str())
                        && !super::params::BALANCER_KEYS.contains(&k.to_ascii_lowercase().as_str())
                    {
                        self.err(&d.arg_origin(i), format!("'{k}' is a member parameter; on a ProxyPass to balancer:// only balancer parameters are allowed"))
                            .hint("set it on the BalancerMember lines");
                    } else {
                        self.set_balancer_kv(bi, i, &k, &v, d);
                    }
                }
                route.target = RouteTarget::Balancer { balancer: bi, path };
            } else {
                match parse_member_url(&target) {
                    Ok((u, upgrade)) => {
                        let name = u.to_string();
                        let bi = self.ctx.builder.balancer_index(&name, &o);
                        let mut params = MemberParams {
                            upgrade,
                            ..Default::default()
                        };
                        for (i, k, v) in kv {
                            if k.eq_ignore_ascii_case("mapping") {
                                continue;
                            }
                            match set_member_param(&mut params, &k, &v) {
                                Ok(None) => {}
                                Ok(Some(w)) | Err(w) => self.issue(&d.arg_origin(i), w),
                            }
                        }
                        let path = u.path.clone();
                        let b = &mut self.ctx.builder.config.balancers[bi];
                        b.implicit = true;
                        if b.members.is_empty() {
                            let member_url = MemberUrl {
                                path: String::new(),
                                ..u
                            };
                            b.members.push(Member {
                                url: member_url,
                                params,
                                origin: d.arg_origin(ti),
                            });
                        }
                        route.target = RouteTarget::Balancer { balancer: bi, path };
                    }
                    Err(e) => {
                        self.err(&d.arg_origin(ti), e);
                        return;
                    }
                }
            }
        }
        let host = self.host;
        self.ctx.builder.host_mut(host).routes.push(route);
    }

    fn pass_reverse(&mut self, d: &Dir) {
        let o = d.origin();
        let (public, internal) = match (self.current_location(), d.args.len()) {
            (Some((h, li)), 1) => (
                self.ctx.builder.host_mut(h).locations[li].path.clone(),
                d.args[0].text.clone(),
            ),
            (_, 2) | (_, 3) => (d.args[0].text.clone(), d.args[1].text.clone()),
            _ => {
                self.err(
                    &o,
                    format!("{} takes a public path and an internal one", d.name),
                );
                return;
            }
        };
        if d.args
            .get(2)
            .is_some_and(|w| !w.text.eq_ignore_ascii_case("interpolate"))
        {
            self.err(
                &d.arg_origin(2),
                format!("unexpected argument '{}'", d.args[2].text),
            );
        }
        // ProxyPassReverse takes (public, internal); the cookie directives take
        // (internal, public): `ProxyPassReverseCookiePath "/rcs" "/t1/rcs"`.
        let (public, internal) = if d.lower == "proxypassreverse" {
            (public, internal)
        } else {
            (internal, public)
        };
        let map = ReverseMap {
            public,
            internal,
            origin: o.clone(),
        };
        let bal = self.current_balancer();
        let loc = self.current_location();
        let rules = match (bal, loc) {
            (Some(bi), _) => &mut self.ctx.builder.config.balancers[bi].reverse,
            (None, Some((h, li))) => &mut self.ctx.builder.host_mut(h).locations[li].reverse,
            (None, None) => {
                let h = self.host;
                &mut self.ctx.builder.host_mut(h).reverse
            }
        };
        match d.lower.as_str() {
            "proxypassreverse" => rules.location.push(map),
            "proxypassreversecookiepath" => rules.cookie_path.push(map),
            _ => rules.cookie_domain.push(map),
        }
        if d.lower == "proxypassreversecookiepath"
            && let Some(bi) = bal
        {
            let name = self.ctx.builder.config.balancers[bi].name.clone();
            self.ctx.builder.scoped_cookie_paths.push(ScopedCookiePath {
                balancer: name,
                origin: o,
            });
        }
    }

    fn header(&mut self, d: &Dir) {
        let o = d.origin();
        let words: Vec<(String, Origin)> = d
            .args
            .iter()
            .enumerate()
            .map(|(i, w)| (w.text.clone(), d.arg_origin(i)))
            .collect();
        let request = d.lower == "requestheader";
        let rule = match parse_header_directive(&words, request, &o) {
            Ok(r) => r,
            Err(p) => {
                let (origin, issue) = p;
                self.issue(&origin, issue);
                return;
            }
        };
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let l = &mut self.ctx.builder.host_mut(*host).locations[*index];
                    if request {
                        l.request_headers.push(rule);
                    } else {
                        l.response_headers.push(rule);
                    }
                    return;
                }
                Frame::Proxy { balancer, .. } => {
                    match balancer {
                        Some(bi) => {
                            let b = &mut self.ctx.builder.config.balancers[*bi];
                            if request {
                                b.request_headers.push(rule);
                            } else {
                                b.response_headers.push(rule);
                            }
                        }
                        None => {
                            self.ctx.diags.warning(
                                &o,
                                format!("{} in a non-balancer <Proxy> section is ignored", d.name),
                            );
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
        let h = self.host;
        let rules = self.ctx.builder.host_mut(h);
        if request {
            rules.request_headers.push(rule);
        } else {
            rules.response_headers.push(rule);
        }
    }

    fn set_handler(&mut self, d: &Dir) {
        let o = d.origin();
        let Some(v) = self.one_arg(d) else { return };
        let Some((h, li)) = self.current_location() else {
            self.err(&o, "SetHandler is only supported inside <Location>");
            return;
        };
        let handler = match v.to_ascii_lowercase().as_str() {
            "server-status" => Some(Handler::ServerStatus),
            "balancer-manager" => {
                self.ctx.diags.note(
                    &o,
                    "balancer-manager is parsed but not served yet; requests to it get 404",
                );
                Some(Handler::BalancerManager)
            }
            "metrics" => Some(Handler::Metrics),
            "none" => None,
            _ => {
                self.err(
                    &d.arg_origin(0),
                    format!("SetHandler {v} is not a handler balancerd has"),
                )
                .hint("balancerd serves server-status, balancer-manager and metrics");
                return;
            }
        };
        self.ctx.builder.host_mut(h).locations[li].handler = handler;
    }

    fn access(&mut self, d: &Dir) {
        let o = d.origin();
        if self.access_target().is_none() {
            self.err(
                &o,
                format!("{} is only meaningful inside <Location> or <Proxy>", d.name),
            )
            .hint("wrap it in <Location /path> ... </Location>");
            return;
        }
        match d.lower.as_str() {
            "order" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                let ord = match v.as_str() {
                    "deny,allow" => Order::DenyAllow,
                    "allow,deny" => Order::AllowDeny,
                    "mutual-failure" => Order::MutualFailure,
                    _ => {
                        self.err(
                            &o,
                            format!(
                                "Order '{}' is not one of deny,allow / allow,deny / mutual-failure",
                                d.arg(0).unwrap_or("")
                            ),
                        )
                        .hint("write it without spaces: Order deny,allow");
                        return;
                    }
                };
                if d.args.len() > 1 {
                    self.err(
                        &d.arg_origin(1),
                        "Order takes one word (no space after the comma)",
                    );
                }
                if let Some(a) = self.access_target() {
                    a.order = Some(ord);
                }
            }
            "allow" | "deny" => {
                if !d.arg(0).is_some_and(|f| f.eq_ignore_ascii_case("from")) {
                    self.err(&o, format!("{} must be followed by 'from'", d.name));
                    return;
                }
                if d.args.len() < 2 {
                    self.err(&o, format!("{} from needs at least one host", d.name));
                    return;
                }
                let mut list = Vec::new();
                for (i, w) in d.args.iter().enumerate().skip(1) {
                    match parse_host_match(&w.text) {
                        Ok(m) => list.push(m),
                        Err(e) => {
                            self.err(&d.arg_origin(i), e);
                        }
                    }
                }
                let allow = d.lower == "allow";
                if let Some(a) = self.access_target() {
                    if allow {
                        a.allow.extend(list);
                    } else {
                        a.deny.extend(list);
                    }
                }
            }
            "satisfy" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                let any = match v.as_str() {
                    "any" => true,
                    "all" => false,
                    _ => {
                        self.err(&o, "Satisfy takes Any or All");
                        return;
                    }
                };
                if let Some(a) = self.access_target() {
                    a.satisfy_any = any;
                }
            }
            _ => {
                let words: Vec<String> = d.args.iter().map(|w| w.text.clone()).collect();
                match parse_require(&words) {
                    Ok(r) => {
                        if let Some(Frame::Require { items, .. }) = self.stack.last_mut() {
                            items.push(r);
                        } else {
                            self.add_require(r);
                        }
                    }
                    Err(e) => {
                        self.err(&o, e);
                    }
                }
            }
        }
    }

    fn ssl(&mut self, d: &Dir) {
        let o = d.origin();
        let lower = d.lower.as_str();
        let base = self.ctx.include_base(&d.file);
        let file_arg = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        // Certificates, keys and protocol lists are checked now, so a broken TLS setup is a
        // config error with file:line, not a failed handshake later.
        {
            use crate::net::tls;
            let joined: String = d
                .args
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let check = match lower {
                "sslcertificatefile" | "sslcertificatechainfile" | "sslproxycacertificatefile" => {
                    d.arg(0).map(|p| tls::load_certs(&file_arg(p)).map(|_| ()))
                }
                "sslcertificatekeyfile" => {
                    d.arg(0).map(|p| tls::load_key(&file_arg(p)).map(|_| ()))
                }
                "sslproxymachinecertificatefile" => d.arg(0).map(|p| {
                    let f = file_arg(p);
                    tls::load_certs(&f)
                        .and_then(|_| tls::load_key(&f))
                        .map(|_| ())
                }),
                "sslprotocol" | "sslproxyprotocol" => {
                    Some(tls::protocol_versions(Some(&joined)).map(|_| ()))
                }
                "sslciphersuite" => Some(tls::check_ciphers(&joined)),
                _ => None,
            };
            if let Some(Err(e)) = check {
                self.err(&d.arg_origin(0), e);
                return;
            }
        }
        if let Some(rest) = lower.strip_prefix("sslproxy") {
            let t = &mut self.ctx.builder.config.upstream_tls;
            match rest {
                "engine" | "checkpeername" | "checkpeercn" | "checkpeerexpire" => {
                    let Some(b) = self.flag(d) else { return };
                    let t = &mut self.ctx.builder.config.upstream_tls;
                    match rest {
                        "engine" => {
                            t.engine = b;
                            t.engine_origin = Some(o);
                        }
                        "checkpeername" => t.check_peer_name = b,
                        "checkpeercn" => t.check_peer_cn = b,
                        _ => t.check_peer_expire = b,
                    }
                }
                "verify" => {
                    let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                    match v.as_str() {
                        "none" => t.verify = false,
                        "require" => t.verify = true,
                        "optional" | "optional_no_ca" => {
                            self.err(&d.arg_origin(0), format!("SSLProxyVerify {v} is not supported: a member certificate is either verified or not"))
                                .hint("write SSLProxyVerify require (or none)");
                            return;
                        }
                        _ => {
                            self.err(&d.arg_origin(0), "SSLProxyVerify takes none or require");
                            return;
                        }
                    }
                    t.verify_explicit = true;
                }
                "cacertificatefile" => {
                    if let Some(p) = d.arg(0) {
                        t.ca_file = Some(file_arg(p));
                    }
                }
                "machinecertificatefile" => {
                    if let Some(p) = d.arg(0) {
                        t.client_cert_file = Some(file_arg(p));
                    }
                }
                "protocol" => {
                    let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                    t.protocols = Some(v.join(" "));
                }
                "verifydepth" | "ciphersuite" => {
                    self.ctx.diags.note(
                        &o,
                        format!("{} ignored: rustls chooses safe values", d.name),
                    );
                }
                _ => {
                    let d2 = self.err(&o, format!("unknown directive '{}'", d.name));
                    if let Some(c) = closest(&d.name, SUPPORTED.iter().copied()) {
                        d2.hint(format!("did you mean {c}?"));
                    }
                }
            }
            return;
        }
        let h = self.host;
        let tls = self
            .ctx
            .builder
            .host_mut(h)
            .tls
            .get_or_insert_with(FrontTls::default);
        match lower {
            "sslengine" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                tls.engine = v == "on";
                tls.origin = Some(o);
            }
            "sslcertificatefile" => tls.cert_file = d.arg(0).map(file_arg),
            "sslcertificatekeyfile" => tls.key_file = d.arg(0).map(file_arg),
            "sslcertificatechainfile" => tls.chain_file = d.arg(0).map(file_arg),
            "sslprotocol" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                tls.protocols = Some(v.join(" "));
            }
            "sslciphersuite" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                tls.ciphers = Some(v.join(" "));
            }
            _ => {
                if let Some(n) = IGNORED.iter().find(|n| n.eq_ignore_ascii_case(&d.name)) {
                    self.ctx
                        .diags
                        .note(&o, format!("{n} ignored: it has no meaning for balancerd"));
                } else {
                    let d2 = self.err(&o, format!("unknown directive '{}'", d.name));
                    if let Some(c) = closest(&d.name, SUPPORTED.iter().copied()) {
                        d2.hint(format!("did you mean {c}?"));
                    }
                }
            }
        }
    }
}

fn frame_close_name(f: &Frame) -> &'static str {
    match f {
        Frame::Proxy { .. } => "Proxy",
        Frame::Location { .. } => "Location",
        Frame::VirtualHost => "VirtualHost",
        Frame::Conditional => "IfModule",
        Frame::Require { .. } => "RequireAny",
    }
}

/// True for a line made only of `key=value` words whose first key is not a directive.
fn is_wrapped_kv_line(text: &str) -> bool {
    let words = split_words(text);
    !words.is_empty()
        && !words[0].text.starts_with('<')
        && words.iter().all(|w| {
            w.text.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        })
}

/// Parses one `Allow from` / `Deny from` host.
pub fn parse_host_match(w: &str) -> Result<HostMatch, String> {
    if w.eq_ignore_ascii_case("all") {
        return Ok(HostMatch::All);
    }
    if let Some(v) = w.strip_prefix("env=") {
        return Ok(match v.strip_prefix('!') {
            Some(n) => HostMatch::Env(n.to_string(), false),
            None => HostMatch::Env(v.to_string(), true),
        });
    }
    if let Some(net) = parse_net(w) {
        return Ok(HostMatch::Net(net));
    }
    if w.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && w.bytes().any(|b| b.is_ascii_alphabetic())
    {
        return Ok(HostMatch::Host(w.to_ascii_lowercase()));
    }
    Err(format!("'{w}' is not an address, network or host name"))
}

/// An address, CIDR, netmask form or partial IPv4 (`10.1` → 10.1.0.0/16).
pub fn parse_net(w: &str) -> Option<ipnet::IpNet> {
    use std::net::IpAddr;
    if let Ok(n) = w.parse::<ipnet::IpNet>() {
        return Some(n.trunc());
    }
    if let Ok(a) = w.parse::<IpAddr>() {
        return Some(ipnet::IpNet::from(a));
    }
    if let Some((a, m)) = w.split_once('/') {
        let a: std::net::Ipv4Addr = a.parse().ok()?;
        let m: std::net::Ipv4Addr = m.parse().ok()?;
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return None;
        }
        return ipnet::Ipv4Net::new(a, bits.leading_ones() as u8)
            .ok()
            .map(|n| ipnet::IpNet::V4(n.trunc()));
    }
    // Partial IPv4: 1 to 3 numeric octets, optionally ending in '.'.
    let t = w.strip_suffix('.').unwrap_or(w);
    let parts: Vec<&str> = t.split('.').collect();
    if (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u8>().is_ok())
    {
        let mut oct = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            oct[i] = p.parse().ok()?;
        }
        return ipnet::Ipv4Net::new(oct.into(), (parts.len() * 8) as u8)
            .ok()
            .map(ipnet::IpNet::V4);
    }
    None
}

/// Parses a `Require` line.
pub fn parse_require(words: &[String]) -> Result<Require, String> {
    let (neg, rest) = match words.first() {
        Some(w) if w.eq_ignore_ascii_case("not") => (true, &words[1..]),
        _ => (false, words),
    };
    let Some(kind) = rest.first() else {
        return Err("Require needs a provider (all, ip, host, local)".into());
    };
    let args = &rest[1..];
    let r = match kind.to_ascii_lowercase().as_str() {
        "all" => match args.first().map(|a| a.to_ascii_lowercase()) {
            Some(a) if a == "granted" => Require::AllGranted,
            Some(a) if a == "denied" => Require::AllDenied,
            _ => return Err("Require all takes granted or denied".into()),
        },
        "ip" => {
            let mut nets = Vec::new();
            for a in args {
                nets.push(
                    parse_net(a)
                        .ok_or_else(|| format!("Require ip: '{a}' is not an address or network"))?,
                );
            }
            if nets.is_empty() {
                return Err("Require ip needs at least one address".into());
            }
            Require::Ip(nets)
        }
        "host" => {
            if args.is_empty() {
                return Err("Require host needs at least one name".into());
            }
            Require::Host(args.iter().map(|a| a.to_ascii_lowercase()).collect())
        }
        "local" => Require::Local,
        other => {
            return Err(format!(
                "Require {other} is not supported (balancerd has no authentication); use all, ip, host or local"
            ));
        }
    };
    Ok(if neg { Require::Not(Box::new(r)) } else { r })
}
