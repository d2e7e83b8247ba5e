//! Sections: `<Proxy>`, `<Location>`, `<VirtualHost>`, `<IfModule>`/`<IfDefine>`,
//! `<Require*>`; opening and closing them, and what each scopes.

use super::directives::{self, Class};
use super::{Dir, Frame, HttpdParser, module_known};

use crate::config::builder::HostSel;
use crate::config::diag::{Origin, closest};
use crate::config::model::*;

impl HttpdParser<'_> {
    /// Handles a section open or close. Returns `Some(tag)` when the section's body must be
    /// skipped.
    pub(super) fn section(&mut self, d: &Dir) -> Option<String> {
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
                let path = regex
                    .as_ref()
                    .map_or(path.clone(), |r| r.as_str().to_string());
                locs.push(LocationSection::new(path, regex, o.clone()));
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
            "ifmodule" | "ifdefine" | "iffile" | "ifdirective" | "ifsection" | "ifversion" => {
                let Some(a) = args.first() else {
                    self.err(&o, format!("<{tag}> needs an argument"));
                    return Some(tag);
                };
                let truth = if lower == "ifversion" {
                    match if_version(&args) {
                        Ok(t) => t,
                        Err(e) => {
                            self.err(&o, format!("<{tag}>: {e}"));
                            return Some(tag);
                        }
                    }
                } else {
                    let (neg, name) = match a.strip_prefix('!') {
                        Some(n) => (true, n),
                        None => (false, a.as_str()),
                    };
                    let holds = match lower.as_str() {
                        "ifmodule" => module_known(name, &self.ctx.loaded_modules),
                        "ifdefine" => self.ctx.defines.contains_key(name),
                        "iffile" => {
                            let p = std::path::Path::new(name);
                            let p = if p.is_absolute() {
                                p.to_path_buf()
                            } else {
                                self.ctx.include_base(&d.file).join(p)
                            };
                            p.exists()
                        }
                        _ => {
                            // <IfDirective X>/<IfSection X>: X exists when its module is
                            // loaded, as httpd registers directives per loaded module.
                            let section = lower == "ifsection";
                            let bare = name.trim_start_matches('<').trim_end_matches('>');
                            directives::lookup(bare).is_some_and(|e| {
                                e.section == section
                                    && module_known(e.module, &self.ctx.loaded_modules)
                            })
                        }
                    };
                    holds != neg
                };
                if truth {
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
            _ => {
                match directives::lookup(&tag).filter(|e| e.section) {
                    Some(e) => match e.class {
                        Class::Skipped(why) => {
                            self.ctx
                                .diags
                                .note(&o, format!("<{}> skipped with its contents: {why}", e.name));
                        }
                        Class::Refused { why, .. } => {
                            self.err(
                                &o,
                                format!(
                                    "<{}> ({}) changes what httpd does and balancerd does not implement it",
                                    e.name, e.module
                                ),
                            )
                            .hint(why.to_string());
                        }
                        Class::Implemented => {
                            self.err(
                                &o,
                                format!("<{}> is listed as implemented but no handler read it (a balancerd bug)", e.name),
                            );
                        }
                    },
                    None => {
                        let known = directives::DIRECTIVES
                            .iter()
                            .filter(|e| e.section)
                            .map(|e| e.name);
                        let d = self.err(&o, format!("unknown section <{tag}>"));
                        if let Some(c) = closest(&tag, known) {
                            d.hint(format!("did you mean <{c}>?"));
                        }
                    }
                }
                return Some(tag);
            }
        }
        None
    }

    pub(super) fn open_proxy(&mut self, lower: &str, arg: Option<&str>, o: &Origin) {
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
            let mut existing = self.ctx.builder.find_balancer(&name);
            if let Some(i) = existing {
                let b = &mut self.ctx.builder.config.balancers[i];
                if b.referenced_only && b.members.is_empty() {
                    // Only a ProxyPass named it so far: this section is its definition.
                    b.referenced_only = false;
                    b.definitions[0] = o.clone();
                    existing = None;
                }
            }
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

    pub(super) fn close_section(&mut self, tag: &str, o: &Origin) {
        let Some(top) = self.stack.pop() else {
            self.err(o, format!("</{tag}> without a matching opening section"));
            return;
        };
        let expected = top.tag();
        let ok = match expected {
            "proxy" => tag == "proxy" || tag == "proxymatch",
            "location" => tag == "location" || tag == "locationmatch",
            "virtualhost" => tag == "virtualhost",
            "if" => matches!(
                tag,
                "ifmodule" | "ifdefine" | "iffile" | "ifdirective" | "ifsection" | "ifversion"
            ),
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
}

pub(super) fn frame_close_name(f: &Frame) -> &'static str {
    match f {
        Frame::Proxy { .. } => "Proxy",
        Frame::Location { .. } => "Location",
        Frame::VirtualHost => "VirtualHost",
        Frame::Conditional => "IfModule",
        Frame::Require { .. } => "RequireAny",
    }
}

/// The httpd version `<IfVersion>` compares against: the 2.4 release whose behaviour
/// balancerd follows.
pub const HTTPD_VERSION: (u32, u32, u32) = (2, 4, 66);

/// `<IfVersion [[!]op] version>` as mod_version evaluates it: `=`/`==`, `<`, `<=`, `>`, `>=`
/// on a dotted version (missing parts count as 0), `~` or `/regex/` on "2.4.66".
fn if_version(args: &[String]) -> Result<bool, String> {
    let (op, ver) = match args {
        [v] => ("=", v.as_str()),
        [op, v] => (op.as_str(), v.as_str()),
        _ => return Err("takes [operator] version".into()),
    };
    let (neg, op) = match op.strip_prefix('!') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let (a, b, c) = HTTPD_VERSION;
    let text = format!("{a}.{b}.{c}");
    let holds = if op == "~" || (ver.starts_with('/') && ver.ends_with('/') && ver.len() > 1) {
        let src = if op == "~" {
            ver
        } else {
            &ver[1..ver.len() - 1]
        };
        let re = regex::Regex::new(src).map_err(|e| format!("regex does not compile: {e}"))?;
        re.is_match(&text)
    } else {
        let mut parts = ver.split('.').map(|p| p.parse::<u32>());
        let mut next = || parts.next().unwrap_or(Ok(0));
        let want = (
            next().map_err(|_| format!("'{ver}' is not a version"))?,
            next().map_err(|_| format!("'{ver}' is not a version"))?,
            next().map_err(|_| format!("'{ver}' is not a version"))?,
        );
        let have = HTTPD_VERSION;
        match op {
            "=" | "==" => have == want,
            "<" => have < want,
            "<=" => have <= want,
            ">" => have > want,
            ">=" => have >= want,
            _ => return Err(format!("unknown operator '{op}'")),
        }
    };
    Ok(holds != neg)
}
