//! mod_headers: `Header` and `RequestHeader` (the value formats are parsed by
//! `config::headers`, shared with the TOML dialect).

use super::{Dir, Frame, HttpdParser};

use crate::config::diag::Origin;
use crate::config::headers::parse_header_directive;

impl HttpdParser<'_> {
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
