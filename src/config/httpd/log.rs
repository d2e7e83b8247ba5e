//! Logging directives: `LogFormat` (compiled here), `CustomLog`, `LogLevel`.

use super::{Dir, HttpdParser};

use crate::telemetry::access_log::LogFormat;
use std::path::Path;

impl HttpdParser<'_> {
    /// The log directives; false when `d` is not one of them.
    pub(super) fn log_directive(&mut self, d: &Dir) -> bool {
        let o = d.origin();
        match d.lower.as_str() {
            "logformat" => {
                let (Some(fmt), nick) = (d.arg(0), d.arg(1)) else {
                    self.err(&o, "LogFormat takes a format and an optional nickname");
                    return true;
                };
                let compiled = match LogFormat::parse(fmt) {
                    Ok(f) => std::sync::Arc::new(f),
                    Err(e) => {
                        self.err(&d.arg_origin(0), e);
                        // Reported once, here: a CustomLog naming it says nothing more.
                        self.ctx
                            .rejected_log_formats
                            .insert(nick.unwrap_or("default").to_string());
                        return true;
                    }
                };
                self.ctx
                    .log_formats
                    .insert(nick.unwrap_or("default").to_string(), compiled);
            }
            "customlog" | "transferlog" => {
                // TransferLog: the last LogFormat without a nickname, else httpd's CLF.
                let default_fmt;
                let f = if d.lower == "transferlog" {
                    if d.args.len() != 1 {
                        self.err(&o, "TransferLog takes one file");
                        return true;
                    }
                    default_fmt = if self.ctx.log_formats.contains_key("default") {
                        "default"
                    } else {
                        "common"
                    };
                    Some(default_fmt)
                } else {
                    d.arg(1)
                };
                let (Some(path), Some(f)) = (d.arg(0), f) else {
                    self.err(
                        &o,
                        "CustomLog takes a file and a format (or a LogFormat nickname)",
                    );
                    return true;
                };
                if path.starts_with('|') {
                    self.err(
                        &d.arg_origin(0),
                        "piped logs are not supported; log to a file",
                    )
                    .hint("use logrotate with SIGHUP (balancerd reopens the log on reload)");
                    return true;
                }
                // A nickname defined above, httpd's predefined `common`/`combined`, or a
                // format written in place.
                if self.ctx.rejected_log_formats.contains(f)
                    && !self.ctx.log_formats.contains_key(f)
                {
                    return true;
                }
                let fmt = match self.ctx.log_formats.get(f) {
                    Some(x) => Ok(x.clone()),
                    None => match f {
                        "common" => LogFormat::parse(crate::telemetry::access_log::COMMON),
                        "combined" => LogFormat::parse(crate::telemetry::access_log::COMBINED),
                        other if other.contains('%') => LogFormat::parse(other),
                        other => {
                            self.err(
                                &d.arg_origin(1),
                                format!("no LogFormat named '{other}' is defined above this line"),
                            );
                            return true;
                        }
                    }
                    .map(std::sync::Arc::new),
                };
                let fmt = match fmt {
                    Ok(f) => f,
                    Err(e) => {
                        self.err(&d.arg_origin(1), e);
                        return true;
                    }
                };
                if let Some(cond) = d.arg(2).filter(|_| d.lower == "customlog") {
                    self.err(
                        &d.arg_origin(2),
                        format!("CustomLog condition '{cond}': httpd would log only the requests it selects; balancerd logs every request"),
                    )
                    .hint("remove the condition (every request is logged)");
                    return true;
                }
                if fmt.counts_bytes() {
                    self.ctx
                        .diags
                        .warning(
                            &d.arg_origin(1),
                            "%I, %O and %S are counted when the answer starts: heads and declared Content-Lengths; a chunked body is not counted (httpd counts after the body)",
                        )
                        .hint("log %B for the member's declared body size");
                }
                let base = self.ctx.include_base(&d.file);
                let p = Path::new(path);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                };
                let h = self.host;
                self.ctx.builder.host_mut(h).access_logs.push((full, fmt));
            }
            "loglevel" => {
                let v: Vec<&str> = d.args.iter().map(|w| w.text.as_str()).collect();
                self.ctx.builder.config.server.log_level = Some(v.join(" "));
            }
            _ => return false,
        }
        true
    }
}
