//! `ErrorDocument code document`: what replaces balancerd's own error page for a status, in
//! the main server, a `<VirtualHost>` or a `<Location>`.

use super::{Dir, Frame, HttpdParser};
use crate::config::model::ErrorDocument;

impl HttpdParser<'_> {
    pub(super) fn error_document(&mut self, d: &Dir) {
        if d.args.len() != 2 {
            self.err(
                &d.origin(),
                "ErrorDocument takes a status code and a document",
            );
            return;
        }
        let code = match d.args[0].text.parse::<u16>() {
            Ok(c) if (400..=599).contains(&c) => c,
            _ => {
                self.err(
                    &d.arg_origin(0),
                    format!(
                        "ErrorDocument: '{}' is not an error status (400-599)",
                        d.args[0].text
                    ),
                );
                return;
            }
        };
        // httpd's heuristic (core.c set_error_document), on the argument without its quotes.
        let msg = d.args[1].text.as_str();
        let doc = if msg.contains(' ') {
            ErrorDocument::Text(msg.to_string())
        } else if msg.starts_with('/') {
            ErrorDocument::Local(msg.to_string())
        } else if is_url(msg) {
            if code == 401 {
                self.ctx.diags.warning(
                    &d.arg_origin(1),
                    "ErrorDocument 401 with a full URL is ignored, as httpd ignores it (a redirect would lose the authentication challenge)",
                );
                return;
            }
            ErrorDocument::Remote(msg.to_string())
        } else if msg.eq_ignore_ascii_case("default") {
            ErrorDocument::Default
        } else {
            ErrorDocument::Text(msg.to_string())
        };
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let (h, i) = (*host, *index);
                    self.ctx.builder.host_mut(h).locations[i]
                        .error_documents
                        .push((code, doc));
                    return;
                }
                Frame::Proxy { .. } => {
                    self.err(
                        &d.origin(),
                        "ErrorDocument inside <Proxy> is not supported; put it in the server or a <Location>",
                    );
                    return;
                }
                _ => {}
            }
        }
        let h = self.host;
        self.ctx
            .builder
            .host_mut(h)
            .error_documents
            .push((code, doc));
    }
}

/// `ap_is_url`: a scheme (letters, digits, `+`, `-`, `.`) followed by `:`.
fn is_url(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        }
        None => false,
    }
}
