//! mod_rewrite, the part used in front of balancers, compiled: `RewriteCond` and
//! `RewriteRule` with their server variables, back-references and flags. The httpd dialect
//! reads the directives into these; `proxy::rewrite_engine` runs them per request.
//!
//! What is refused (an error at the directive): file tests (`-f`, `-d`, …), `RewriteMap`,
//! per-directory rules (`<Location>`, `<Proxy>`), flags other than `L`, `P`, `PT`, `R[=code]`,
//! `NC`, `OR`, `QSA`, `QSD`, `NE`, `F`, `G`, `E=VAR:VAL` (and the no-op `NV`), a `[P]`
//! whose scheme or host comes from a back-reference, and a rule that would map to a file
//! (a new path without `P`, `PT`, `R`, `F` or `G`).

use super::model::Route;
use regex::Regex;

/// One piece of a test string or substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// `$N`: group N of the rule's pattern.
    RuleRef(usize),
    /// `%N`: group N of the last matched condition's regex.
    CondRef(usize),
    /// `%{NAME}`: a server variable.
    Var(ServerVar),
}

/// The server variables balancerd provides to `RewriteCond` and substitutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVar {
    /// `%{HTTP:Name}` and the `HTTP_*` shorthands: a request header (empty when absent).
    Header(String),
    /// `REQUEST_URI`: the path (no query).
    RequestUri,
    /// `QUERY_STRING`.
    QueryString,
    /// `HTTPS`: `on` or `off`.
    Https,
    /// `REMOTE_ADDR`.
    RemoteAddr,
    /// `REMOTE_PORT`.
    RemotePort,
    /// `REQUEST_METHOD`.
    RequestMethod,
    /// `REQUEST_SCHEME`: `http` or `https`.
    RequestScheme,
    /// `SERVER_NAME`: the Host's name, else `ServerName`.
    ServerName,
    /// `SERVER_PORT`.
    ServerPort,
    /// `SERVER_PROTOCOL`: `HTTP/1.1`.
    ServerProtocol,
    /// `THE_REQUEST`: the request line.
    TheRequest,
}

impl ServerVar {
    /// The variable named `name` (`HTTP_HOST`, `HTTP:X-Forwarded-Proto`, …), if known.
    pub fn by_name(name: &str) -> Option<ServerVar> {
        if let Some(h) = name.strip_prefix("HTTP:") {
            return Some(ServerVar::Header(h.to_ascii_lowercase()));
        }
        Some(match name {
            "HTTP_HOST" => ServerVar::Header("host".into()),
            "HTTP_USER_AGENT" => ServerVar::Header("user-agent".into()),
            "HTTP_REFERER" => ServerVar::Header("referer".into()),
            "HTTP_COOKIE" => ServerVar::Header("cookie".into()),
            "HTTP_ACCEPT" => ServerVar::Header("accept".into()),
            "HTTP_FORWARDED" => ServerVar::Header("forwarded".into()),
            "HTTP_PROXY_CONNECTION" => ServerVar::Header("proxy-connection".into()),
            "REQUEST_URI" => ServerVar::RequestUri,
            "QUERY_STRING" => ServerVar::QueryString,
            "HTTPS" => ServerVar::Https,
            "REMOTE_ADDR" => ServerVar::RemoteAddr,
            "REMOTE_PORT" => ServerVar::RemotePort,
            "REQUEST_METHOD" => ServerVar::RequestMethod,
            "REQUEST_SCHEME" => ServerVar::RequestScheme,
            "SERVER_NAME" => ServerVar::ServerName,
            "SERVER_PORT" => ServerVar::ServerPort,
            "SERVER_PROTOCOL" => ServerVar::ServerProtocol,
            "THE_REQUEST" => ServerVar::TheRequest,
            _ => return None,
        })
    }
}

/// Parses `$N`, `%N` and `%{VAR}` out of a test string or substitution. `\$` and `\%` are
/// literal, as mod_rewrite reads them.
pub fn parse_pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && matches!(b.get(i + 1), Some(b'$') | Some(b'%')) {
            lit.push(b[i + 1] as char);
            i += 2;
            continue;
        }
        if (c == b'$' || c == b'%') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            let n = (b[i + 1] - b'0') as usize;
            out.push(if c == b'$' {
                Piece::RuleRef(n)
            } else {
                Piece::CondRef(n)
            });
            i += 2;
            continue;
        }
        if c == b'%' && b.get(i + 1) == Some(&b'{') {
            let Some(end) = s[i + 2..].find('}') else {
                return Err(format!("'%{{' without a closing '}}' in '{s}'"));
            };
            let name = &s[i + 2..i + 2 + end];
            let var = ServerVar::by_name(name).ok_or_else(|| {
                if name.starts_with("ENV:") || name.starts_with("SSL:") || name.contains(':') {
                    format!("%{{{name}}} is not supported (balancerd provides HTTP:Name and the request's own variables)")
                } else {
                    format!("unknown server variable %{{{name}}}")
                }
            })?;
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            out.push(Piece::Var(var));
            i += 2 + end + 1;
            continue;
        }
        // One UTF-8 character.
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        lit.push(ch);
        i += ch.len_utf8().max(1);
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// What a `RewriteCond` compares its test string with.
#[derive(Debug, Clone)]
pub enum CondPattern {
    /// A regular expression (`NC` compiled in).
    Regex(Regex),
    /// `<`, `>`, `=`, `<=`, `>=` on strings.
    Lexical(CmpOp, String),
    /// `-eq`, `-ne`, `-lt`, `-le`, `-gt`, `-ge` on integers.
    Integer(CmpOp, i64),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Gt,
    Eq,
    Le,
    Ge,
    Ne,
}

