//! Per-request variables: `SetEnv` (the `proxy-*` switches mod_proxy_http reads), `SetEnvIf`,
//! `BrowserMatch` and their `NoCase` forms.
//!
//! balancerd sets no request variables yet. The lines stock httpd trees carry set only the
//! switches for 1990s clients (`nokeepalive`, `downgrade-1.0`, …): those are skipped with a
//! note; a line that sets anything else is refused, since a `CustomLog env=`, `Header env=`
//! or `Require env` elsewhere may depend on it.

use super::directives;
use super::{Dir, Frame, HttpdParser};
use crate::config::model::ProxySwitches;

/// Variables httpd reads only to work around broken clients of the 1990s and early 2000s.
const OLD_CLIENT_SWITCHES: &[&str] = &[
    "nokeepalive",
    "downgrade-1.0",
    "force-response-1.0",
    "redirect-carefully",
    "ssl-unclean-shutdown",
    "gzip-only-text/html",
    "no-gzip",
    "dont-vary",
    "force-no-vary",
    "suppress-error-charset",
];

impl HttpdParser<'_> {
    /// `SetEnv name [value]`: the `proxy-*` switches are read for requests in the scope
    /// (server, `<VirtualHost>`, `<Location>`, `<Proxy balancer://…>`); any other variable is
    /// refused (balancerd sets no request variables yet).
    pub(super) fn set_env(&mut self, d: &Dir) {
        let Some(name) = d.arg(0) else {
            self.err(&d.origin(), "SetEnv needs a variable name");
            return;
        };
        let Some(flag) = ProxySwitches::by_name(name) else {
            self.err(
                &d.arg_origin(0),
                format!(
                    "SetEnv {name}: balancerd reads only the proxy switches (proxy-sendchunked, proxy-initial-not-pooled, proxy-nokeepalive, force-proxy-request-1.0)"
                ),
            )
            .hint("balancerd sets no request variables");
            return;
        };
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let (h, i) = (*host, *index);
                    self.ctx.builder.host_mut(h).locations[i].proxy_switches.0 |= flag;
                    return;
                }
                Frame::Proxy {
                    balancer: Some(bi), ..
                } => {
                    let bi = *bi;
                    self.ctx.builder.config.balancers[bi].proxy_switches.0 |= flag;
                    return;
                }
                Frame::Proxy { .. } => {
                    self.err(
                        &d.origin(),
                        "SetEnv inside a <Proxy> section that is not a balancer is not supported; put it in the server or a <Location>",
                    );
                    return;
                }
                _ => {}
            }
        }
        let h = self.host;
        self.ctx.builder.host_mut(h).proxy_switches.0 |= flag;
    }

    pub(super) fn set_env_if(&mut self, d: &Dir) {
        // BrowserMatch regex var...; SetEnvIf attribute regex var...
        let first_var = if d.lower.starts_with("browsermatch") {
            1
        } else {
            2
        };
        if d.args.len() <= first_var {
            self.err(
                &d.origin(),
                format!("{} needs a condition and at least one variable", d.name),
            );
            return;
        }
        let vars: Vec<&str> = d.args[first_var..]
            .iter()
            .map(|w| {
                let t = w.text.trim_start_matches('!');
                t.split_once('=').map_or(t, |(k, _)| k)
            })
            .collect();
        if let Some(other) = vars.iter().find(|v| {
            !OLD_CLIENT_SWITCHES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(v))
        }) {
            let why = directives::refusal(&d.name).unwrap_or("balancerd sets no request variables");
            self.err(
                &d.origin(),
                format!(
                    "{} sets '{other}', and balancerd sets no request variables yet",
                    d.name
                ),
            )
            .hint(why.to_string());
            return;
        }
        self.ctx.diags.note(
            &d.origin(),
            format!(
                "{} skipped: it sets only switches for old clients ({}), which balancerd does not need",
                d.name,
                vars.join(", ")
            ),
        );
    }
}
