//! The httpd dialect: reads the admins' existing Apache files as httpd 2.4 reads them and
//! feeds the shared [`ModelBuilder`](super::builder::ModelBuilder).
//!
//! This file owns the parser's state (the open sections, the current host, balancer and
//! location), the directive tables (supported, ignored with a note) and the dispatch; the
//! directives themselves live by family: [`lexer`] (lines and words), `sections` (`<Proxy>`,
//! `<Location>`, `<VirtualHost>`, `<If*>`, `<Require*>`), `server` (`Listen`, names, `Define`,
//! `Include`, timeouts, limits), `proxy` (`BalancerMember`, `ProxySet`, `ProxyPass*`,
//! `ProxyPassReverse*`, `ProxyHC*`), `headers`, `access` (`Order`/`Allow`/`Deny`, `Require`,
//! `SetHandler`), `ssl` and `log`. Parameter meaning lives in `config::params`, header
//! formats in `config::headers`, both shared with the TOML dialect.

pub mod directives;
pub mod lexer;
pub(crate) mod site;

mod access;
mod env;
mod error_document;
mod filters;
mod headers;
mod log;
mod proxy;
mod redirect;
mod rewrite;
mod sections;
mod server;
mod ssl;

pub use access::{parse_host_match, parse_net, parse_require};

use super::LoadCtx;
use super::builder::HostSel;
use super::diag::{Diagnostic, Origin, closest};
use super::model::*;
use super::params::ParamIssue;
use lexer::{LogicalLine, Word, logical_lines, split_words, substitute};
use std::path::Path;
use std::sync::Arc;

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

/// Modules compiled into a stock httpd 2.4 (Debian's `apache2 -l`; RHEL's build has the same
/// core set): `<IfModule>` is true for them without a `LoadModule`.
const BUILT_IN: &[&str] = &[
    "core",
    "so",
    "watchdog",
    "http_core",
    "log_config",
    "logio",
    "version",
    "unixd",
];

/// The base name of a module as `<IfModule>` and `LoadModule` write it: `proxy` for
/// `proxy_module`, `mod_proxy.c`, `mod_proxy.so` or a path ending in `mod_proxy.so`.
pub(super) fn module_base(m: &str) -> String {
    let m = m.trim();
    let m = m.rsplit('/').next().unwrap_or(m);
    let base = if let Some(c) = m.strip_prefix("mod_") {
        c.strip_suffix(".c")
            .or_else(|| c.strip_suffix(".so"))
            .unwrap_or(c)
    } else {
        m.strip_suffix("_module").unwrap_or(m)
    };
    base.to_ascii_lowercase()
}

/// `<IfModule m>` as httpd evaluates it: true for a module a `LoadModule` above loaded, or one
/// compiled in. A config with no `LoadModule` at all (a tenant file checked on its own, or a
/// config written for balancerd) is read as if the modules balancerd implements were loaded,
/// since the main file that loads them is not part of what was read.
fn module_known(m: &str, loaded: &std::collections::HashSet<String>) -> bool {
    let base = module_base(m);
    if BUILT_IN.contains(&base.as_str()) || loaded.contains(&base) {
        return true;
    }
    loaded.is_empty() && MODULES.iter().any(|k| k.eq_ignore_ascii_case(&base))
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
    /// The directive as it can be written again (`balancerd convert`): its name and words,
    /// quoted where a word needs it.
    fn as_written(&self) -> String {
        let mut s = self.name.clone();
        for w in &self.args {
            s.push(' ');
            s.push_str(&crate::config::emit::httpd_word(&w.text));
        }
        s
    }
}

/// Reads httpd-dialect files into the shared builder.
pub struct HttpdParser<'a> {
    ctx: &'a mut LoadCtx,
    stack: Vec<Frame>,
    host: HostSel,
    /// `RewriteCond`s waiting for their `RewriteRule`.
    rewrite_conds: Vec<crate::config::rewrite::RewriteCond>,
    /// "Did you mean" hints given so far: a file of garbage gets the first
    /// [`MAX_SUGGESTIONS`], not one edit-distance search over 721 names per word.
    suggestions: u32,
}

/// Most "did you mean" hints for unknown directives in one load.
const MAX_SUGGESTIONS: u32 = 10;

