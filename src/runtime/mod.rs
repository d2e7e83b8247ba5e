//! The runtime snapshot: an immutable, request-ready form of the config, swapped
//! atomically on reload (`ArcSwap`). Each request loads it once and finishes on it.
//!
//! Member state (error timers, counters, pools) is keyed by (balancer, member URL) and
//! carried from the previous snapshot, so a reload never forgets that a member is down.
//!
//! Layer 8. Owns: the snapshot and its build (TLS configs from the model, member state carried
//! by key), the health-check scheduler ([`health`]). A build only opens files and sockets:
//! everything the config names was resolved and compiled by `config`.
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`, `balancer`.

pub mod control;
pub mod health;

use crate::balancer::BalancerRt;
use crate::balancer::member::{MemberRt, MemberState};
use crate::config::Config;
use crate::config::model::{
    HeaderRule, Listener, LocationSection, ReverseRules, Route, RouteMatch, RouteTarget,
    ServerSettings,
};
use crate::route::RouteLike;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// The rules of one server (main or virtual host), ready for requests.
#[derive(Debug, Default)]
pub struct HostRt {
    /// Routes in match order (for a vhost: the main server's first).
    pub routes: Vec<Route>,
    /// The same routes by first path segment (what the request path looks up).
    pub route_index: crate::route::RouteIndex,
    /// `Header` rules (main server's, then the vhost's).
    pub response_headers: Vec<HeaderRule>,
    /// `RequestHeader` rules.
    pub request_headers: Vec<HeaderRule>,
    /// `<Location>` sections.
    pub locations: Vec<LocationSection>,
    /// Server-level reverse maps.
    pub reverse: ReverseRules,
    /// Access logs of this server (a virtual host without its own: the main server's).
    pub access_logs: Vec<crate::telemetry::access_log::AccessLog>,
    /// A virtual host's `ServerName` as written (`%v`); `None`: the main server's.
    pub server_name: Option<Arc<str>>,
    /// mod_rewrite rules in effect (empty unless `RewriteEngine On` in this server; a vhost
    /// gets the main server's only with `RewriteOptions Inherit*`).
    pub rewrite: Vec<crate::config::rewrite::RewriteRule>,
    /// Server-level redirects (a vhost's own first, then the main server's, as mod_alias
    /// merges them).
    pub redirects: Vec<crate::config::model::RedirectRule>,
    /// `SetEnv proxy-*` at server level (a vhost's include the main server's).
    pub proxy_switches: crate::config::model::ProxySwitches,
    /// `ErrorDocument`s (main server's, then the vhost's: the last for a status wins).
    pub error_documents: Vec<(u16, crate::config::model::ErrorDocument)>,
}

/// A virtual host: the names it answers to and its rules.
#[derive(Debug)]
pub struct VHostRt {
    /// Lower-case `ServerName` and `ServerAlias` names.
    pub names: Vec<String>,
    /// Its rules.
    pub host: HostRt,
}

/// Everything a request needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    /// Server settings.
    pub server: ServerSettings,
    /// `X-Forwarded-Server` value.
    pub server_name: Arc<str>,
    /// The same, ready to send.
    pub server_name_value: http::HeaderValue,
    /// Balancers, indexed as the routes refer to them.
    pub balancers: Vec<BalancerRt>,
    /// The main server.
    pub main: HostRt,
    /// Virtual hosts.
    pub vhosts: Vec<VHostRt>,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// TLS server config of each TLS listener (certificates re-read at every build).
    pub front_tls: HashMap<std::net::SocketAddr, Arc<rustls::ServerConfig>>,
    /// TLS client config for `https://` members (`SSLProxyEngine On`).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// Access rules of `<Proxy *>` sections: apply to every proxied request.
    pub proxy_access: Option<crate::config::model::AccessRules>,
    /// True when some server writes an access log (the request head is kept for it).
    pub logging: bool,
    /// True when some server or `<Location>` has an `ErrorDocument` (the request head is
    /// kept for it, and balancerd's own error pages are looked up).
    pub error_documents: bool,
    /// Runtime changes (the balancer-manager's) and the nonces, shared by every snapshot of
    /// the process.
    pub control: Arc<control::Control>,
    /// `SiteRedirect` rules (Workspace's entry URL), checked before routing when any.
    pub site_redirects: Vec<crate::config::model::SiteRedirect>,
}

