//! balancerd's own data-centre failover directives: `BackupSiteRedirect` (in a `<Proxy
//! balancer://…>` or a `<Location>`) and `SiteRedirect` (server level). See
//! [`BackupSite`] and [`SiteRedirect`] for what they do.

use super::{Dir, Frame, HttpdParser};
use crate::config::model::{BackupSite, SiteRedirect};

/// The redirect statuses the directives take.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// A base URL: `http(s)://host[:port][/path]`, no query or fragment; returned without a
/// trailing slash.
pub fn base_url(u: &str) -> Result<String, String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("'{u}' is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("'{u}' has no host"));
    }
    if u.contains(['?', '#']) || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{u}' must be a base URL (no query, fragment or space): the request's path and query are added to it"
        ));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// `status=N` among [`REDIRECTS`].
pub fn redirect_status(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|c| REDIRECTS.contains(c))
        .ok_or_else(|| format!("status={v}: a redirect status is 301, 302, 303, 307 or 308"))
}

/// A name for a query parameter: letters, digits, `-`, `_`, `.`.
pub fn param_name(v: &str) -> Result<String, String> {
    if !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        Ok(v.to_string())
    } else {
        Err(format!("'{v}' is not a query parameter name"))
    }
}

impl HttpdParser<'_> {
    pub(super) fn site(&mut self, d: &Dir) {
        match d.lower.as_str() {
            "backupsiteredirect" => self.backup_site(d),
            _ => self.site_redirect(d),
        }
    }

    fn backup_site(&mut self, d: &Dir) {
        let o = d.origin();
        let Some(url) = d.arg(0) else {
            self.err(
                &o,
                "BackupSiteRedirect takes a URL and optional status=N marker=NAME",
            )
            .hint("e.g. BackupSiteRedirect https://rws.dc2.example.com status=307");
            return;
        };
        let url = match base_url(url) {
            Ok(u) => u,
            Err(e) => {
                self.err(&d.arg_origin(0), e);
                return;
            }
        };
        let mut site = BackupSite {
            url,
            status: 307,
            marker: "bd-failover".into(),
            origin: o.clone(),
        };
        for (i, w) in d.args.iter().enumerate().skip(1) {
            let r = match w.text.split_once('=') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => {
                    redirect_status(v).map(|s| site.status = s)
                }
                Some((k, v)) if k.eq_ignore_ascii_case("marker") => {
                    param_name(v).map(|m| site.marker = m)
                }
                _ => Err(format!(
                    "BackupSiteRedirect takes status=N and marker=NAME, not '{}'",
                    w.text
                )),
            };
            if let Err(e) = r {
                self.err(&d.arg_origin(i), e);
                return;
            }
        }
        if let Some((h, li)) = self.current_location() {
            self.ctx.builder.host_mut(h).locations[li].backup_site = Some(site);
        } else if let Some(bi) = self.current_balancer()
            && matches!(self.stack.last(), Some(Frame::Proxy { .. }))
        {
            self.ctx.builder.config.balancers[bi].backup_site = Some(site);
        } else {
            self.err(
                &o,
                "BackupSiteRedirect belongs in a <Proxy balancer://…> section or a <Location>",
            )
            .hint("put it in the balancer's <Proxy> section to apply to every route to it");
        }
    }

    fn site_redirect(&mut self, d: &Dir) {
        let o = d.origin();
        if self.current_location().is_some() || self.in_proxy() {
            self.err(
                &o,
                "SiteRedirect is a server-level directive (not in <Location> or <Proxy>)",
            );
            return;
        }
        let words: Vec<String> = d.args.iter().map(|w| w.text.clone()).collect();
        match parse_site_redirect(&words, o.clone()) {
            Ok(r) => self.ctx.builder.config.site_redirects.push(r),
            Err(e) => {
                self.err(&o, e).hint(
                    "SiteRedirect agents.example.com https://agents.dc1.example.com agents.dc2.example.com",
                );
            }
        }
    }
}

/// `ENTRY-HOST[/PATH] LOCAL-URL BACKUP-HOST [param=NAME] [status=N]`, as both dialects give
/// it.
pub fn parse_site_redirect(
    words: &[String],
    origin: crate::config::diag::Origin,
) -> Result<SiteRedirect, String> {
    let [entry, local, backup, rest @ ..] = words else {
        return Err("SiteRedirect takes ENTRY-HOST[/PATH] LOCAL-URL BACKUP-HOST [param=site-1] [status=302]".into());
    };
    let (host, path) = match entry.find('/') {
        Some(i) => (&entry[..i], entry[i..].trim_end_matches('/').to_string()),
        None => (entry.as_str(), String::new()),
    };
    if host.is_empty() || host.contains(':') || entry.contains("://") {
        return Err(format!(
            "'{entry}' must be a host name with an optional path (no scheme or port)"
        ));
    }
    let local = base_url(local)?;
    if backup.is_empty() || backup.contains(['/', '?', '&', '#', '=', ' ']) {
        return Err(format!(
            "'{backup}' must be a host name (the value of the site parameter)"
        ));
    }
    let mut rule = SiteRedirect {
        entry_host: host.to_ascii_lowercase(),
        entry_path: if path.is_empty() { "/".into() } else { path },
        local,
        backup_host: backup.clone(),
        param: "site-1".into(),
        status: 302,
        origin,
    };
    for w in rest {
        match w.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => rule.status = redirect_status(v)?,
            Some((k, v)) if k.eq_ignore_ascii_case("param") => rule.param = param_name(v)?,
            _ => {
                return Err(format!(
                    "SiteRedirect takes param=NAME and status=N, not '{w}'"
                ));
            }
        }
    }
    Ok(rule)
}
