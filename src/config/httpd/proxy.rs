//! mod_proxy and mod_proxy_balancer directives: `BalancerMember`, `ProxySet`, `ProxyPass`
//! and `ProxyPassMatch`, `ProxyPassReverse*`, the `Proxy*` switches, and mod_proxy_hcheck's
//! `ProxyHCExpr` and `ProxyHCTemplate`.

use super::{Dir, HttpdParser};

use crate::config::builder::parse_member_url;
use crate::config::model::ScopedCookiePath;
use crate::config::model::*;
use crate::config::params::{set_balancer_param, set_member_param};

impl HttpdParser<'_> {
    /// The proxy directives; false when `d` is not one of them.
    pub(super) fn proxy_directive(&mut self, d: &Dir) -> bool {
        let o = d.origin();
        match d.lower.as_str() {
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
            "proxyvia" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                self.ctx.builder.config.server.proxy_via = match v.to_ascii_lowercase().as_str() {
                    "off" => ProxyVia::Off,
                    "on" => ProxyVia::On,
                    "full" => ProxyVia::Full,
                    "block" => ProxyVia::Block,
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("ProxyVia must be On, Off, Full or Block, not '{v}'"),
                        );
                        return true;
                    }
                };
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
                    return true;
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
            _ => return false,
        }
        true
    }

    pub(super) fn kv_words(&mut self, d: &Dir, from: usize) -> Vec<(usize, String, String)> {
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
                        if crate::config::params::BALANCER_KEYS.contains(&glued.as_str())
                            || crate::config::params::MEMBER_KEYS.contains(&glued.as_str())
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

    pub(super) fn balancer_member(&mut self, d: &Dir) {
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

    pub(super) fn proxy_set(&mut self, d: &Dir) {
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

    pub(super) fn set_balancer_kv(&mut self, bi: usize, i: usize, k: &str, v: &str, d: &Dir) {
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

    pub(super) fn proxy_pass(&mut self, d: &Dir, is_match: bool) {
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
            in_location: loc.is_some(),
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
                // The name ends at the first '/', or for ProxyPassMatch at a `$N` that
                // continues the path (`balancer://cluster$1` with `^(/.*)$`: httpd substitutes
                // first, and the capture starts with '/').
                let end = rest
                    .find(|c| c == '/' || (is_match && c == '$'))
                    .unwrap_or(rest.len());
                let name = &rest[..end];
                if name.is_empty() {
                    self.err(
                        &d.arg_origin(1),
                        format!("{target}: balancer:// needs a name"),
                    )
                    .hint("balancer:///x has three slashes: write balancer://name/x");
                    return;
                }
                if name.contains(['*', '?', '[']) {
                    // No <Proxy> section can define such a name (wildcard sections are
                    // refused), so the balancer would never have a member.
                    self.err(
                        &d.arg_origin(1),
                        format!("balancer://{name}: a balancer name has no wildcard characters"),
                    )
                    .hint("name the balancer exactly as its <Proxy balancer://…> section does");
                    return;
                }
                let path = target[11 + name.len()..].to_string();
                let known = self.ctx.builder.find_balancer(name).is_some();
                if path.starts_with('$') {
                    self.ctx.diags.note(
                        &d.arg_origin(1),
                        format!(
                            "balancer://{name}{path}: the balancer is balancer://{name} and {path} continues the path (as httpd reads it when the capture starts with '/')"
                        ),
                    );
                }
                let bi = self.ctx.builder.balancer_index(name, &o);
                if !known {
                    self.ctx.builder.config.balancers[bi].referenced_only = true;
                }
                for (i, k, v) in kv {
                    if k.eq_ignore_ascii_case("upgrade") {
                        route.upgrade = Some(v);
                    } else if k.eq_ignore_ascii_case("mapping") {
                        self.ctx.diags.warning(
                            &d.arg_origin(i),
                            "mapping= is not supported; the path is mapped as httpd's default",
                        );
                    } else if crate::config::params::MEMBER_KEYS
                        .contains(&k.to_ascii_lowercase().as_str())
                        && !crate::config::params::BALANCER_KEYS
                            .contains(&k.to_ascii_lowercase().as_str())
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

    pub(super) fn pass_reverse(&mut self, d: &Dir) {
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
}
