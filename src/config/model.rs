//! The validated, typed config model that both dialects compile into.
//!
//! Nothing after `config/` knows which dialect a rule came from. Every item keeps the
//! [`Origin`] it was declared at so that lints, the summary and runtime logs can point
//! an admin at the exact line.

use super::diag::Origin;
pub use crate::util::deadline::ReadStage;
use ipnet::IpNet;
use regex::Regex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A whole config: what `balancerd check` validates and `balancerd run` serves.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// Addresses to accept connections on, in config order.
    pub listeners: Vec<Listener>,
    /// Server-wide settings (`Timeout`, `ProxyPreserveHost`, limits, ...).
    pub server: ServerSettings,
    /// Every balancer, in order of first definition.
    pub balancers: Vec<Balancer>,
    /// The main server's rules (routes, headers, locations, reverse maps, front TLS).
    pub main: HostRules,
    /// `<VirtualHost>` sections; the main server's routes match first in each.
    pub vhosts: Vec<VirtualHost>,
    /// TLS to `https://` members.
    pub upstream_tls: UpstreamTls,
    /// `ProxyHCTemplate` definitions, by name (applied to the members that name them when
    /// the config is finished).
    pub hc_templates: Vec<(String, Vec<(String, String)>)>,
    /// `ProxyHCExpr` definitions, by name, compiled (resolved into the members that name them
    /// when the config is finished).
    pub hc_exprs: Vec<(String, Arc<crate::config::hcexpr::HcExpr>)>,
    /// Access rules of non-balancer `<Proxy>` sections (apply to every proxied request).
    pub proxy_access: Option<AccessRules>,
    /// Every file read to build this config, for reload watching.
    pub sources: Vec<PathBuf>,
    /// Folders whose wildcard includes built this config (a new file there matters).
    pub watch_dirs: Vec<PathBuf>,
    /// The wildcard or folder `Include`s themselves (absolute or relative as resolved): a
    /// change to a file they match triggers a reload; nothing else in their folders does.
    pub include_patterns: Vec<PathBuf>,
    /// `SiteRedirect` rules (balancerd's own; Workspace smart failover), in config order.
    pub site_redirects: Vec<SiteRedirect>,
}

/// `BackupSiteRedirect URL [status=307] [marker=NAME]` (balancerd's own directive; TOML
/// `backup_site`): when no member of the balancer can serve (every `lbset` tier in error,
/// disabled, stopped or failing its health check), the request is redirected to the same
/// path and query on the backup site instead of 503. The redirect adds `NAME=1` to the
/// query; a request that already carries `NAME` (it came from the other site) gets 503, so
/// two sites that are both down never bounce a client between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSite {
    /// The backup site's base URL (`https://rws.dc2.example.com` or with a path prefix), no
    /// trailing slash.
    pub url: String,
    /// 301, 302, 303, 307 (the default) or 308.
    pub status: u16,
    /// The query parameter that marks a redirected request (default `bd-failover`).
    pub marker: String,
    /// Where it was written.
    pub origin: Origin,
}

impl SiteRedirect {
    /// The entry as written: `host` or `host/path`.
    pub fn entry(&self) -> String {
        if self.entry_path == "/" {
            self.entry_host.clone()
        } else {
            format!("{}{}", self.entry_host, self.entry_path)
        }
    }
}

/// `SiteRedirect ENTRY-HOST[/PATH] LOCAL-URL BACKUP-HOST [param=site-1] [status=302]`
/// (balancerd's own directive; TOML `[[site_redirect]]`): Workspace's smart failover. A
/// request for the common entry URL (its `Host` and a path under `PATH`) is redirected to
/// the local site's URL with the same path and query, plus `site-1=BACKUP-HOST` (not added
/// again when the query has a `site-1` already); the browser app then reconnects to the
/// backup host when it loses its CometD connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRedirect {
    /// The common entry host, lower-case, without a port.
    pub entry_host: String,
    /// The entry path prefix (whole segments; `/` for everything).
    pub entry_path: String,
    /// The local site's base URL (no trailing slash).
    pub local: String,
    /// The backup site's host, the parameter's value.
    pub backup_host: String,
    /// The parameter name (default `site-1`).
    pub param: String,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status: u16,
    /// Where it was written.
    pub origin: Origin,
}

impl Config {
    /// Finds a balancer by its (lower-cased) name.
    pub fn balancer(&self, name: &str) -> Option<&Balancer> {
        self.balancers.iter().find(|b| b.name == name)
    }

    /// The index of a balancer by name.
    pub fn balancer_index(&self, name: &str) -> Option<usize> {
        self.balancers.iter().position(|b| b.name == name)
    }

    /// The routes in the order they match for the main server.
    pub fn main_routes(&self) -> impl Iterator<Item = &Route> {
        self.main.routes.iter()
    }
}

/// One `Listen` address.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `ip:port` (a bare port listens on every address).
    pub addr: std::net::SocketAddr,
    /// `http` or `https` (the optional protocol argument).
    pub protocol: Option<String>,
    /// Certificates served on this listener (TOML dialect; httpd uses `<VirtualHost>`s).
    pub tls: Vec<FrontTls>,
    /// Where it was declared.
    pub origin: Origin,
}