/// A virtual host's rewrite rules: its own when its `RewriteEngine` is on, with the main
/// server's before or after them under `RewriteOptions InheritBefore`/`Inherit`.
fn vhost_rewrite(
    main: &crate::config::model::RewriteConfig,
    own: &crate::config::model::RewriteConfig,
) -> Vec<crate::config::rewrite::RewriteRule> {
    use crate::config::model::InheritOrder;
    if !own.engine {
        return Vec::new();
    }
    let inherited: &[crate::config::rewrite::RewriteRule] =
        if main.engine { &main.rules } else { &[] };
    match own.inherit {
        Some(InheritOrder::Before) => inherited.iter().chain(&own.rules).cloned().collect(),
        Some(InheritOrder::After) => own.rules.iter().chain(inherited).cloned().collect(),
        None => own.rules.clone(),
    }
}

/// True when a `<VirtualHost>` address list names `port` (or no port at all).
fn vhost_serves_port(addrs: &[String], port: u16) -> bool {
    addrs.iter().any(|a| match a.rsplit_once(':') {
        Some((_, p)) => p == "*" || p.parse::<u16>().ok() == Some(port),
        None => true,
    })
}

/// The TLS server configs of the listeners: TOML `[[listen.tls]]` entries, the main
/// server's `SSLEngine on` certificate, and every `<VirtualHost>` on that port with
/// `SSLEngine on` (its `ServerName`/`ServerAlias` as SNI names).
fn front_tls(
    config: &Config,
) -> Result<HashMap<std::net::SocketAddr, Arc<rustls::ServerConfig>>, String> {
    use crate::net::tls::{FrontEntry, server_config};
    let mut out = HashMap::new();
    // A virtual host without its own SSLVerifyClient inherits the main server's.
    let main_auth = config.main.tls.as_ref().and_then(|t| t.client_auth());
    for l in &config.listeners {
        let port = l.addr.port();
        let mut entries: Vec<FrontEntry<'_>> = l
            .tls
            .iter()
            .map(|t| {
                Ok(FrontEntry {
                    names: t.sni_names.clone(),
                    key: t.certified_key()?,
                    protocols: t.protocols.as_deref(),
                    client_auth: t.client_auth(),
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|e| format!("{}: {e}", l.origin))?;
        if let Some(t) = config.main.tls.as_ref().filter(|t| t.engine) {
            entries.push(FrontEntry {
                names: config.server.server_name.iter().cloned().collect(),
                key: t
                    .certified_key()
                    .map_err(|e| format!("{}: {e}", l.origin))?,
                protocols: t.protocols.as_deref(),
                client_auth: main_auth,
            });
        }
        for v in &config.vhosts {
            if let Some(t) = v.rules.tls.as_ref().filter(|t| t.engine)
                && vhost_serves_port(&v.addrs, port)
            {
                entries.push(FrontEntry {
                    names: v
                        .server_name
                        .iter()
                        .chain(v.aliases.iter())
                        .cloned()
                        .collect(),
                    key: t
                        .certified_key()
                        .map_err(|e| format!("{}: {e}", l.origin))?,
                    protocols: t.protocols.as_deref(),
                    client_auth: t.client_auth().or(main_auth),
                });
            }
        }
        let proto = l.protocol.as_deref();
        if proto == Some("https") && entries.is_empty() {
            return Err(format!(
                "{}: Listen {} https has no certificate (SSLEngine on with SSLCertificateFile)",
                l.origin, l.addr
            ));
        }
        if proto != Some("http") && !entries.is_empty() {
            out.insert(
                l.addr,
                server_config(&entries).map_err(|e| format!("{}: {e}", l.origin))?,
            );
        }
    }
    Ok(out)
}

impl RouteLike for Route {
    fn matcher(&self) -> &RouteMatch {
        &self.matcher
    }
    fn target(&self) -> &RouteTarget {
        &self.target
    }
}

impl Snapshot {
    /// Builds a snapshot, reusing the member state of `prev` for members that still exist
    /// and keeping the runtime changes made on it (unless `config` changed what they
    /// change: see [`control`]). Fails when a certificate cannot be loaded.
    pub fn build(config: Config, prev: Option<&Snapshot>) -> Result<Snapshot, String> {
        let Some(p) = prev else {
            // A first snapshot: the changes kept from before a restart (if any) apply.
            let control = control::Control::new(&config);
            let applied = control.applied(config);
            return Self::build_with(applied, None, control);
        };
        let control = p.control.clone();
        let _serial = control
            .serial
            .lock()
            .map_err(|_| "control state poisoned")?;
        let (applied, changes) = control.preview(&config);
        let snap = Self::build_with(applied, prev, control.clone())?;
        control.commit(config, changes);
        Ok(snap)
    }

    /// Builds a snapshot from a config the runtime changes were already laid over.
    pub(crate) fn build_applied(
        config: Config,
        prev: Option<&Snapshot>,
    ) -> Result<Snapshot, String> {
        let control = match prev {
            Some(p) => p.control.clone(),
            None => control::Control::new(&config),
        };
        Self::build_with(config, prev, control)
    }

    fn build_with(
        config: Config,
        prev: Option<&Snapshot>,
        control: Arc<control::Control>,
    ) -> Result<Snapshot, String> {
        let front_tls = front_tls(&config)?;
        // Each log file opened once per build (reopened at every reload, for logrotate).
        let mut opened: Vec<(std::path::PathBuf, crate::telemetry::access_log::AccessLog)> =
            Vec::new();
        let mut open_logs =
            |list: &[(
                std::path::PathBuf,
                Arc<crate::telemetry::access_log::LogFormat>,
            )]|
             -> Result<Vec<crate::telemetry::access_log::AccessLog>, String> {
                let mut out = Vec::new();
                for (p, f) in list {
                    match opened
                        .iter()
                        .find(|(q, l)| q == p && l.format() == f.as_ref())
                    {
                        Some((_, l)) => out.push(l.clone()),
                        None => {
                            let l = crate::telemetry::access_log::AccessLog::open(p, f.clone())?;
                            opened.push((p.clone(), l.clone()));
                            out.push(l);
                        }
                    }
                }
                Ok(out)
            };
        let main_logs = open_logs(&config.main.access_logs)?;
        let mut vhost_logs = Vec::new();
        for v in &config.vhosts {
            vhost_logs.push(if v.rules.access_logs.is_empty() {
                main_logs.clone()
            } else {
                open_logs(&v.rules.access_logs)?
            });
        }
        let logging = !main_logs.is_empty() || vhost_logs.iter().any(|l| !l.is_empty());
        let upstream_tls = if config.upstream_tls.engine {
            Some(config.upstream_tls.client_config()?)
        } else {
            None
        };
        let mut states: HashMap<(String, String), Arc<MemberState>> = HashMap::new();
        if let Some(p) = prev {
            for b in &p.balancers {
                for m in &b.members {
                    states.insert(
                        (b.full_name.to_string(), m.name.to_string()),
                        m.state.clone(),
                    );
                }
            }
        }
        let Config {
            listeners,
            server,
            balancers,
            main,
            vhosts,
            proxy_access,
            site_redirects,
            ..
        } = config;
        let balancers: Vec<BalancerRt> = balancers
            .into_iter()
            .map(|b| {
                let full = format!("balancer://{}", b.name);
                let max_attempts = b.max_attempts();
                let members = b
                    .members
                    .into_iter()
                    .map(|m| {
                        let st = states.remove(&(full.clone(), m.url.to_string()));
                        MemberRt::new(m, st)
                    })
                    .collect();
                let mut rt = BalancerRt::new(
                    &b.name,
                    members,
                    b.params,
                    max_attempts,
                    b.response_headers,
                    b.request_headers,
                    b.reverse,
                );
                rt.access = b.access;
                rt.proxy_switches = b.proxy_switches;
                rt.backup_site = b.backup_site;
                rt
            })
            .collect();
        let mut vhosts: Vec<VHostRt> = vhosts
            .into_iter()
            .map(|v| {
                let mut names: Vec<String> = v
                    .server_name
                    .iter()
                    .chain(v.aliases.iter())
                    .map(|n| n.to_ascii_lowercase())
                    .collect();
                names.dedup();
                let mut routes = main.routes.clone();
                routes.extend(v.rules.routes);
                let mut response_headers = main.response_headers.clone();
                response_headers.extend(v.rules.response_headers);
                let mut request_headers = main.request_headers.clone();
                request_headers.extend(v.rules.request_headers);
                let mut locations = main.locations.clone();
                locations.extend(v.rules.locations);
                let mut error_documents = main.error_documents.clone();
                error_documents.extend(v.rules.error_documents);
                VHostRt {
                    names,
                    host: HostRt {
                        route_index: crate::route::RouteIndex::build(&routes),
                        routes,
                        response_headers,
                        request_headers,
                        locations,
                        reverse: v.rules.reverse,
                        access_logs: Vec::new(),
                        server_name: v.server_name.as_deref().map(Arc::from),
                        error_documents,
                        proxy_switches: main.proxy_switches | v.rules.proxy_switches,
                        rewrite: vhost_rewrite(&main.rewrite, &v.rules.rewrite),
                        redirects: v
                            .rules
                            .redirects
                            .iter()
                            .chain(main.redirects.iter())
                            .cloned()
                            .collect(),
                    },
                }
            })
            .collect();
        let server_name: Arc<str> = Arc::from(
            server
                .server_name
                .clone()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "localhost".into()),
        );
        for (v, logs) in vhosts.iter_mut().zip(vhost_logs) {
            v.host.access_logs = logs;
        }
        let error_documents = !main.error_documents.is_empty()
            || main.locations.iter().any(|l| !l.error_documents.is_empty())
            || vhosts.iter().any(|v| {
                !v.host.error_documents.is_empty()
                    || v.host
                        .locations
                        .iter()
                        .any(|l| !l.error_documents.is_empty())
            });
        Ok(Snapshot {
            site_redirects,
            control,
            logging,
            error_documents,
            proxy_access,
            front_tls,
            upstream_tls,
            server,
            server_name_value: http::HeaderValue::from_str(&server_name)
                .unwrap_or(http::HeaderValue::from_static("localhost")),
            server_name,
            balancers,
            main: HostRt {
                route_index: crate::route::RouteIndex::build(&main.routes),
                routes: main.routes,
                response_headers: main.response_headers,
                request_headers: main.request_headers,
                locations: main.locations,
                reverse: main.reverse,
                access_logs: main_logs,
                server_name: None,
                error_documents: main.error_documents,
                proxy_switches: main.proxy_switches,
                rewrite: if main.rewrite.engine {
                    main.rewrite.rules
                } else {
                    Vec::new()
                },
                redirects: main.redirects,
            },
            vhosts,
            listeners,
        })
    }

    /// The server for a `Host` header: a virtual host by name, else the first virtual host
    /// (httpd's default), else the main server.
    pub fn host_for(&self, host_header: Option<&str>) -> &HostRt {
        if self.vhosts.is_empty() {
            return &self.main;
        }
        if let Some(h) = host_header {
            let name = strip_port(h);
            for v in &self.vhosts {
                if v.names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                    return &v.host;
                }
            }
        }
        &self.vhosts[0].host
    }
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split(']').next().map_or(h, |s| &h[..s.len() + 1]);
    }
    h.rsplit_once(':').map_or(h, |(a, _)| a)
}

/// The live snapshot, shared by every connection.
pub type Shared = Arc<ArcSwap<Snapshot>>;