/// A compiled `RewriteCond`.
#[derive(Debug, Clone)]
pub struct RewriteCond {
    /// The directive as written (for `balancerd convert`).
    pub source: String,
    pub test: Vec<Piece>,
    pub pattern: CondPattern,
    /// `!pattern`.
    pub negate: bool,
    /// `[OR]`: this condition or the next.
    pub or_next: bool,
}

/// Where a `[P]` substitution goes: the balancer its fixed prefix names, and that prefix
/// (`balancer://name` or `http://host:port`), stripped from the substituted URL to leave the
/// path sent to the balancer.
#[derive(Debug, Clone)]
pub struct ProxyTarget {
    /// Index into `Config::balancers` (an implicit one for a plain URL).
    pub balancer: usize,
    /// The prefix the substitution starts with.
    pub prefix: String,
    /// The route requests of this rule go by (a `ProxyPass` of its own, never matched by
    /// path).
    pub route: Route,
}

/// A compiled `RewriteRule`.
#[derive(Debug, Clone)]
pub struct RewriteRule {
    /// The directive as written (for `balancerd convert`).
    pub source: String,
    /// The conditions written above it.
    pub conds: Vec<RewriteCond>,
    /// The pattern, matched against the %-decoded URL-path.
    pub pattern: Regex,
    /// `!pattern`.
    pub negate: bool,
    /// `None` for `-` (no substitution).
    pub subst: Option<Vec<Piece>>,
    pub flags: RuleFlags,
    /// For `[P]`.
    pub proxy: Option<ProxyTarget>,
    /// Where it was declared.
    pub origin: super::diag::Origin,
}

/// The flags balancerd implements.
#[derive(Debug, Clone, Default)]
pub struct RuleFlags {
    /// `L`.
    pub last: bool,
    /// `P`.
    pub proxy: bool,
    /// `PT`: the new path goes on to `ProxyPass`.
    pub pass_through: bool,
    /// `R[=code]`.
    pub redirect: Option<u16>,
    /// `QSA`.
    pub qsa: bool,
    /// `QSD`.
    pub qsd: bool,
    /// `NE`.
    pub no_escape: bool,
    /// `F`.
    pub forbidden: bool,
    /// `G`.
    pub gone: bool,
    /// `E=VAR:VAL`.
    pub env: Vec<(String, Vec<Piece>)>,
}

/// Parses a rule's `[flags]`; `nocase` is returned apart (it changes the regex).
pub fn parse_rule_flags(s: &str) -> Result<(RuleFlags, bool), String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("flags must be written in brackets: '{s}'"))?;
    let mut f = RuleFlags::default();
    let mut nocase = false;
    for flag in inner.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match (name.to_ascii_uppercase().as_str(), value) {
            ("L" | "LAST", None) => f.last = true,
            ("P" | "PROXY", None) => f.proxy = true,
            ("PT" | "PASSTHROUGH", None) => f.pass_through = true,
            ("R" | "REDIRECT", None) => f.redirect = Some(302),
            ("R" | "REDIRECT", Some(v)) => {
                f.redirect = Some(match v.to_ascii_lowercase().as_str() {
                    "permanent" => 301,
                    "temp" => 302,
                    "seeother" => 303,
                    n => n
                        .parse::<u16>()
                        .ok()
                        .filter(|c| (300..=399).contains(c))
                        .ok_or_else(|| {
                            format!(
                                "R={v}: a redirect status is 300-399 (or permanent, temp, seeother)"
                            )
                        })?,
                })
            }
            ("NC" | "NOCASE", None) => nocase = true,
            ("QSA" | "QSAPPEND", None) => f.qsa = true,
            ("QSD" | "QSDISCARD", None) => f.qsd = true,
            ("NE" | "NOESCAPE", None) => f.no_escape = true,
            ("F" | "FORBIDDEN", None) => f.forbidden = true,
            ("G" | "GONE", None) => f.gone = true,
            ("E" | "ENV", Some(v)) => {
                let (var, val) = v.split_once(':').unwrap_or((v, ""));
                if var.starts_with('!') {
                    return Err(format!("E={v}: unsetting a variable is not supported"));
                }
                f.env.push((var.to_string(), parse_pieces(val)?));
            }
            _ => {
                return Err(format!(
                    "flag [{flag}] is not supported (balancerd implements L, P, PT, R[=code], NC, QSA, QSD, NE, F, G, E=VAR:VAL)"
                ));
            }
        }
    }
    Ok((f, nocase))
}