/// mod_reqtimeout's default head stage: `header=20-40,MinRate=500`.
pub const REQTIMEOUT_HEADER: ReadStage = ReadStage {
    initial: Duration::from_secs(20),
    max: Some(Duration::from_secs(40)),
    min_rate: 500,
};

/// mod_reqtimeout's default body stage: `body=20,MinRate=500`.
pub const REQTIMEOUT_BODY: ReadStage = ReadStage {
    initial: Duration::from_secs(20),
    max: None,
    min_rate: 500,
};

/// `AllowEncodedSlashes`: what a `%2F` in a request path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodedSlashes {
    /// 404 (httpd's default).
    #[default]
    Off,
    /// Decoded to `/` like any escape: it separates segments.
    On,
    /// Kept as the three characters `%2F`: not a separator for matching, and forwarded as
    /// `%2F`.
    NoDecode,
}

/// `ProxyVia`: what balancerd does with `Via` header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyVia {
    /// Client and member `Via` fields pass unchanged; none added (httpd's default).
    #[default]
    Off,
    /// `1.1 servername[:port]` is merged into the request's `Via` and added to the response.
    On,
    /// As `On`, with a `(balancerd/version)` comment.
    Full,
    /// The client's `Via` is removed from the request; none added.
    Block,
}

/// Server-wide settings with httpd's defaults.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `ServerName` (used for X-Forwarded-Server and the status page).
    pub server_name: Option<String>,
    /// `ServerRoot`: relative `Include`s resolve against it.
    pub server_root: Option<PathBuf>,
    /// `Timeout` (default 60 s).
    pub timeout: Duration,
    /// `ProxyTimeout` (default: `Timeout`).
    pub proxy_timeout: Option<Duration>,
    /// `KeepAlive` (default On).
    pub keepalive: bool,
    /// `KeepAliveTimeout` (default 5 s).
    pub keepalive_timeout: Duration,
    /// `MaxKeepAliveRequests` (default 100; 0 = unlimited).
    pub max_keepalive_requests: u32,
    /// `ProxyPreserveHost` (default Off).
    pub preserve_host: bool,
    /// `ProxyAddHeaders` (default On).
    pub add_headers: bool,
    /// `ProxyVia` (default Off).
    pub proxy_via: ProxyVia,
    /// `LimitRequestLine` (default 8190).
    pub limit_request_line: u32,
    /// `LimitRequestFieldSize` (default 8190).
    pub limit_request_field_size: u32,
    /// `LimitRequestFields` (default 100).
    pub limit_request_fields: u32,
    /// `LimitRequestBody` (httpd's default since 2.4.54: 1 GiB; 0 = unlimited). Applied to
    /// proxied request bodies too (httpd applies it only to bodies it reads itself).
    pub limit_request_body: u64,
    /// `PidFile`.
    pub pid_file: Option<PathBuf>,
    /// `LogLevel` (as written).
    pub log_level: Option<String>,
    /// `ProxyStatus` (adds balancer lines to `?auto`).
    pub proxy_status: bool,
    /// `GracefulShutdownTimeout`: how long a stop waits for in-flight requests (default 30 s).
    pub graceful_timeout: Duration,
    /// `ShutdownDelay` (balancerd's own; `shutdown_delay` in TOML): after SIGTERM, how long
    /// balancerd goes on accepting and serving with its readiness handler answering 503,
    /// before it stops accepting and drains (default 0), so a load balancer's or
    /// Kubernetes' probe moves traffic away first.
    pub shutdown_delay: Duration,
    /// `TraceEnable` (default On): Off answers TRACE with 405 instead of proxying it.
    pub trace_enable: bool,
    /// `AllowEncodedSlashes` (default Off: a `%2F` in the path is answered 404).
    pub allow_encoded_slashes: EncodedSlashes,
    /// `UseCanonicalName On`: self-referential URLs (`ProxyPassReverse`, `Redirect` and
    /// rewrite targets that are paths) name the `ServerName`, not the client's `Host`.
    pub use_canonical_name: bool,
    /// `RequestReadTimeout header=`: the request head's deadline once its first byte
    /// arrived (mod_reqtimeout; `None`: `Timeout` for the whole head).
    pub header_read_timeout: Option<ReadStage>,
    /// `RequestReadTimeout body=`: the request body's deadline from its first read
    /// (`None`: only `Timeout` between reads).
    pub body_read_timeout: Option<ReadStage>,
    /// `UnderscoresInHeaders On` (a balancerd directive; `underscores_in_headers` in TOML):
    /// request fields whose names contain `_` reach members. Off by default (nginx's
    /// default; httpd passes them): CGI-style stacks read `X_Forwarded_For` as
    /// `X-Forwarded-For`.
    pub underscores_in_headers: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            server_name: None,
            server_root: None,
            timeout: Duration::from_secs(60),
            proxy_timeout: None,
            keepalive: true,
            keepalive_timeout: Duration::from_secs(5),
            max_keepalive_requests: 100,
            preserve_host: false,
            add_headers: true,
            proxy_via: ProxyVia::Off,
            limit_request_line: 8190,
            limit_request_field_size: 8190,
            limit_request_fields: 100,
            limit_request_body: 1 << 30,
            pid_file: None,
            log_level: None,
            proxy_status: false,
            graceful_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            trace_enable: true,
            underscores_in_headers: false,
            use_canonical_name: false,
            allow_encoded_slashes: EncodedSlashes::Off,
            header_read_timeout: Some(REQTIMEOUT_HEADER),
            body_read_timeout: Some(REQTIMEOUT_BODY),
        }
    }
}

