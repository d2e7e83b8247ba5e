//! mod_alias redirects: `Redirect`, `RedirectMatch`, `RedirectTemp`, `RedirectPermanent`
//! (server, `<VirtualHost>`) and `Redirect [status] URL` inside `<Location>`.

use super::{Dir, Frame, HttpdParser};
use crate::config::model::{RedirectMatcher, RedirectRule};

/// A status word or number as mod_alias reads it.
fn status_of(w: &str) -> Option<u16> {
    match w.to_ascii_lowercase().as_str() {
        "permanent" => Some(301),
        "temp" => Some(302),
        "seeother" => Some(303),
        "gone" => Some(410),
        n => n.parse::<u16>().ok().filter(|c| (300..=599).contains(c)),
    }
}

impl HttpdParser<'_> {
    pub(super) fn redirect(&mut self, d: &Dir) {
        let mut args: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
        let mut first = 0;
        let mut status = match d.lower.as_str() {
            "redirecttemp" => 302,
            "redirectpermanent" => 301,
            _ => 302,
        };
        if matches!(d.lower.as_str(), "redirect" | "redirectmatch")
            && let Some(s) = args.first().and_then(|w| status_of(w))
            && (args.len() > 1 || !(300..400).contains(&s))
        {
            // A leading status (a lone word that is a URL stays the URL).
            if !args[0].starts_with('/') && !args[0].contains(':') {
                status = s;
                args.remove(0);
                first = 1;
            }
        }
        let needs_target = (300..400).contains(&status);
        let in_location = self.stack.iter().rev().find_map(|f| match f {
            Frame::Location { host, index } => Some((*host, *index)),
            _ => None,
        });
        if let Some((h, i)) = in_location {
            if d.lower != "redirect" {
                self.err(
                    &d.origin(),
                    format!(
                        "{} is not allowed inside <Location> (httpd: only Redirect [status] URL)",
                        d.name
                    ),
                );
                return;
            }
            let target = match (args.as_slice(), needs_target) {
                ([url], true) => Some(url.to_string()),
                ([], false) => None,
                _ => {
                    self.err(
                        &d.origin(),
                        "inside <Location>, Redirect takes [status] URL (a 3xx needs the URL, other statuses none)",
                    );
                    return;
                }
            };
            self.ctx.builder.host_mut(h).locations[i].redirect = Some((status, target));
            return;
        }
        let (pattern, target) = match (args.as_slice(), needs_target) {
            ([p, url], true) => (*p, Some(url.to_string())),
            ([p], false) => (*p, None),
            _ => {
                self.err(
                    &d.origin(),
                    format!(
                        "{} takes [status] URL-path URL (a 3xx needs the URL; gone and other statuses none)",
                        d.name
                    ),
                );
                return;
            }
        };
        if let Some(t) = &target
            && !t.starts_with('/')
            && !t.contains("://")
        {
            self.err(
                &d.arg_origin(first + 1),
                format!(
                    "{}: '{t}' is neither a URL nor a path starting with '/'",
                    d.name
                ),
            );
            return;
        }
        let matcher = if d.lower == "redirectmatch" {
            match regex::Regex::new(pattern) {
                Ok(r) => RedirectMatcher::Regex(r),
                Err(e) => {
                    self.err(
                        &d.arg_origin(first),
                        format!("RedirectMatch regex does not compile: {e}"),
                    );
                    return;
                }
            }
        } else {
            if !pattern.starts_with('/') {
                self.err(
                    &d.arg_origin(first),
                    format!("{}: the URL-path must start with '/'", d.name),
                );
                return;
            }
            RedirectMatcher::Prefix(pattern.to_string())
        };
        let h = self.host;
        let origin = d.origin();
        self.ctx.builder.host_mut(h).redirects.push(RedirectRule {
            matcher,
            status,
            target,
            origin,
        });
    }
}
