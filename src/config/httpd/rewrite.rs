//! mod_rewrite directives in server and `<VirtualHost>` context: `RewriteEngine`,
//! `RewriteCond`, `RewriteRule`, `RewriteOptions Inherit|InheritBefore`. Compiled into
//! `config::rewrite`; anything outside the implemented part is an error that names it.

use super::{Dir, Frame, HttpdParser};
use crate::config::builder::parse_member_url;
use crate::config::model::{
    InheritOrder, Member, MemberParams, MemberUrl, Route, RouteMatch, RouteTarget,
};
use crate::config::rewrite::{
    CmpOp, CondPattern, ProxyTarget, RewriteCond, RewriteRule, parse_pieces, parse_rule_flags,
};

impl HttpdParser<'_> {
    pub(super) fn rewrite(&mut self, d: &Dir) {
        if self
            .stack
            .iter()
            .any(|f| matches!(f, Frame::Location { .. } | Frame::Proxy { .. }))
        {
            self.err(
                &d.origin(),
                format!("{} inside <Location> or <Proxy> (per-directory rewriting) is not supported; write the rule in the server or <VirtualHost>", d.name),
            )
            .hint("per-directory rules see a path without the location's prefix; rewrite the pattern for the full path");
            return;
        }
        match d.lower.as_str() {
            "rewriteengine" => {
                if let Some(on) = self.flag(d) {
                    let h = self.host;
                    self.ctx.builder.host_mut(h).rewrite.engine = on;
                }
            }
            "rewriteoptions" => {
                for (i, w) in d.args.iter().enumerate() {
                    let order = match w.text.to_ascii_lowercase().as_str() {
                        "inherit" => InheritOrder::After,
                        "inheritbefore" => InheritOrder::Before,
                        _ => {
                            self.err(
                                &d.arg_origin(i),
                                format!("RewriteOptions {}: balancerd implements Inherit and InheritBefore", w.text),
                            );
                            continue;
                        }
                    };
                    let h = self.host;
                    self.ctx.builder.host_mut(h).rewrite.inherit = Some(order);
                }
            }
            "rewritecond" => {
                if let Some(c) = self.rewrite_cond(d) {
                    self.rewrite_conds.push(c);
                }
            }
            _ => self.rewrite_rule(d),
        }
    }

    fn rewrite_cond(&mut self, d: &Dir) -> Option<RewriteCond> {
        if !(2..=3).contains(&d.args.len()) {
            self.err(
                &d.origin(),
                "RewriteCond takes TestString CondPattern [flags]",
            );
            return None;
        }
        let test = match parse_pieces(&d.args[0].text) {
            Ok(t) => t,
            Err(e) => {
                self.err(&d.arg_origin(0), e);
                return None;
            }
        };
        let (mut nocase, mut or_next) = (false, false);
        if let Some(flags) = d.arg(2) {
            let inner = flags.trim_start_matches('[').trim_end_matches(']');
            for f in inner.split(',').map(str::trim) {
                match f.to_ascii_uppercase().as_str() {
                    "NC" | "NOCASE" => nocase = true,
                    "OR" | "ORNEXT" => or_next = true,
                    "NV" | "NOVARY" => {}
                    _ => {
                        self.err(
                            &d.arg_origin(2),
                            format!("RewriteCond flag [{f}] is not supported (NC, OR and NV are)"),
                        );
                        return None;
                    }
                }
            }
        }
        let raw = d.args[1].text.as_str();
        let (negate, pat) = match raw.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, raw),
        };
        let file_tests = ["-d", "-f", "-F", "-H", "-l", "-L", "-s", "-U", "-x"];
        if file_tests.contains(&pat) {
            self.err(
                &d.arg_origin(1),
                format!("RewriteCond {pat}: file tests need the files httpd serves; balancerd serves none"),
            )
            .hint("test the request instead (a path, a header, the query)");
            return None;
        }
        let int_ops = [
            ("-eq", CmpOp::Eq),
            ("-ne", CmpOp::Ne),
            ("-lt", CmpOp::Lt),
            ("-le", CmpOp::Le),
            ("-gt", CmpOp::Gt),
            ("-ge", CmpOp::Ge),
        ];
        let pattern = if let Some((op, rest)) = int_ops
            .iter()
            .find_map(|(n, op)| pat.strip_prefix(n).map(|r| (*op, r)))
        {
            match rest.trim().parse::<i64>() {
                Ok(n) => CondPattern::Integer(op, n),
                Err(_) => {
                    self.err(
                        &d.arg_origin(1),
                        format!("RewriteCond {pat}: not a whole number"),
                    );
                    return None;
                }
            }
        } else if let Some((op, rest)) = [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
            ("=", CmpOp::Eq),
        ]
        .iter()
        .find_map(|(n, op)| pat.strip_prefix(n).map(|r| (*op, r)))
        {
            let v = if rest == "\"\"" { "" } else { rest };
            CondPattern::Lexical(op, v.to_string())
        } else {
            let src = if nocase {
                format!("(?i){pat}")
            } else {
                pat.to_string()
            };
            match regex::Regex::new(&src) {
                Ok(r) => CondPattern::Regex(r),
                Err(e) => {
                    self.err(
                        &d.arg_origin(1),
                        format!("RewriteCond pattern does not compile: {e}"),
                    );
                    return None;
                }
            }
        };
        Some(RewriteCond {
            source: d.as_written(),
            test,
            pattern,
            negate,
            or_next,
        })
    }

    fn rewrite_rule(&mut self, d: &Dir) {
        let conds = std::mem::take(&mut self.rewrite_conds);
        if !(2..=3).contains(&d.args.len()) {
            self.err(
                &d.origin(),
                "RewriteRule takes Pattern Substitution [flags]",
            );
            return;
        }
        let (flags, nocase) = match d.arg(2).map(parse_rule_flags).transpose() {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => {
                self.err(&d.arg_origin(2), e);
                return;
            }
        };
        let raw = d.args[0].text.as_str();
        let (negate, pat) = match raw.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, raw),
        };
        let src = if nocase {
            format!("(?i){pat}")
        } else {
            pat.to_string()
        };
        let pattern = match regex::Regex::new(&src) {
            Ok(r) => r,
            Err(e) => {
                self.err(
                    &d.arg_origin(0),
                    format!("RewriteRule pattern does not compile: {e}"),
                );
                return;
            }
        };
        let subst_text = d.args[1].text.as_str();
        let subst = if subst_text == "-" {
            None
        } else {
            match parse_pieces(subst_text) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(&d.arg_origin(1), e);
                    return;
                }
            }
        };
        let to_url = subst_text.contains("://");
        let acts = flags.proxy
            || flags.pass_through
            || flags.redirect.is_some()
            || flags.forbidden
            || flags.gone;
        if subst.is_some() && !acts && !to_url {
            self.err(
                &d.origin(),
                "this RewriteRule maps the request to a file (httpd would serve it from disk); balancerd serves no files",
            )
            .hint("add [PT] to pass the new path on to ProxyPass, [P] to proxy it, or [R] to redirect");
            return;
        }
        let mut proxy = None;
        if flags.proxy {
            match self.proxy_target(d, subst_text) {
                Some(t) => proxy = Some(t),
                None => return,
            }
        }
        let h = self.host;
        self.ctx
            .builder
            .host_mut(h)
            .rewrite
            .rules
            .push(RewriteRule {
                source: d.as_written(),
                conds,
                pattern,
                negate,
                subst,
                flags,
                proxy,
                origin: d.origin(),
            });
    }

    /// The balancer a `[P]` substitution names with its fixed prefix.
    fn proxy_target(&mut self, d: &Dir, subst: &str) -> Option<ProxyTarget> {
        let o = d.arg_origin(1);
        let Some((scheme, rest)) = subst.split_once("://") else {
            self.err(
                &o,
                "[P] needs a URL: balancer://name/… or http://host:port/…",
            );
            return None;
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if scheme.contains(['$', '%']) || authority.contains(['$', '%']) {
            self.err(
                &o,
                "[P] with a scheme or host from a back-reference or variable is not supported: members are fixed by the config",
            )
            .hint("write the host out, or route to a balancer://name");
            return None;
        }
        let prefix = format!("{scheme}://{authority}");
        let bi = if scheme.eq_ignore_ascii_case("balancer") {
            let name = authority.to_ascii_lowercase();
            if name.is_empty() {
                self.err(&o, "[P] to balancer:// needs a name")
                    .hint("balancer:///x has three slashes: write balancer://name/x");
                return None;
            }
            if name.contains(['*', '?', '[']) {
                self.err(
                    &o,
                    format!("balancer://{name}: a balancer name has no wildcard characters"),
                );
                return None;
            }
            let known = self.ctx.builder.find_balancer(&name).is_some();
            let bi = self.ctx.builder.balancer_index(&name, &o);
            if !known {
                self.ctx.builder.config.balancers[bi].referenced_only = true;
            }
            bi
        } else {
            let (u, upgrade) = match parse_member_url(&prefix) {
                Ok(x) => x,
                Err(e) => {
                    self.err(&o, e);
                    return None;
                }
            };
            let name = u.to_string();
            let bi = self.ctx.builder.balancer_index(&name, &o);
            let b = &mut self.ctx.builder.config.balancers[bi];
            b.implicit = true;
            if b.members.is_empty() {
                b.members.push(Member {
                    url: MemberUrl {
                        path: String::new(),
                        ..u
                    },
                    params: MemberParams {
                        upgrade,
                        ..Default::default()
                    },
                    origin: o.clone(),
                });
            }
            bi
        };
        Some(ProxyTarget {
            balancer: bi,
            prefix: prefix.clone(),
            route: Route {
                matcher: RouteMatch::Prefix(String::new()),
                target: RouteTarget::Balancer {
                    balancer: bi,
                    path: String::new(),
                },
                target_text: subst.to_string(),
                nocanon: false,
                noquery: false,
                upgrade: None,
                in_location: false,
                origin: o,
            },
        })
    }
}