impl ServerSettings {
    /// The backend timeout in effect when a member sets none: `ProxyTimeout`, else `Timeout`.
    pub fn effective_proxy_timeout(&self) -> Duration {
        self.proxy_timeout.unwrap_or(self.timeout)
    }
}

/// Rules that belong to one server (the main server or a `<VirtualHost>`).
#[derive(Debug, Default, Clone)]
pub struct HostRules {
    /// `ProxyPass`/`ProxyPassMatch` in config order.
    pub routes: Vec<Route>,
    /// `Header` rules at server level.
    pub response_headers: Vec<HeaderRule>,
    /// `RequestHeader` rules at server level.
    pub request_headers: Vec<HeaderRule>,
    /// `<Location>`/`<LocationMatch>` sections (handlers and access rules).
    pub locations: Vec<LocationSection>,
    /// `ProxyPassReverse` rules at server level.
    pub reverse: ReverseRules,
    /// Front-end TLS of this server (`SSLEngine on` + certificates).
    pub tls: Option<FrontTls>,
    /// `SetEnv proxy-*` at server level.
    pub proxy_switches: ProxySwitches,
    /// `Redirect`/`RedirectMatch` at server level, in config order.
    pub redirects: Vec<RedirectRule>,
    /// mod_rewrite of this server.
    pub rewrite: RewriteConfig,
    /// `ErrorDocument` of this server, in config order.
    pub error_documents: Vec<(u16, ErrorDocument)>,
    /// `CustomLog`/`TransferLog` of this server: each file with its format. A virtual host
    /// with none logs to the main server's.
    pub access_logs: Vec<(PathBuf, Arc<crate::telemetry::access_log::LogFormat>)>,
}

/// A `<VirtualHost>` section.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// The addresses the section names (`*:443`, `10.0.0.1:80`).
    pub addrs: Vec<String>,
    /// `ServerName` inside the section.
    pub server_name: Option<String>,
    /// `ServerAlias` names.
    pub aliases: Vec<String>,
    /// The section's own rules (the main server's routes are matched before these).
    pub rules: HostRules,
    /// Where the section opens.
    pub origin: Origin,
}

/// Front-end TLS settings for one server name.
#[derive(Debug, Clone, Default)]
pub struct FrontTls {
    /// `SSLEngine on`.
    pub engine: bool,
    /// `SSLCertificateFile`.
    pub cert_file: Option<PathBuf>,
    /// `SSLCertificateKeyFile` (defaults to the certificate file).
    pub key_file: Option<PathBuf>,
    /// `SSLCertificateChainFile`.
    pub chain_file: Option<PathBuf>,
    /// `SSLProtocol`, as written.
    pub protocols: Option<String>,
    /// `SSLCipherSuite`, as written.
    pub ciphers: Option<String>,
    /// SNI names this certificate answers for (TOML; httpd uses ServerName/ServerAlias).
    pub sni_names: Vec<String>,
    /// `SSLVerifyClient`: `Some(true)` require, `Some(false)` optional, `None` none.
    pub verify_client: Option<bool>,
    /// `SSLCACertificateFile`: the CAs client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Where `SSLEngine`/the certificate was declared.
    pub origin: Option<Origin>,
}

/// TLS to `https://` members.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// `SSLProxyEngine on`.
    pub engine: bool,
    /// Where `SSLProxyEngine` was set.
    pub engine_origin: Option<Origin>,
    /// `SSLProxyVerify require` (true) or `none` (false). httpd default: none.
    pub verify: bool,
    /// True when the config said anything about verification.
    pub verify_explicit: bool,
    /// `SSLProxyCACertificateFile` (else the system roots).
    pub ca_file: Option<PathBuf>,
    /// `SSLProxyCheckPeerName` (default on, effective only with verification).
    pub check_peer_name: bool,
    /// `SSLProxyCheckPeerCN` (default on).
    pub check_peer_cn: bool,
    /// `SSLProxyCheckPeerExpire` (default on).
    pub check_peer_expire: bool,
    /// `SSLProxyMachineCertificateFile` (certificate and key in one PEM).
    pub client_cert_file: Option<PathBuf>,
    /// A separate client key file (TOML dialect).
    pub client_key_file: Option<PathBuf>,
    /// `SSLProxyProtocol`, as written.
    pub protocols: Option<String>,
}

/// A `balancer://NAME` with its members and settings.
#[derive(Debug, Clone)]
pub struct Balancer {
    /// Lower-cased name (httpd lower-cases balancer names).
    pub name: String,
    /// Members in config order.
    pub members: Vec<Member>,
    /// Balancer parameters (`ProxySet` or `ProxyPass` key=value).
    pub params: BalancerParams,
    /// `Header` rules inside the `<Proxy>` section.
    pub response_headers: Vec<HeaderRule>,
    /// `RequestHeader` rules inside the `<Proxy>` section.
    pub request_headers: Vec<HeaderRule>,
    /// `ProxyPassReverse*` inside the `<Proxy>` section (scoped to this balancer).
    pub reverse: ReverseRules,
    /// Access rules inside the `<Proxy>` section.
    pub access: Option<AccessRules>,
    /// `SetEnv proxy-*` inside the `<Proxy>` section.
    pub proxy_switches: ProxySwitches,
    /// Every place a `<Proxy>` section (or the first member) defined it.
    pub definitions: Vec<Origin>,
    /// True for the one-member balancer made for a `ProxyPass` to a plain URL.
    pub implicit: bool,
    /// Created by a `ProxyPass` naming it before any `<Proxy>` section or `BalancerMember`
    /// defined it (the section that comes later is its first definition, not a second one).
    pub referenced_only: bool,
    /// `BackupSiteRedirect` inside the `<Proxy>` section.
    pub backup_site: Option<BackupSite>,
}

