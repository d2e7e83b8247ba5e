//! mod_headers: `Header` and `RequestHeader` (the value formats are parsed by
//! `config::headers`, shared with the TOML dialect).

use super::{Dir, Frame, HttpdParser};

use crate::config::diag::Origin;
use crate::config::headers::parse_header_directive;

impl HttpdParser<'_> {
    /// `AddDefaultCharset On|Off|charset`: a `text/plain` or `text/html` response without
    /// parameters gets `; charset=…` (`On` is ISO-8859-1), as httpd's `ap_make_content_type`
    /// adds it, proxied responses included. Compiled to the `Header edit` rule that does it.
    pub(super) fn add_default_charset(&mut self, d: &Dir) {
        let Some(v) = d.arg(0).filter(|_| d.args.len() == 1) else {
            self.err(&d.origin(), "AddDefaultCharset takes On, Off or a charset");
            return;
        };
        let charset = match v.to_ascii_lowercase().as_str() {
            "off" => return,
            "on" => "ISO-8859-1".to_string(),
            _ => v.to_string(),
        };
        if !charset
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            self.err(
                &d.arg_origin(0),
                format!("'{charset}' is not a charset name"),
            );
            return;
        }
        let word = |t: &str| super::lexer::Word {
            text: t.to_string(),
            offset: d.args[0].offset,
            quoted: true,
        };
        let synthetic = Dir {
            name: "Header".into(),
            lower: "header".into(),
            args: vec![
                word("always"),
                word("edit"),
                word("Content-Type"),
                word(r"(?i)^(text/(?:plain|html))\s*$"),
                word(&format!("$1; charset={charset}")),
            ],
            file: d.file.clone(),
            line: d.line,
            indent: d.indent,
        };
        self.header(&synthetic);
    }

    pub(super) fn header(&mut self, d: &Dir) {
        let o = d.origin();
        let words: Vec<(String, Origin)> = d
            .args
            .iter()
            .enumerate()
            .map(|(i, w)| (w.text.clone(), d.arg_origin(i)))
            .collect();
        let request = d.lower == "requestheader";
        let rule = match parse_header_directive(&words, request, &o) {
            Ok(r) => r,
            Err(p) => {
                let (origin, issue) = p;
                self.issue(&origin, issue);
                return;
            }
        };
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let l = &mut self.ctx.builder.host_mut(*host).locations[*index];
                    if request {
                        l.request_headers.push(rule);
                    } else {
                        l.response_headers.push(rule);
                    }
                    return;
                }
                Frame::Proxy { balancer, .. } => {
                    match balancer {
                        Some(bi) => {
                            let b = &mut self.ctx.builder.config.balancers[*bi];
                            if request {
                                b.request_headers.push(rule);
                            } else {
                                b.response_headers.push(rule);
                            }
                        }
                        None => {
                            self.ctx.diags.warning(
                                &o,
                                format!("{} in a non-balancer <Proxy> section is ignored", d.name),
                            );
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
        let h = self.host;
        let rules = self.ctx.builder.host_mut(h);
        if request {
            rules.request_headers.push(rule);
        } else {
            rules.response_headers.push(rule);
        }
    }
}
