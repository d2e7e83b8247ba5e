//! Server-wide directives: `Listen`, `ServerName`/`ServerAlias`/`ServerRoot`, `Define`,
//! `Include`, timeouts and keep-alive, limits, `PidFile`, `GracefulShutdownTimeout`.

use super::{Dir, HttpdParser};

use crate::config::builder::HostSel;
use crate::config::model::*;
use crate::config::params::timeout_with_unit;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl HttpdParser<'_> {
    /// The server directives; false when `d` is not one of them.
    pub(super) fn server_directive(&mut self, d: &Dir) -> bool {
        let o = d.origin();
        match d.lower.as_str() {
            "listen" => self.listen(d),
            "servername" => {
                let Some(n) = self.one_arg(d) else {
                    return true;
                };
                match self.host {
                    HostSel::Main => self.ctx.builder.config.server.server_name = Some(n),
                    HostSel::VHost(i) => self.ctx.builder.config.vhosts[i].server_name = Some(n),
                }
            }
            "serveralias" => match self.host {
                HostSel::Main => {
                    self.err(&o, "ServerAlias is only allowed inside <VirtualHost>");
                }
                HostSel::VHost(i) => {
                    let names = d.args.iter().map(|w| w.text.clone());
                    self.ctx.builder.config.vhosts[i].aliases.extend(names);
                }
            },
            "serverroot" => {
                let Some(n) = self.one_arg(d) else {
                    return true;
                };
                self.ctx.builder.config.server.server_root = Some(PathBuf::from(n));
            }
            "define" => match d.args.len() {
                1 | 2 => {
                    let v = d.arg(1).unwrap_or("").to_string();
                    let k = d.args[0].text.clone();
                    if k.contains(':') {
                        self.err(&o, "Define names may not contain ':'");
                    } else {
                        self.ctx.defines.insert(k, v);
                    }
                }
                _ => {
                    self.err(&o, "Define takes a name and an optional value");
                }
            },
            "undefine" => {
                if let Some(k) = d.arg(0) {
                    self.ctx.defines.remove(k);
                }
            }
            "include" | "includeoptional" => self.include(d, d.lower == "includeoptional"),
            "proxytimeout" | "timeout" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match v.parse::<u64>() {
                    Ok(n) if n >= 1 => {
                        let s = &mut self.ctx.builder.config.server;
                        if d.lower == "timeout" {
                            s.timeout = Duration::from_secs(n);
                        } else {
                            s.proxy_timeout = Some(Duration::from_secs(n));
                        }
                    }
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("{} takes whole seconds (at least 1), not '{v}'", d.name),
                        )
                        .hint(format!(
                            "httpd reads {} with atoi; write a plain number such as {} 60",
                            d.name, d.name
                        ));
                    }
                }
            }
            "keepalive" => {
                if let Some(b) = self.flag(d) {
                    self.ctx.builder.config.server.keepalive = b;
                }
            }
            "keepalivetimeout" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match timeout_with_unit("KeepAliveTimeout", &v, false) {
                    Ok(t) => self.ctx.builder.config.server.keepalive_timeout = t,
                    Err(e) => self.issue(&d.arg_origin(0), e),
                }
            }
            "maxkeepaliverequests"
            | "limitrequestline"
            | "limitrequestfieldsize"
            | "limitrequestfields"
            | "limitrequestbody"
            | "proxyhctpsize" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                let Ok(n) = v.parse::<u64>() else {
                    self.err(
                        &d.arg_origin(0),
                        format!("{} takes a whole number, not '{v}'", d.name),
                    );
                    return true;
                };
                let s = &mut self.ctx.builder.config.server;
                let n32 = n.min(u32::MAX as u64) as u32;
                match d.lower.as_str() {
                    "maxkeepaliverequests" => s.max_keepalive_requests = n32,
                    "limitrequestline" => s.limit_request_line = n32,
                    "limitrequestfieldsize" => s.limit_request_field_size = n32,
                    "limitrequestfields" => s.limit_request_fields = n32,
                    "limitrequestbody" => s.limit_request_body = n,
                    _ => {}
                }
            }
            "requestreadtimeout" => self.request_read_timeout(d),
            "allowencodedslashes" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                self.ctx.builder.config.server.allow_encoded_slashes = match v
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "off" => EncodedSlashes::Off,
                    "on" => EncodedSlashes::On,
                    "nodecode" => EncodedSlashes::NoDecode,
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("AllowEncodedSlashes must be On, Off or NoDecode, not '{v}'"),
                        );
                        return true;
                    }
                };
            }
            "usecanonicalname" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match v.to_ascii_lowercase().as_str() {
                    "on" => self.ctx.builder.config.server.use_canonical_name = true,
                    "off" => self.ctx.builder.config.server.use_canonical_name = false,
                    "dns" => {
                        self.err(
                            &d.arg_origin(0),
                            "UseCanonicalName DNS (a reverse DNS lookup of the address each request arrived on) is not supported",
                        )
                        .hint("write UseCanonicalName On with the ServerName to use");
                    }
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("UseCanonicalName must be On, Off or DNS, not '{v}'"),
                        );
                    }
                }
            }
            "shutdowndelay" => {
                // balancerd's own directive: whole seconds (or a unit: 500ms).
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                if v == "0" {
                    self.ctx.builder.config.server.shutdown_delay = Duration::ZERO;
                    return true;
                }
                match crate::config::params::timeout_with_unit("ShutdownDelay", &v, false) {
                    Ok(t) => self.ctx.builder.config.server.shutdown_delay = t,
                    Err(e) => self.issue(&d.arg_origin(0), e),
                }
            }
            "underscoresinheaders" => {
                // balancerd's own directive (httpd passes such fields; nginx drops them).
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match v.to_ascii_lowercase().as_str() {
                    "on" => self.ctx.builder.config.server.underscores_in_headers = true,
                    "off" => self.ctx.builder.config.server.underscores_in_headers = false,
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("UnderscoresInHeaders must be On or Off, not '{v}'"),
                        );
                    }
                }
            }
            "traceenable" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match v.to_ascii_lowercase().as_str() {
                    "on" => self.ctx.builder.config.server.trace_enable = true,
                    "off" => self.ctx.builder.config.server.trace_enable = false,
                    "extended" => {
                        self.err(
                            &d.arg_origin(0),
                            "TraceEnable extended: httpd would let TRACE carry a body; balancerd does not",
                        )
                        .hint("write TraceEnable On or Off");
                    }
                    _ => {
                        self.err(
                            &d.arg_origin(0),
                            format!("TraceEnable must be On, Off or extended, not '{v}'"),
                        );
                    }
                }
            }
            "gracefulshutdowntimeout" => {
                let Some(v) = self.one_arg(d) else {
                    return true;
                };
                match v.parse::<u64>() {
                    // httpd: 0 = wait forever; balancerd caps the wait at a day.
                    Ok(0) => {
                        self.ctx.builder.config.server.graceful_timeout =
                            Duration::from_secs(86_400)
                    }
                    Ok(n) => {
                        self.ctx.builder.config.server.graceful_timeout = Duration::from_secs(n)
                    }
                    Err(_) => {
                        self.err(
                            &d.arg_origin(0),
                            format!("GracefulShutdownTimeout takes whole seconds, not '{v}'"),
                        );
                    }
                }
            }
            "pidfile" => {
                if let Some(v) = self.one_arg(d) {
                    self.ctx.builder.config.server.pid_file = Some(PathBuf::from(v));
                }
            }
            _ => return false,
        }
        true
    }

    pub(super) fn listen(&mut self, d: &Dir) {
        let o = d.origin();
        let Some(a) = d.arg(0) else {
            self.err(&o, "Listen needs an address or port");
            return;
        };
        let addr = if let Ok(p) = a.parse::<u16>() {
            Some(std::net::SocketAddr::from(([0, 0, 0, 0], p)))
        } else {
            a.parse::<std::net::SocketAddr>().ok()
        };
        let Some(addr) = addr else {
            self.err(
                &d.arg_origin(0),
                format!("Listen {a}: not a port or IP:port"),
            )
            .hint("write Listen 80, Listen 127.0.0.1:8080 or Listen [::1]:8080");
            return;
        };
        if addr.port() == 0 {
            self.err(&d.arg_origin(0), "Listen needs a port other than 0");
            return;
        }
        let protocol = d.arg(1).map(|p| p.to_ascii_lowercase());
        if let Some(p) = &protocol
            && p != "http"
            && p != "https"
        {
            self.err(
                &d.arg_origin(1),
                format!("Listen protocol '{p}' is not supported (http or https)"),
            );
        }
        let b = &mut self.ctx.builder;
        if let Some(prev) = b.config.listeners.iter().find(|l| l.addr == addr) {
            let prev = prev.origin.clone();
            self.err(
                &o,
                format!(
                    "Cannot define multiple Listeners on the same IP:port ({addr}); first at {prev}"
                ),
            );
            return;
        }
        b.saw_listen = true;
        b.config.listeners.push(Listener {
            addr,
            protocol,
            tls: Vec::new(),
            origin: o,
        });
    }

    pub(super) fn include(&mut self, d: &Dir, optional: bool) {
        let o = d.origin();
        let Some(pat) = d.arg(0) else {
            self.err(&o, format!("{} needs a path", d.name));
            return;
        };
        let base = self.ctx.include_base(&d.file);
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let files = match crate::config::resolve_include(&full) {
            Ok(f) => f,
            Err(e) => {
                if !optional {
                    self.err(&d.arg_origin(0), format!("Include {pat}: {e}"))
                        .hint("use IncludeOptional for a path that may be missing");
                }
                return;
            }
        };
        if files.is_empty() && !optional {
            self.err(
                &d.arg_origin(0),
                format!("Include {pat}: the wildcard matches no file"),
            )
            .hint("use IncludeOptional for a folder that may be empty");
            return;
        }
        if crate::config::has_wildcard(pat) || full.is_dir() {
            let dir = crate::config::wildcard_dir(&full);
            self.ctx.builder.config.watch_dirs.push(dir);
            self.ctx.builder.config.include_patterns.push(full.clone());
        }
        for f in files {
            self.load_included(&f, &o);
        }
    }

    /// Parses an included httpd file in the current section context.
    pub fn include_text(&mut self, path: &Path, text: &str) {
        self.parse_file(path, text);
    }
}

impl HttpdParser<'_> {
    /// `RequestReadTimeout header=… body=… handshake=…` (mod_reqtimeout).
    fn request_read_timeout(&mut self, d: &Dir) {
        use crate::config::params::{ReadStageName, request_read_timeout};
        if d.args.is_empty() {
            self.err(
                &d.origin(),
                "RequestReadTimeout needs at least one stage=timeout",
            );
            return;
        }
        for (i, w) in d.args.iter().enumerate() {
            match request_read_timeout(&w.text) {
                Ok((ReadStageName::Header, stage)) => {
                    self.ctx.builder.config.server.header_read_timeout = stage;
                }
                Ok((ReadStageName::Body, stage)) => {
                    self.ctx.builder.config.server.body_read_timeout = stage;
                }
                Ok((ReadStageName::Handshake, None)) => {}
                Ok((ReadStageName::Handshake, Some(_))) => {
                    self.ctx.diags.warning(
                        &d.arg_origin(i),
                        "RequestReadTimeout handshake=: balancerd always limits a TLS handshake to 10 seconds",
                    );
                }
                Err(p) => {
                    let o = d.arg_origin(i);
                    self.issue(&o, p);
                }
            }
        }
    }
}