impl Balancer {
    /// A new, empty balancer.
    pub fn new(name: String, origin: Origin) -> Self {
        Balancer {
            name,
            members: Vec::new(),
            params: BalancerParams::default(),
            response_headers: Vec::new(),
            request_headers: Vec::new(),
            reverse: ReverseRules::default(),
            access: None,
            proxy_switches: ProxySwitches::default(),
            definitions: vec![origin],
            implicit: false,
            referenced_only: false,
            backup_site: None,
        }
    }

    /// `maxattempts` in effect: as set, else members−1 with ≥2 members, else 0 (httpd).
    pub fn max_attempts(&self) -> u32 {
        self.params
            .max_attempts
            .unwrap_or(if self.members.len() >= 2 {
                self.members.len() as u32 - 1
            } else {
                0
            })
    }
}

/// A `BalancerMember`.
#[derive(Debug, Clone)]
pub struct Member {
    /// The normalised member URL.
    pub url: MemberUrl,
    /// Member parameters.
    pub params: MemberParams,
    /// Where it was declared.
    pub origin: Origin,
}

/// A member URL, normalised as httpd does (scheme and host lower-cased, default port dropped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberUrl {
    /// `http` or `https` (`ws`/`wss` are mapped to these with upgrade=websocket).
    pub scheme: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// True when the port was written (httpd keeps it in Host unless it is 80).
    pub port_explicit: bool,
    /// Path prefix ("" when none).
    pub path: String,
}

impl MemberUrl {
    /// True for `ajp://` members (AJP13, not HTTP).
    pub fn is_ajp(&self) -> bool {
        self.scheme == "ajp"
    }

    /// True for `https` members.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header httpd sends: the port only when explicit and not 80.
    pub fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port_explicit && self.port != 80 {
            format!("{h}:{}", self.port)
        } else {
            h
        }
    }
}

impl std::fmt::Display for MemberUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            write!(f, "{}://{}{}", self.scheme, h, self.path)
        } else {
            write!(f, "{}://{}:{}{}", self.scheme, h, self.port, self.path)
        }
    }
}

/// Member status flags (httpd's `status=` letters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusFlags(pub u16);

impl StatusFlags {
    /// D: disabled, takes no new requests.
    pub const DISABLED: u16 = 1 << 0;
    /// S: stopped by the admin, never retried.
    pub const STOPPED: u16 = 1 << 1;
    /// I: ignore errors (never put in error state).
    pub const IGNORE_ERRORS: u16 = 1 << 2;
    /// H: hot standby, used only when no other member is usable.
    pub const HOT_STANDBY: u16 = 1 << 3;
    /// R: hot spare, replaces an unusable member one for one.
    pub const HOT_SPARE: u16 = 1 << 4;
    /// E: in error (set by config or by a failure).
    pub const IN_ERROR: u16 = 1 << 5;
    /// N: draining, takes no new sessions.
    pub const DRAIN: u16 = 1 << 6;
    /// C: failed its health check.
    pub const HC_FAILED: u16 = 1 << 7;
    /// O/G/U/F: httpd-internal letters, accepted and kept.
    pub const INTERNAL: u16 = 1 << 8;

    /// The letters in httpd's order.
    pub const LETTERS: [(char, u16); 12] = [
        ('D', Self::DISABLED),
        ('S', Self::STOPPED),
        ('I', Self::IGNORE_ERRORS),
        ('H', Self::HOT_STANDBY),
        ('R', Self::HOT_SPARE),
        ('E', Self::IN_ERROR),
        ('N', Self::DRAIN),
        ('C', Self::HC_FAILED),
        ('O', Self::INTERNAL),
        ('G', Self::INTERNAL),
        ('U', Self::INTERNAL),
        ('F', Self::INTERNAL),
    ];

    /// True when every bit of `f` is set.
    pub fn has(self, f: u16) -> bool {
        self.0 & f == f
    }

    /// The set letters, e.g. `"H"` or `"DE"`; `"-"` when none.
    pub fn letters(self) -> String {
        let s: String = Self::LETTERS[..8]
            .iter()
            .filter(|(_, b)| self.0 & b != 0)
            .map(|(c, _)| *c)
            .collect();
        if s.is_empty() { "-".into() } else { s }
    }
}

/// Health-check settings (mod_proxy_hcheck).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `hcmethod` (None, TCP, OPTIONS, HEAD, GET, and the `11` forms).
    pub method: String,
    /// `hcuri`.
    pub uri: Option<String>,
    /// `hcinterval` (default 30 s).
    pub interval: Duration,
    /// `hcpasses` (default 1).
    pub passes: u32,
    /// `hcfails` (default 1).
    pub fails: u32,
    /// `hcexpr` (a `ProxyHCExpr` name).
    pub expr: Option<String>,
    /// The compiled `ProxyHCExpr` that `expr` names (set when the config is finished).
    pub check: Option<Arc<crate::config::hcexpr::HcExpr>>,
    /// `hctemplate` (a `ProxyHCTemplate` name).
    pub template: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            method: "None".into(),
            uri: None,
            interval: Duration::from_secs(30),
            passes: 1,
            fails: 1,
            expr: None,
            check: None,
            template: None,
        }
    }
}

