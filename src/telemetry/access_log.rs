//! The access log: `CustomLog` with `LogFormat` (httpd's `common` and `combined`, `%D`,
//! `%T`, `%{VAR}e` for the `BALANCER_*` variables, `%{Header}i`, `%{Header}o`, …).
//!
//! Lines go through a bounded channel to a writer thread, so a slow disk never blocks the
//! request path; when the channel is full the line is dropped and counted. The file is
//! reopened on every reload (so logrotate can move it and send SIGHUP).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

/// httpd's predefined formats.
pub const COMMON: &str = "%h %l %u %t \"%r\" %>s %b";
/// The combined format.
pub const COMBINED: &str = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";

/// Lines dropped because the writer fell behind.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    ClientIp,
    Dash,
    Time,
    RequestLine,
    Status,
    BytesClf,
    Bytes,
    Micros,
    Seconds,
    Env(String),
    In(String),
    Out(String),
    Path,
    Query,
    Method,
    Protocol,
    ServerName,
    LocalPort,
    RemotePort,
    /// `%I`: bytes received (head and body), as known when the answer starts.
    BytesIn,
    /// `%O`: bytes sent (head and body), as known when the answer starts.
    BytesOut,
    /// `%S`: `%I` + `%O`.
    BytesBoth,
    /// `%{SSL_PROTOCOL}x`.
    TlsProtocol,
    /// `%{SSL_CIPHER}x`.
    TlsCipher,
}

/// Parses a `LogFormat` string; unknown codes are an error.
fn parse(fmt: &str) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let mut arg = None;
        if it.peek() == Some(&'{') {
            it.next();
            let mut a = String::new();
            for c in it.by_ref() {
                if c == '}' {
                    break;
                }
                a.push(c);
            }
            arg = Some(a);
        }
        // Status and other conditions ("%>s", "%<s") are accepted as the final status.
        while matches!(it.peek(), Some('>') | Some('<')) {
            it.next();
        }
        let Some(code) = it.next() else {
            return Err("a log format may not end with '%'".into());
        };
        if !lit.is_empty() {
            out.push(Part::Lit(std::mem::take(&mut lit)));
        }
        out.push(match (code, arg) {
            ('%', _) => Part::Lit("%".into()),
            ('h', _) | ('a', _) => Part::ClientIp,
            ('l', _) | ('u', _) => Part::Dash,
            ('t', None) => Part::Time,
            ('r', _) => Part::RequestLine,
            ('s', _) => Part::Status,
            ('b', _) => Part::BytesClf,
            ('B', _) => Part::Bytes,
            ('D', _) => Part::Micros,
            ('T', _) => Part::Seconds,
            ('e', Some(v)) => Part::Env(v),
            ('i', Some(h)) => Part::In(h.to_ascii_lowercase()),
            ('o', Some(h)) => Part::Out(h.to_ascii_lowercase()),
            ('U', _) => Part::Path,
            ('q', _) => Part::Query,
            ('m', _) => Part::Method,
            ('H', _) => Part::Protocol,
            ('v', _) | ('V', _) => Part::ServerName,
            // The canonical port is the one the request arrived on (balancerd has no other).
            ('p', None) => Part::LocalPort,
            ('p', Some(k)) if k == "canonical" || k == "local" => Part::LocalPort,
            ('p', Some(k)) if k == "remote" => Part::RemotePort,
            ('I', None) => Part::BytesIn,
            ('O', None) => Part::BytesOut,
            ('S', None) => Part::BytesBoth,
            ('x', Some(v)) if v == "SSL_PROTOCOL" => Part::TlsProtocol,
            ('x', Some(v)) if v == "SSL_CIPHER" => Part::TlsCipher,
            ('x', Some(v)) => {
                return Err(format!(
                    "log format code %{{{v}}}x is not supported (balancerd logs SSL_PROTOCOL and SSL_CIPHER)"
                ));
            }
            (c, _) => return Err(format!("log format code %{c} is not supported")),
        });
    }
    if !lit.is_empty() {
        out.push(Part::Lit(lit));
    }
    Ok(out)
}

/// A `LogFormat`, compiled once when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    source: String,
    parts: Vec<Part>,
}

impl LogFormat {
    /// Compiles a format string; an unknown code is an error that names it.
    pub fn parse(fmt: &str) -> Result<LogFormat, String> {
        Ok(LogFormat {
            source: fmt.to_string(),
            parts: parse(fmt)?,
        })
    }

    /// True when the format logs `%I`, `%O` or `%S`, which balancerd counts when the answer
    /// starts (declared lengths), where httpd counts after the body.
    pub fn counts_bytes(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::BytesIn | Part::BytesOut | Part::BytesBoth))
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// An open access log (a clone writes to the same file).
#[derive(Debug, Clone)]
pub struct AccessLog {
    format: std::sync::Arc<LogFormat>,
    tx: SyncSender<String>,
}

/// One request, as the log sees it.
pub struct Entry<'a> {
    /// The client's address.
    pub client: std::net::IpAddr,
    /// The client's port (`%{remote}p`).
    pub client_port: u16,
    /// The port the request arrived on (`%p`, `%{local}p`, `%{canonical}p`).
    pub local_port: u16,
    /// The request head.
    pub req: &'a http::request::Parts,
    /// The response status.
    pub status: u16,
    /// Response headers.
    pub resp_headers: &'a http::HeaderMap,
    /// The BALANCER_* variables, when a balancer handled the request.
    pub vars: Option<&'a dyn LogVars>,
    /// Time taken.
    pub took: Duration,
    /// ServerName.
    pub server_name: &'a str,
    /// The TLS connection's protocol and cipher, OpenSSL's names (`%{SSL_PROTOCOL}x`,
    /// `%{SSL_CIPHER}x`); `None` on plain connections.
    pub tls: Option<(&'static str, &'static str)>,
}

