//! Output filters by name (`AddOutputFilterByType`, `AddOutputFilter`, `SetOutputFilter`):
//! compression is accepted with a warning, anything that rewrites content is refused.

use super::directives;
use super::{Dir, HttpdParser};

/// Filters that only change the transfer representation (the client decodes the same bytes).
const COMPRESSION: &[&str] = &["DEFLATE", "BROTLI_COMPRESS"];

impl HttpdParser<'_> {
    pub(super) fn output_filter(&mut self, d: &Dir) {
        let Some(list) = d.arg(0) else {
            self.err(&d.origin(), format!("{} needs a filter name", d.name));
            return;
        };
        let names: Vec<&str> = list.split(';').filter(|n| !n.is_empty()).collect();
        let other = names
            .iter()
            .find(|n| !COMPRESSION.iter().any(|c| c.eq_ignore_ascii_case(n)));
        if let Some(other) = other
            && d.lower == "addoutputfilter"
        {
            // By extension (mod_mime): it applies only where a path ends in one of them.
            let exts: Vec<&str> = d.args[1..].iter().map(|w| w.text.as_str()).collect();
            self.ctx
                .diags
                .warning(
                    &d.arg_origin(0),
                    format!(
                        "AddOutputFilter {list}: httpd would run the {other} filter on responses whose path ends in {}, proxied ones included; balancerd does not",
                        exts.join(" ")
                    ),
                )
                .hint("harmless unless members serve such paths; remove the line to silence this");
            return;
        }
        if let Some(other) = other {
            let why = directives::refusal(&d.name).unwrap_or("balancerd streams bodies unchanged");
            self.err(
                &d.arg_origin(0),
                format!(
                    "{}: the {other} filter changes the content httpd sends and balancerd does not run it",
                    d.name
                ),
            )
            .hint(why.to_string());
            return;
        }
        self.ctx
            .diags
            .warning(
                &d.origin(),
                format!(
                    "{} {}: httpd would compress these responses; balancerd passes them as the member encodes them (same content, more bytes)",
                    d.name, list
                ),
            )
            .hint("let the member compress (it sees Accept-Encoding), or remove the line to silence this");
    }
}
