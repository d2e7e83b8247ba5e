//! Per-request variables: `SetEnvIf`, `BrowserMatch` and their `NoCase` forms.
//!
//! balancerd sets no request variables yet. The lines stock httpd trees carry set only the
//! switches for 1990s clients (`nokeepalive`, `downgrade-1.0`, …): those are skipped with a
//! note; a line that sets anything else is refused, since a `CustomLog env=`, `Header env=`
//! or `Require env` elsewhere may depend on it.

use super::directives;
use super::{Dir, HttpdParser};

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
            let why = match directives::lookup(&d.name).map(|e| e.class) {
                Some(directives::Class::Refused { why, .. }) => why,
                _ => "balancerd sets no request variables",
            };
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
