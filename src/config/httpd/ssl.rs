//! mod_ssl directives: the front's `SSLEngine`, certificates, protocols and ciphers, and
//! `SSLProxy*` for TLS to members.

use super::{Dir, HttpdParser};

use crate::config::model::*;
use std::path::{Path, PathBuf};

impl HttpdParser<'_> {
    pub(super) fn ssl(&mut self, d: &Dir) {
        let o = d.origin();
        let lower = d.lower.as_str();
        let base = self.ctx.include_base(&d.file);
        let file_arg = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        // Certificates, keys and protocol lists are checked now, so a broken TLS setup is a
        // config error with file:line, not a failed handshake later.
        {
            use crate::net::tls;
            let joined: String = d
                .args
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let check = match lower {
                "sslcertificatefile" | "sslcertificatechainfile" | "sslproxycacertificatefile" => {
                    d.arg(0).map(|p| tls::load_certs(&file_arg(p)).map(|_| ()))
                }
                "sslcertificatekeyfile" => {
                    d.arg(0).map(|p| tls::load_key(&file_arg(p)).map(|_| ()))
                }
                "sslproxymachinecertificatefile" => d.arg(0).map(|p| {
                    let f = file_arg(p);
                    tls::load_certs(&f)
                        .and_then(|_| tls::load_key(&f))
                        .map(|_| ())
                }),
                "sslprotocol" | "sslproxyprotocol" => {
                    Some(tls::protocol_versions(Some(&joined)).map(|_| ()))
                }
                "sslciphersuite" => Some(tls::check_ciphers(&joined)),
                _ => None,
            };
            if let Some(Err(e)) = check {
                self.err(&d.arg_origin(0), e);
                return;
            }
        }
        if let Some(rest) = lower.strip_prefix("sslproxy") {
            let t = &mut self.ctx.builder.config.upstream_tls;
            match rest {
                "engine" | "checkpeername" | "checkpeercn" | "checkpeerexpire" => {
                    let Some(b) = self.flag(d) else { return };
                    let t = &mut self.ctx.builder.config.upstream_tls;
                    match rest {
                        "engine" => {
                            t.engine = b;
                            t.engine_origin = Some(o);
                        }
                        "checkpeername" => t.check_peer_name = b,
                        "checkpeercn" => t.check_peer_cn = b,
                        _ => t.check_peer_expire = b,
                    }
                }
                "verify" => {
                    let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                    match v.as_str() {
                        "none" => t.verify = false,
                        "require" => t.verify = true,
                        "optional" | "optional_no_ca" => {
                            self.err(&d.arg_origin(0), format!("SSLProxyVerify {v} is not supported: a member certificate is either verified or not"))
                                .hint("write SSLProxyVerify require (or none)");
                            return;
                        }
                        _ => {
                            self.err(&d.arg_origin(0), "SSLProxyVerify takes none or require");
                            return;
                        }
                    }
                    t.verify_explicit = true;
                }
                "cacertificatefile" => {
                    if let Some(p) = d.arg(0) {
                        t.ca_file = Some(file_arg(p));
                    }
                }
                "machinecertificatefile" => {
                    if let Some(p) = d.arg(0) {
                        t.client_cert_file = Some(file_arg(p));
                    }
                }
                "protocol" => {
                    let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                    t.protocols = Some(v.join(" "));
                }
                "verifydepth" | "ciphersuite" => {
                    self.ctx.diags.note(
                        &o,
                        format!("{} ignored: rustls chooses safe values", d.name),
                    );
                }
                _ => self.by_table(d),
            }
            return;
        }
        if matches!(
            lower,
            "sslverifyclient" | "sslcacertificatefile" | "sslverifydepth"
        ) && (self.current_location().is_some() || self.in_proxy())
        {
            self.err(
                &o,
                format!("{} inside <Location> or <Proxy> (a renegotiation per path in httpd) is not supported; set it for the server or <VirtualHost>", d.name),
            );
            return;
        }
        let h = self.host;
        let tls = self
            .ctx
            .builder
            .host_mut(h)
            .tls
            .get_or_insert_with(FrontTls::default);
        match lower {
            "sslengine" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                tls.engine = v == "on";
                tls.origin = Some(o);
            }
            "sslcertificatefile" => tls.cert_file = d.arg(0).map(file_arg),
            "sslverifyclient" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                tls.verify_client = match v.as_str() {
                    "none" => None,
                    "optional" => Some(false),
                    "require" => Some(true),
                    "optional_no_ca" => {
                        self.err(
                            &d.arg_origin(0),
                            "SSLVerifyClient optional_no_ca (accept any client certificate) is not supported",
                        )
                        .hint("write optional or require with SSLCACertificateFile");
                        return;
                    }
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            "SSLVerifyClient takes none, optional or require",
                        );
                        return;
                    }
                };
                if tls.origin.is_none() {
                    tls.origin = Some(o);
                }
            }
            "sslcacertificatefile" => {
                let Some(p) = d.arg(0).map(file_arg) else {
                    self.err(&o, "SSLCACertificateFile needs a file");
                    return;
                };
                match crate::net::tls::load_certs(&p) {
                    Ok(c) if !c.is_empty() => tls.client_ca_file = Some(p),
                    Ok(_) => {
                        self.err(
                            &d.arg_origin(0),
                            format!("{}: no certificate in the file", p.display()),
                        );
                    }
                    Err(e) => {
                        self.err(&d.arg_origin(0), e);
                    }
                }
            }
            "sslverifydepth" => {
                self.ctx.diags.note(
                    &o,
                    "SSLVerifyDepth: client certificate chains are checked to a CA in SSLCACertificateFile whatever their length",
                );
            }
            "sslcertificatekeyfile" => tls.key_file = d.arg(0).map(file_arg),
            "sslcertificatechainfile" => tls.chain_file = d.arg(0).map(file_arg),
            "sslprotocol" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                tls.protocols = Some(v.join(" "));
            }
            "sslciphersuite" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                tls.ciphers = Some(v.join(" "));
            }
            _ => self.by_table(d),
        }
    }
}