/// Member (worker) parameters with httpd's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberParams {
    /// `loadfactor` ×100 (1–100 with two decimals; default 1 → 100).
    pub loadfactor: u32,
    /// `lbset` 0–99.
    pub lbset: u8,
    /// `route` (≤63 chars).
    pub route: String,
    /// `redirect` (≤63 chars).
    pub redirect: String,
    /// `status` flags.
    pub status: StatusFlags,
    /// `retry` (default 60 s; 0 = no back-off).
    pub retry: Duration,
    /// `timeout`: response-head wait (default ProxyTimeout → Timeout).
    pub timeout: Option<Duration>,
    /// `connectiontimeout` (default: timeout chain).
    pub connection_timeout: Option<Duration>,
    /// `acquire`: wait for a pooled connection.
    pub acquire: Option<Duration>,
    /// `ping`: 100-continue probe wait.
    pub ping: Option<Duration>,
    /// `disablereuse=On`: `Connection: close`, no pooling.
    pub disable_reuse: bool,
    /// `keepalive=On`: TCP SO_KEEPALIVE.
    pub tcp_keepalive: bool,
    /// `max` connections (pool cap).
    pub max: Option<u32>,
    /// `smax`.
    pub smax: Option<u32>,
    /// `min`.
    pub min: Option<u32>,
    /// `ttl`: idle lifetime of pooled connections.
    pub ttl: Option<Duration>,
    /// `flushpackets` (AJP only; kept for completeness).
    pub flushpackets: Option<String>,
    /// `flushwait` (AJP only).
    pub flushwait: Option<Duration>,
    /// `iobuffersize`.
    pub iobuffersize: Option<u32>,
    /// `receivebuffersize`.
    pub receivebuffersize: Option<u32>,
    /// `upgrade` protocol name (e.g. `websocket`).
    pub upgrade: Option<String>,
    /// `secret` (AJP only).
    pub secret: Option<String>,
    /// `addressttl` seconds (-1 forever).
    pub addressttl: Option<i64>,
    /// Health check settings.
    pub hc: HealthCheck,
}

impl Default for MemberParams {
    fn default() -> Self {
        MemberParams {
            loadfactor: 100,
            lbset: 0,
            route: String::new(),
            redirect: String::new(),
            status: StatusFlags::default(),
            retry: Duration::from_secs(60),
            timeout: None,
            connection_timeout: None,
            acquire: None,
            ping: None,
            disable_reuse: false,
            tcp_keepalive: false,
            max: None,
            smax: None,
            min: None,
            ttl: None,
            flushpackets: None,
            flushwait: None,
            iobuffersize: None,
            receivebuffersize: None,
            upgrade: None,
            secret: None,
            addressttl: None,
            hc: HealthCheck::default(),
        }
    }
}

/// `stickysession=COOKIE|URLPARAM` (or one name for both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickySession {
    /// The cookie name (shared: each request that carries a session names it in
    /// `BALANCER_SESSION_STICKY` without copying it).
    pub cookie: std::sync::Arc<str>,
    /// The URL parameter name.
    pub url_param: std::sync::Arc<str>,
}

/// The load-balancing method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbMethod {
    /// Weighted request counting (httpd default).
    #[default]
    ByRequests,
    /// Fewest in-flight requests.
    ByBusyness,
    /// Fewest bytes, weighted.
    ByTraffic,
}

impl LbMethod {
    /// The httpd name.
    pub fn as_str(self) -> &'static str {
        match self {
            LbMethod::ByRequests => "byrequests",
            LbMethod::ByBusyness => "bybusyness",
            LbMethod::ByTraffic => "bytraffic",
        }
    }
}

/// Balancer parameters; `None` means "not set" (the default applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BalancerParams {
    /// `stickysession`.
    pub sticky: Option<StickySession>,
    /// Where `stickysession` was last set.
    pub sticky_origin: Option<Origin>,
    /// `stickysessionsep`: `Some(b'.')` by default; `None` for `Off`.
    pub sticky_sep: Option<Option<u8>>,
    /// `scolonpathdelim`.
    pub scolon_path_delim: bool,
    /// `nofailover`.
    pub no_failover: bool,
    /// `maxattempts`.
    pub max_attempts: Option<u32>,
    /// `forcerecovery` (default On).
    pub force_recovery: Option<bool>,
    /// `failonstatus` codes.
    pub fail_on_status: Vec<u16>,
    /// `failontimeout`.
    pub fail_on_timeout: bool,
    /// `lbmethod`.
    pub lbmethod: LbMethod,
    /// `timeout`: wait for a usable member.
    pub timeout: Option<Duration>,
    /// `growth`.
    pub growth: u32,
    /// `nonce`.
    pub nonce: Option<String>,
}

impl BalancerParams {
    /// The sticky separator in effect (`.` unless set; `None` = Off).
    pub fn separator(&self) -> Option<u8> {
        self.sticky_sep.unwrap_or(Some(b'.'))
    }
}