fn clf_time(t: SystemTime) -> String {
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss) = crate::util::clock::utc_parts(t);
    format!(
        "[{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} +0000]",
        MON[(m - 1) as usize]
    )
}

impl AccessLog {
    /// The compiled format.
    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// Opens `path` (appending) with `format`, starting the writer thread.
    pub fn open(path: &Path, format: std::sync::Arc<LogFormat>) -> Result<AccessLog, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("CustomLog {}: {e}", path.display()))?;
        let (tx, rx) = sync_channel::<String>(16_384);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::with_capacity(64 * 1024, file);
                loop {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(line) => {
                            let _ = w.write_all(line.as_bytes());
                            while let Ok(l) = rx.try_recv() {
                                let _ = w.write_all(l.as_bytes());
                            }
                            let _ = w.flush();
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            let _ = w.flush();
                        }
                        Err(_) => break,
                    }
                }
                let _ = w.flush();
            })
            .map_err(|e| e.to_string())?;
        Ok(AccessLog { format, tx })
    }

    /// Formats and queues one line (never blocks).
    pub fn log(&self, e: &Entry<'_>) {
        let mut o = String::with_capacity(160);
        for p in &self.format.parts {
            match p {
                Part::Lit(s) => o.push_str(s),
                Part::ClientIp => {
                    let _ = write!(o, "{}", e.client);
                }
                Part::Dash => o.push('-'),
                Part::Time => o.push_str(&clf_time(SystemTime::now())),
                Part::RequestLine => {
                    let _ = write!(o, "{} {} {:?}", e.req.method, e.req.uri, e.req.version);
                }
                Part::Status => {
                    let _ = write!(o, "{}", e.status);
                }
                Part::BytesClf | Part::Bytes => {
                    match e
                        .resp_headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                    {
                        Some(n) if !(n == "0" && matches!(p, Part::BytesClf)) => o.push_str(n),
                        _ => o.push(if matches!(p, Part::BytesClf) {
                            '-'
                        } else {
                            '0'
                        }),
                    }
                }
                Part::Micros => {
                    let _ = write!(o, "{}", e.took.as_micros());
                }
                Part::Seconds => {
                    let _ = write!(o, "{}", e.took.as_secs());
                }
                Part::Env(v) => o.push_str(e.vars.and_then(|x| x.get(v)).unwrap_or("-")),
                Part::In(h) => o.push_str(
                    e.req
                        .headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-"),
                ),
                Part::Out(h) => o.push_str(
                    e.resp_headers
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-"),
                ),
                Part::Path => o.push_str(e.req.uri.path()),
                Part::Query => {
                    if let Some(q) = e.req.uri.query() {
                        o.push('?');
                        o.push_str(q);
                    }
                }
                Part::Method => o.push_str(e.req.method.as_str()),
                Part::Protocol => {
                    let _ = write!(o, "{:?}", e.req.version);
                }
                Part::ServerName => o.push_str(e.server_name),
                Part::LocalPort => {
                    let _ = write!(o, "{}", e.local_port);
                }
                Part::RemotePort => {
                    let _ = write!(o, "{}", e.client_port);
                }
                Part::BytesIn => {
                    let _ = write!(o, "{}", bytes_in(e));
                }
                Part::BytesOut => {
                    let _ = write!(o, "{}", bytes_out(e));
                }
                Part::BytesBoth => {
                    let _ = write!(o, "{}", bytes_in(e) + bytes_out(e));
                }
                Part::TlsProtocol => o.push_str(e.tls.map_or("-", |t| t.0)),
                Part::TlsCipher => o.push_str(e.tls.map_or("-", |t| t.1)),
            }
        }
        o.push('\n');
        if let Err(TrySendError::Full(_)) = self.tx.try_send(o) {
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Bytes of a header block as written on the wire (`Name: value\r\n` each, and the blank
/// line).
fn fields_len(h: &http::HeaderMap) -> u64 {
    h.iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum::<u64>()
        + 2
}

/// `Content-Length` of a header block, 0 when absent.
fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `%I`: the request line, header block and declared body length. The line is written
/// when the answer starts, so a chunked body is not counted (httpd logs after the body).
fn bytes_in(e: &Entry<'_>) -> u64 {
    let line = e.req.method.as_str().len()
        + e.req.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    line as u64 + fields_len(&e.req.headers) + content_length(&e.req.headers)
}

/// `%O`: the status line, header block and declared body length (see [`bytes_in`]).
fn bytes_out(e: &Entry<'_>) -> u64 {
    // "HTTP/1.1 200 OK\r\n" with the reason phrase of the status.
    let reason = http::StatusCode::from_u16(e.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or(0, str::len);
    (15 + reason) as u64 + fields_len(e.resp_headers) + content_length(e.resp_headers)
}

/// The request's environment variables as `%{VAR}e` reads them (the `BALANCER_*` variables,
/// which the proxy layer owns and implements this for).
pub trait LogVars {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<&str>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn formats() {
        assert!(parse(COMBINED).is_ok());
        assert!(parse("%h %{BALANCER_WORKER_ROUTE}e %D %{X-Y}o").is_ok());
        assert!(parse("%Z").is_err());
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(1_763_769_600)),
            "[22/Nov/2025:00:00:00 +0000]"
        );
    }
}