impl<'a> HttpdParser<'a> {
    /// A parser at the top level of the main server.
    pub fn new(ctx: &'a mut LoadCtx) -> Self {
        HttpdParser {
            ctx,
            stack: Vec::new(),
            host: HostSel::Main,
            rewrite_conds: Vec::new(),
            suggestions: 0,
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
                    format!(
                        "missing </{}> at the end of the file",
                        sections::frame_close_name(&f)
                    ),
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

    /// Handles one directive.
    fn directive(&mut self, d: &Dir) {
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
        if self.server_directive(d) || self.proxy_directive(d) || self.log_directive(d) {
            return;
        }
        match d.lower.as_str() {
            "header" | "requestheader" => self.header(d),
            "sethandler" => self.set_handler(d),
            "order" | "allow" | "deny" | "satisfy" | "require" => self.access(d),
            l if l.starts_with("ssl") => self.ssl(d),
            "adddefaultcharset" => self.add_default_charset(d),
            "errordocument" => self.error_document(d),
            "addoutputfilterbytype" | "addoutputfilter" | "setoutputfilter" => {
                self.output_filter(d)
            }
            "setenv" => self.set_env(d),
            "backupsiteredirect" | "siteredirect" => self.site(d),
            "rewriteengine" | "rewritecond" | "rewriterule" | "rewriteoptions" => self.rewrite(d),
            "redirect" | "redirectmatch" | "redirecttemp" | "redirectpermanent" => self.redirect(d),
            "browsermatch" | "browsermatchnocase" | "setenvif" | "setenvifnocase" => {
                self.set_env_if(d)
            }
            _ => self.by_table(d),
        }
    }

    /// A directive no handler took: skipped, refused or unknown, as the table says.
    fn by_table(&mut self, d: &Dir) {
        use directives::Class;
        let o = d.origin();
        if d.lower == "loadmodule" {
            // Server config only, as httpd: not in <VirtualHost>, <Location> or <Proxy>.
            if let Some(f) = self.stack.iter().find(|f| !matches!(f, Frame::Conditional)) {
                self.err(
                    &o,
                    format!(
                        "LoadModule cannot occur within <{}> section (httpd refuses it)",
                        sections::frame_close_name(f)
                    ),
                )
                .hint(
                    "move it to the top level of the file, before the sections that use the module",
                );
                return;
            }
            if let Some(name) = d.arg(0) {
                self.ctx.loaded_modules.insert(module_base(name));
            }
            self.ctx.diags.note(
                &o,
                "LoadModule: the module counts as loaded for <IfModule> (balancerd loads no module files)",
            );
            return;
        }
        let Some(entry) = directives::lookup(&d.name).filter(|e| !e.section) else {
            let looks_kv = d.name.contains('=');
            let names = directives::DIRECTIVES
                .iter()
                .filter(|e| !e.section)
                .map(|e| e.name);
            let suggest = self.suggestions < MAX_SUGGESTIONS;
            self.suggestions += 1;
            let dd = self.err(&o, format!("unknown directive '{}'", d.name));
            if looks_kv {
                dd.hint("a key=value word must be on the same line as its directive");
            } else if let Some(c) = suggest.then(|| closest(&d.name, names)).flatten() {
                dd.hint(format!("did you mean {c}?"));
            }
            return;
        };
        match entry.class {
            Class::Skipped(why) => {
                self.ctx
                    .diags
                    .note(&o, format!("{} skipped: {why}", entry.name));
            }
            Class::Refused { why, default } => {
                let written: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                let written = written.join(" ");
                if default.is_some_and(|v| v.eq_ignore_ascii_case(&written)) {
                    self.ctx.diags.note(
                        &o,
                        format!(
                            "{} {written} is what balancerd does; nothing to change",
                            entry.name
                        ),
                    );
                } else {
                    self.refuse(d, entry, why);
                }
            }
            Class::Implemented => {
                self.err(
                    &o,
                    format!(
                        "{} is listed as implemented but no handler read it (a balancerd bug)",
                        entry.name
                    ),
                );
            }
        }
    }

    /// The error for a directive balancerd does not implement: what httpd would do, and what
    /// to write instead.
    fn refuse(&mut self, d: &Dir, entry: &directives::Directive, why: &str) {
        self.err(
            &d.origin(),
            format!(
                "{} ({}) changes what httpd does and balancerd does not implement it",
                entry.name, entry.module
            ),
        )
        .hint(why.to_string());
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

    /// The shared load state.
    pub(crate) fn ctx_mut(&mut self) -> &mut LoadCtx {
        self.ctx
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