/// How a route matches the request path.
#[derive(Debug, Clone)]
pub enum RouteMatch {
    /// `ProxyPass PREFIX`: httpd's segment-boundary prefix rule.
    Prefix(String),
    /// `ProxyPassMatch REGEX` (or `ProxyPass ~ REGEX`).
    Regex(Regex),
}

impl RouteMatch {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        match self {
            RouteMatch::Prefix(p) => p,
            RouteMatch::Regex(r) => r.as_str(),
        }
    }
}

/// Where a route sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// `!`: stop ProxyPass processing (the path is not proxied).
    Exclude,
    /// A balancer (possibly implicit), plus the path after `balancer://name`.
    Balancer {
        /// Index into `Config::balancers`.
        balancer: usize,
        /// The path part of the target URL (e.g. `/api`).
        path: String,
    },
}

/// A `ProxyPass`/`ProxyPassMatch` rule.
#[derive(Debug, Clone)]
pub struct Route {
    /// The match pattern.
    pub matcher: RouteMatch,
    /// The target.
    pub target: RouteTarget,
    /// The target as written (for the summary and messages).
    pub target_text: String,
    /// `nocanon`: forward the raw client path.
    pub nocanon: bool,
    /// `noquery`: drop the query string.
    pub noquery: bool,
    /// `upgrade=` given on the ProxyPass line (worker parameter).
    pub upgrade: Option<String>,
    /// Written inside a `<Location>`/`<LocationMatch>`: httpd tries these before the
    /// server's own `ProxyPass` lines (the location walk runs before its translate phase).
    pub in_location: bool,
    /// Where it was declared.
    pub origin: Origin,
}

impl Route {
    /// The tenant: the first path segment of a prefix route (`/t1/api` → `t1`).
    pub fn tenant(&self) -> Option<&str> {
        match &self.matcher {
            RouteMatch::Prefix(p) => {
                let seg = p.trim_start_matches('/').split('/').next()?;
                if seg.is_empty() { None } else { Some(seg) }
            }
            RouteMatch::Regex(_) => None,
        }
    }
}

/// A `Header` / `RequestHeader` action.
#[derive(Debug, Clone)]
pub enum HeaderAction {
    /// `set`.
    Set,
    /// `setifempty`.
    SetIfEmpty,
    /// `add`.
    Add,
    /// `append`.
    Append,
    /// `merge`.
    Merge,
    /// `unset`.
    Unset,
    /// `edit` / `edit*`: regex replace; `all` for `edit*`.
    Edit {
        /// The pattern.
        regex: Regex,
        /// The replacement.
        replacement: HeaderValueFormat,
        /// `edit*`: every match.
        all: bool,
    },
}

/// One piece of a header value format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPart {
    /// Literal text.
    Literal(String),
    /// `%{VAR}e`: an environment variable (`(null)` when unset).
    Env(String),
    /// `%{NAME}i`: a request header.
    RequestHeader(String),
    /// `%D`: `D=<µs>`.
    Duration,
    /// `%t`: `t=<µs since epoch>`.
    Time,
}

/// A parsed header value (`"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderValueFormat {
    /// The pieces in order.
    pub parts: Vec<FormatPart>,
    /// The text as written.
    pub raw: String,
}

/// The condition on a header rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCondition {
    /// Always.
    None,
    /// `env=VAR`: the variable exists.
    Env(String),
    /// `env=!VAR`: the variable does not exist.
    NotEnv(String),
    /// `early` (request headers before routing).
    Early,
}

/// A `Header` or `RequestHeader` directive.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    /// `always` (applies to balancerd's own error responses too).
    pub always: bool,
    /// What to do.
    pub action: HeaderAction,
    /// The header name.
    pub name: String,
    /// The value (empty for unset/edit).
    pub value: HeaderValueFormat,
    /// The condition.
    pub condition: HeaderCondition,
    /// Where it was declared.
    pub origin: Origin,
}

/// `ProxyPassReverse`, `ProxyPassReverseCookiePath` and `ProxyPassReverseCookieDomain` rules.
#[derive(Debug, Clone, Default)]
pub struct ReverseRules {
    /// `ProxyPassReverse fake real`.
    pub location: Vec<ReverseMap>,
    /// `ProxyPassReverseCookiePath fake real` (stored as internal → public).
    pub cookie_path: Vec<ReverseMap>,
    /// `ProxyPassReverseCookieDomain`.
    pub cookie_domain: Vec<ReverseMap>,
}

impl ReverseRules {
    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        self.location.is_empty() && self.cookie_path.is_empty() && self.cookie_domain.is_empty()
    }
}

/// One reverse mapping: `public` is what the client sees, `internal` what the backend says.
#[derive(Debug, Clone)]
pub struct ReverseMap {
    /// The public (fake) side.
    pub public: String,
    /// The internal (real) side; for `ProxyPassReverse` this may be `balancer://name/path`.
    pub internal: String,
    /// Where it was declared.
    pub origin: Origin,
}

/// A built-in handler a `<Location>` can name with `SetHandler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `server-status`.
    ServerStatus,
    /// `balancer-manager`: httpd's manager page, updates and XML (`admin::manager`).
    BalancerManager,
    /// `metrics`: Prometheus exposition.
    Metrics,
    /// `ready` (balancerd's own): 200 when the config is loaded, the process is not
    /// stopping, and every balancer with members has a usable one; else 503 (`admin::probe`).
    Ready,
    /// `live` (balancerd's own): 200 while the process serves.
    Live,
}

impl Handler {
    /// The `SetHandler` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Handler::ServerStatus => "server-status",
            Handler::BalancerManager => "balancer-manager",
            Handler::Metrics => "metrics",
            Handler::Ready => "ready",
            Handler::Live => "live",
        }
    }
}

/// A `<Location>` or `<LocationMatch>` section.
#[derive(Debug, Clone)]
pub struct LocationSection {
    /// The path (or regex source for `<LocationMatch>`).
    pub path: String,
    /// The compiled regex for `<LocationMatch>`.
    pub regex: Option<Regex>,
    /// `SetHandler`.
    pub handler: Option<Handler>,
    /// Access rules.
    pub access: AccessRules,
    /// `Header` rules inside the section.
    pub response_headers: Vec<HeaderRule>,
    /// `RequestHeader` rules inside the section.
    pub request_headers: Vec<HeaderRule>,
    /// `ProxyPassReverse*` inside the section (apply to requests under this location).
    pub reverse: ReverseRules,
    /// `ErrorDocument` inside the section (before the server's).
    pub error_documents: Vec<(u16, ErrorDocument)>,
    /// `SetEnv proxy-*` inside the section.
    pub proxy_switches: ProxySwitches,
    /// `Redirect [status] [URL]` inside the section (the innermost matching one wins).
    pub redirect: Option<(u16, Option<String>)>,
    /// `BackupSiteRedirect` inside the section (before the balancer's own).
    pub backup_site: Option<BackupSite>,
    /// Where it opens.
    pub origin: Origin,
}

/// The `SetEnv proxy-*` switches mod_proxy_http reads, for requests in a scope (server,
/// `<Location>`, `<Proxy balancer://…>`): a request gets the union of its scopes'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxySwitches(pub u8);

impl ProxySwitches {
    /// `proxy-sendchunked`: read and kept, with no effect: httpd 2.4 consults it only for a
    /// body an input filter resized (balancerd has no input filters), so a `Content-Length`
    /// body stays one and a chunked body stays chunked, as there.
    pub const SEND_CHUNKED: u8 = 1;
    /// `proxy-initial-not-pooled`: the first request of a client connection never goes
    /// over a pooled member connection (a fresh one is opened).
    pub const INITIAL_NOT_POOLED: u8 = 2;
    /// `proxy-nokeepalive`: the member connection is closed after the request.
    pub const NO_KEEPALIVE: u8 = 4;
    /// `force-proxy-request-1.0`: the member gets an HTTP/1.0 request (and no keep-alive).
    pub const FORCE_1_0: u8 = 8;

    /// The switch a `SetEnv` variable name sets, if it is one.
    pub fn by_name(name: &str) -> Option<u8> {
        match name.to_ascii_lowercase().as_str() {
            "proxy-sendchunked" => Some(Self::SEND_CHUNKED),
            "proxy-initial-not-pooled" => Some(Self::INITIAL_NOT_POOLED),
            "proxy-nokeepalive" => Some(Self::NO_KEEPALIVE),
            "force-proxy-request-1.0" => Some(Self::FORCE_1_0),
            _ => None,
        }
    }

    /// True when `flag` is on.
    #[inline]
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// True when the member connection must not be reused (`proxy-nokeepalive`,
    /// `force-proxy-request-1.0`).
    #[inline]
    pub fn closes_member(self) -> bool {
        self.has(Self::NO_KEEPALIVE | Self::FORCE_1_0)
    }
}

impl std::ops::BitOr for ProxySwitches {
    type Output = ProxySwitches;
    #[inline]
    fn bitor(self, o: ProxySwitches) -> ProxySwitches {
        ProxySwitches(self.0 | o.0)
    }
}

/// A server's mod_rewrite: `RewriteEngine`, its rules and `RewriteOptions Inherit*`.
#[derive(Debug, Clone, Default)]
pub struct RewriteConfig {
    /// `RewriteEngine On`.
    pub engine: bool,
    /// The rules in config order.
    pub rules: Vec<super::rewrite::RewriteRule>,
    /// `RewriteOptions Inherit` (the main server's rules after this one's) or
    /// `InheritBefore` (before).
    pub inherit: Option<InheritOrder>,
}

/// Where inherited rules go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InheritOrder {
    /// After the virtual host's own.
    After,
    /// Before them.
    Before,
}

/// A server-level `Redirect`, `RedirectMatch`, `RedirectTemp` or `RedirectPermanent`.
#[derive(Debug, Clone)]
pub struct RedirectRule {
    /// The URL-path prefix (whole segments) or the regex.
    pub matcher: RedirectMatcher,
    /// 3xx (with a target) or another status such as 410 `gone` (without).
    pub status: u16,
    /// Where to: an absolute URL or a path on this server; `$N` from a regex.
    pub target: Option<String>,
    /// Where it was declared.
    pub origin: Origin,
}

/// What a redirect matches.
#[derive(Debug, Clone)]
pub enum RedirectMatcher {
    /// `Redirect /old …`: the path and everything below it; the rest is appended.
    Prefix(String),
    /// `RedirectMatch regex …`.
    Regex(Regex),
}

/// What `ErrorDocument` puts in place of balancerd's own page for one status, by httpd's
/// heuristic on the argument: a space makes it a message, a leading `/` a local URL, a URL
/// with a scheme a redirect, `default` the built-in page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDocument {
    /// The text itself is the body (`text/html`), with the error's status.
    Text(String),
    /// Served by an internal GET of this path; the client gets that answer.
    Local(String),
    /// 302 to this URL.
    Remote(String),
    /// The built-in page (undoes an outer `ErrorDocument`).
    Default,
}

impl LocationSection {
    /// An empty section for `path` (the regex source for `<LocationMatch>`), opened at
    /// `origin`; directives inside fill it.
    pub fn new(path: String, regex: Option<Regex>, origin: Origin) -> Self {
        LocationSection {
            path,
            regex,
            handler: None,
            access: AccessRules::default(),
            response_headers: Vec::new(),
            request_headers: Vec::new(),
            reverse: ReverseRules::default(),
            error_documents: Vec::new(),
            proxy_switches: ProxySwitches::default(),
            redirect: None,
            backup_site: None,
            origin,
        }
    }
}

/// `Order` (mod_access_compat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// `deny,allow` (the default): allowed unless denied and not allowed.
    #[default]
    DenyAllow,
    /// `allow,deny`: denied unless allowed and not denied.
    AllowDeny,
    /// `mutual-failure`: allowed only if allowed and not denied.
    MutualFailure,
}

/// A host matcher in `Allow from` / `Deny from` / `Require ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `all`.
    All,
    /// An address or network (a partial `10.1` becomes `10.1.0.0/16`).
    Net(IpNet),
    /// A host name (matched by double reverse lookup, on whole labels).
    Host(String),
    /// `env=VAR` / `env=!VAR`.
    Env(String, bool),
}

/// A `Require` expression tree (authz_core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// `Require all granted`.
    AllGranted,
    /// `Require all denied`.
    AllDenied,
    /// `Require ip ...`.
    Ip(Vec<IpNet>),
    /// `Require host ...`.
    Host(Vec<String>),
    /// `Require local`.
    Local,
    /// `Require not ...`.
    Not(Box<Require>),
    /// `<RequireAll>`.
    All(Vec<Require>),
    /// `<RequireAny>` (also the implicit container).
    Any(Vec<Require>),
    /// `<RequireNone>`.
    None(Vec<Require>),
}

/// Access rules of a section: 2.2 style (`Order`/`Allow`/`Deny`) and 2.4 style (`Require`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// `Order`, if any 2.2 directive was used.
    pub order: Option<Order>,
    /// `Allow from`.
    pub allow: Vec<HostMatch>,
    /// `Deny from`.
    pub deny: Vec<HostMatch>,
    /// `Satisfy Any` (true) or `All` (default).
    pub satisfy_any: bool,
    /// The `Require` tree (an implicit `<RequireAny>` at the top).
    pub require: Option<Require>,
}

impl AccessRules {
    /// True when no access directive was given (everyone is allowed).
    pub fn is_open(&self) -> bool {
        self.order.is_none()
            && self.allow.is_empty()
            && self.deny.is_empty()
            && self.require.is_none()
    }
}

impl Default for UpstreamTls {
    /// httpd's defaults: engine off, no verification, but the name, CN and expiry checks on
    /// (they take effect once `SSLProxyVerify require` is set).
    fn default() -> Self {
        UpstreamTls {
            engine: false,
            engine_origin: None,
            verify: false,
            verify_explicit: false,
            ca_file: None,
            check_peer_name: true,
            check_peer_cn: true,
            check_peer_expire: true,
            client_cert_file: None,
            client_key_file: None,
            protocols: None,
        }
    }
}

impl FrontTls {
    /// The client certificates this server asks for (`SSLVerifyClient` with
    /// `SSLCACertificateFile`).
    pub fn client_auth(&self) -> Option<crate::net::tls::ClientAuth<'_>> {
        Some(crate::net::tls::ClientAuth {
            ca_file: self.client_ca_file.as_deref()?,
            required: self.verify_client?,
        })
    }

    /// Loads the certificate chain and key this server serves (`SSLEngine on` needs
    /// `SSLCertificateFile`).
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
        let cert = self
            .cert_file
            .as_deref()
            .ok_or("SSLEngine on needs SSLCertificateFile")?;
        crate::net::tls::certified_key(cert, self.key_file.as_deref(), self.chain_file.as_deref())
    }
}

impl UpstreamTls {
    /// The settings of TLS to members, as the net layer takes them.
    pub fn client_settings(&self) -> crate::net::tls::ClientSettings<'_> {
        crate::net::tls::ClientSettings {
            protocols: self.protocols.as_deref(),
            verify: self.verify,
            ca_file: self.ca_file.as_deref(),
            check_name: self.check_peer_name && self.check_peer_cn,
            check_expire: self.check_peer_expire,
            client_cert_file: self.client_cert_file.as_deref(),
            client_key_file: self.client_key_file.as_deref(),
        }
    }

    /// Builds the client config for `https://` members.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        crate::net::tls::client_config(&self.client_settings())
    }
}

/// A `ProxyPassReverseCookiePath` placed inside a `<Proxy>` section (a lint looks at these).
#[derive(Debug, Clone)]
pub struct ScopedCookiePath {
    /// The balancer whose section holds it.
    pub balancer: String,
    /// Where it was written.
    pub origin: Origin,
}
