//! Runtime administration: the changes an admin makes to balancers and members while
//! balancerd runs (the balancer-manager), kept apart from the config they change.
//!
//! A change never edits a running snapshot. It is recorded here ([`Changes`]), laid over a
//! copy of the config as loaded, and a new snapshot is built from the result and swapped in,
//! as a reload does: requests in flight finish on the snapshot they started with, member
//! state (errors, counters, pools) carries over by key, and the request path reads the
//! same fields as before: it pays nothing for the manager.
//!
//! ```text
//!   load / reload ──▶ adopt(config) ──▶ config + changes ──▶ Snapshot::build ──▶ swap
//!   manager update ──▶ Changes::edit ─────────┘
//! ```
//!
//! Invariants:
//! * Changes survive reloads (balancerd keeps balancer state as httpd's `BalancerPersist On`),
//!   except where the reload changed the same member's or balancer's config: the config wins
//!   and the change is dropped (and logged).
//! * With a `PidFile`, changes also survive a restart: each one is written to
//!   `<PidFile>.state` with a fingerprint of the config it was made over, and read back at
//!   start; a change whose member's or balancer's config differs from its fingerprint is
//!   dropped (the config wins there too).
//! * Each balancer has one nonce for the life of the process (reloads keep it), as httpd's.
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`, `balancer`.

use super::Snapshot;
use crate::config::model::{Config, LbMethod, StickySession};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// What the admin changed on one member, over its config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberChange {
    /// Status flags switched on (`StatusFlags` bits).
    pub status_on: u16,
    /// Status flags switched off.
    pub status_off: u16,
    /// `loadfactor` ×100.
    pub loadfactor: Option<u32>,
    /// `lbset`.
    pub lbset: Option<u8>,
    /// `route`.
    pub route: Option<String>,
    /// `redirect`.
    pub redirect: Option<String>,
    /// Health-check parameters (`hcmethod`, `hcinterval`, `hcpasses`, `hcfails`, `hcuri`,
    /// `hcexpr`) as `BalancerMember` takes them, in the order set; an empty `hcuri` or
    /// `hcexpr` removes it.
    pub hc: Vec<(String, String)>,
}

/// What the admin changed on one balancer, over its config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BalancerChange {
    /// `lbmethod`.
    pub lbmethod: Option<LbMethod>,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `maxattempts`.
    pub max_attempts: Option<u32>,
    /// `nofailover` (httpd's manager calls it sticky force).
    pub sticky_force: Option<bool>,
    /// `stickysession` (`Some(None)`: removed).
    pub sticky: Option<Option<StickySession>>,
    /// Members added at run time (`b_nwrkr`), by URL, within the balancer's `growth`.
    pub added: Vec<String>,
}

impl BalancerChange {
    /// Takes in a newer change: what it sets replaces what this one set; its added members
    /// join this one's.
    pub fn merge(&mut self, newer: BalancerChange) {
        let BalancerChange {
            lbmethod,
            timeout,
            max_attempts,
            sticky_force,
            sticky,
            added,
        } = newer;
        self.lbmethod = lbmethod.or(self.lbmethod);
        self.timeout = timeout.or(self.timeout);
        self.max_attempts = max_attempts.or(self.max_attempts);
        self.sticky_force = sticky_force.or(self.sticky_force);
        if sticky.is_some() {
            self.sticky = sticky;
        }
        self.added.extend(added);
    }
}

/// Every runtime change, by balancer (`balancer://name`) and member URL.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    members: HashMap<(String, String), MemberChange>,
    balancers: HashMap<String, BalancerChange>,
}

impl Changes {
    /// `config` with the changes laid over it.
    fn apply(&self, mut config: Config) -> Config {
        let exprs = config.hc_exprs.clone();
        for b in &mut config.balancers {
            let full = format!("balancer://{}", b.name);
            if let Some(c) = self.balancers.get(&full) {
                let p = &mut b.params;
                if let Some(m) = c.lbmethod {
                    p.lbmethod = m;
                }
                if let Some(t) = c.timeout {
                    p.timeout = Some(t);
                }
                if let Some(n) = c.max_attempts {
                    p.max_attempts = Some(n);
                }
                if let Some(f) = c.sticky_force {
                    p.no_failover = f;
                }
                if let Some(s) = &c.sticky {
                    p.sticky = s.clone();
                }
                // Added members: httpd's defaults, disabled until an admin enables them.
                for url in &c.added {
                    let Ok((url, _)) = crate::config::builder::parse_member_url(url) else {
                        continue;
                    };
                    if b.members.iter().any(|m| m.url == url) {
                        continue;
                    }
                    let mut params = crate::config::model::MemberParams::default();
                    params.status.0 |= crate::config::model::StatusFlags::DISABLED;
                    b.members.push(crate::config::model::Member {
                        url,
                        params,
                        origin: crate::config::diag::Origin::new(
                            &std::sync::Arc::from("balancer-manager"),
                            0,
                            0,
                        ),
                    });
                }
            }
            for m in &mut b.members {
                let Some(c) = self.members.get(&(full.clone(), m.url.to_string())) else {
                    continue;
                };
                let p = &mut m.params;
                p.status.0 = (p.status.0 | c.status_on) & !c.status_off;
                if let Some(f) = c.loadfactor {
                    p.loadfactor = f;
                }
                if let Some(s) = c.lbset {
                    p.lbset = s;
                }
                if let Some(r) = &c.route {
                    p.route = r.clone();
                }
                if let Some(r) = &c.redirect {
                    p.redirect = r.clone();
                }
                for (k, v) in &c.hc {
                    match (k.as_str(), v.is_empty()) {
                        ("hcuri", true) => p.hc.uri = None,
                        ("hcexpr", true) => p.hc.expr = None,
                        _ => {
                            // Checked when the change was taken.
                            let _ = crate::config::params::set_member_param(p, k, v);
                        }
                    }
                }
                // The expression a (new) `hcexpr` names; none for NONE and TCP checks.
                if !c.hc.is_empty() {
                    if matches!(p.hc.method.to_ascii_uppercase().as_str(), "NONE" | "TCP") {
                        p.hc.expr = None;
                    }
                    p.hc.check =
                        p.hc.expr.as_ref().and_then(|e| {
                            exprs.iter().find(|(n, _)| n == e).map(|(_, x)| x.clone())
                        });
                }
            }
        }
        config
    }
}

struct Inner {
    /// The config as loaded, before the changes.
    config: Config,
    /// `<PidFile>.state`, where the changes are kept across restarts.
    state_file: Option<std::path::PathBuf>,
    changes: Changes,
    /// Each balancer's nonce, by `balancer://name`.
    nonces: HashMap<String, String>,
}

/// The administration state shared by every snapshot of one process.
pub struct Control {
    /// Where new snapshots go (set once the first snapshot is shared: [`share`]).
    shared: OnceLock<Weak<ArcSwap<Snapshot>>>,
    inner: Mutex<Inner>,
    /// Held while a snapshot is built from the state and swapped in (runtime changes and
    /// reloads), so that two never swap in the wrong order.
    pub(super) serial: Mutex<()>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// A fresh random nonce (16 bytes from the kernel, as hex; httpd uses a UUID).
fn new_nonce() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: the time and the address of a local, hashed.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let x = t ^ (&b as *const _ as u128);
        b = x.to_le_bytes();
    }
    b.iter().map(|v| format!("{v:02x}")).collect()
}

impl Control {
    /// Control for a first snapshot built from `config`.
    pub(super) fn new(config: &Config) -> Arc<Control> {
        let state_file = state_file(config);
        let changes = state_file
            .as_deref()
            .map(|f| persist::read(f, config))
            .unwrap_or_default();
        let c = Arc::new(Control {
            shared: OnceLock::new(),
            serial: Mutex::new(()),
            inner: Mutex::new(Inner {
                config: config.clone(),
                state_file,
                changes,
                nonces: HashMap::new(),
            }),
        });
        c.adopt_nonces(config);
        c
    }

    /// `config` with the recorded changes laid over it (a first snapshot's, at start).
    pub(super) fn applied(&self, config: Config) -> Config {
        match self.inner.lock() {
            Ok(inner) => inner.changes.apply(config),
            Err(_) => config,
        }
    }

    /// What a reloaded `config` becomes: the config with the changes that remain laid over
    /// it, and those changes. Changes to members or balancers whose config the reload
    /// changed are dropped (the config wins). Nothing is recorded until [`Control::commit`].
    pub(super) fn preview(&self, config: &Config) -> (Config, Changes) {
        let Ok(inner) = self.inner.lock() else {
            return (config.clone(), Changes::default());
        };
        let old = &inner.config;
        let find_b = |c: &Config, full: &str| {
            c.balancers
                .iter()
                .find(|b| format!("balancer://{}", b.name) == full)
                .cloned()
        };
        let mut changes = inner.changes.clone();
        changes.members.retain(|(b, m), _| {
            let member = |c: &Config| {
                find_b(c, b).and_then(|b| {
                    b.members
                        .iter()
                        .find(|x| x.url.to_string() == *m)
                        .map(|x| x.params.clone())
                })
            };
            let (before, after) = (member(old), member(config));
            let keep = after.is_some() && before == after;
            if !keep {
                tracing::info!(balancer = %b, member = %m, "the reloaded config changed this member: its balancer-manager change is dropped");
            }
            keep
        });
        changes.balancers.retain(|b, _| {
            // Where `stickysession` was written (its line may move) is not what it is.
            let params = |c: &Config| {
                find_b(c, b).map(|b| {
                    let mut p = b.params;
                    p.sticky_origin = None;
                    p
                })
            };
            let (before, after) = (params(old), params(config));
            let keep = after.is_some() && before == after;
            if !keep {
                tracing::info!(balancer = %b, "the reloaded config changed this balancer: its balancer-manager change is dropped");
            }
            keep
        });
        (changes.apply(config.clone()), changes)
    }

    /// Records `config` (as loaded) and `changes` as the state a snapshot was built from.
    pub(super) fn commit(&self, config: Config, changes: Changes) {
        self.adopt_nonces(&config);
        if let Ok(mut inner) = self.inner.lock() {
            inner.state_file = state_file(&config);
            inner.config = config;
            inner.changes = changes;
            inner.save();
        }
    }

    /// Gives every balancer of `config` a nonce: its `nonce=` parameter, the one it had, or
    /// a new one.
    fn adopt_nonces(&self, config: &Config) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for b in &config.balancers {
            let full = format!("balancer://{}", b.name);
            match &b.params.nonce {
                // `nonce=None`: httpd checks no nonce (an empty one matches nothing here).
                Some(n) if n.eq_ignore_ascii_case("none") => {
                    inner.nonces.insert(full, String::new());
                }
                Some(n) => {
                    inner.nonces.insert(full, n.clone());
                }
                None => {
                    inner.nonces.entry(full).or_insert_with(new_nonce);
                }
            }
        }
    }

    /// The nonce of `balancer://name` (`None`: no such balancer; empty: `nonce=None`).
    pub fn nonce(&self, full_name: &str) -> Option<String> {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.nonces.get(full_name).cloned())
    }

    /// The snapshot in use now (after a change, the one it built).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.shared
            .get()
            .and_then(Weak::upgrade)
            .map(|s| s.load_full())
    }

    /// The names of the config's `ProxyHCExpr`s (the member form's choices).
    pub fn hc_expr_names(&self) -> Vec<String> {
        self.inner.lock().map_or_else(
            |_| Vec::new(),
            |i| i.config.hc_exprs.iter().map(|(n, _)| n.clone()).collect(),
        )
    }

    /// The change recorded for a balancer.
    pub fn balancer_change(&self, balancer: &str) -> Option<BalancerChange> {
        let inner = self.inner.lock().ok()?;
        inner.changes.balancers.get(balancer).cloned()
    }

    /// The change recorded for a member (what the manager shows as changed).
    pub fn member_change(&self, balancer: &str, member: &str) -> Option<MemberChange> {
        let inner = self.inner.lock().ok()?;
        inner
            .changes
            .members
            .get(&(balancer.to_string(), member.to_string()))
            .cloned()
    }

    /// Records a change to a balancer and (when `member` is given) one of its members, then
    /// builds and swaps in a snapshot with it. `edit` gets the balancer's and the member's
    /// change records to modify. Fails when the snapshot cannot be built or swapped.
    pub fn update(
        &self,
        balancer: &str,
        member: Option<&str>,
        edit: impl FnOnce(&mut BalancerChange, Option<&mut MemberChange>),
    ) -> Result<(), String> {
        let shared = self
            .shared
            .get()
            .and_then(Weak::upgrade)
            .ok_or("this instance takes no runtime changes (no shared snapshot)")?;
        let _serial = self.serial.lock().map_err(|_| "control state poisoned")?;
        let (config, changes) = {
            let inner = self.inner.lock().map_err(|_| "control state poisoned")?;
            let mut changes = inner.changes.clone();
            let mut b = changes.balancers.get(balancer).cloned().unwrap_or_default();
            match member {
                Some(m) => {
                    let key = (balancer.to_string(), m.to_string());
                    let mut mc = changes.members.get(&key).cloned().unwrap_or_default();
                    edit(&mut b, Some(&mut mc));
                    changes.members.insert(key, mc);
                }
                None => edit(&mut b, None),
            }
            changes.balancers.insert(balancer.to_string(), b);
            (changes.apply(inner.config.clone()), changes)
        };
        let current = shared.load_full();
        let next = Snapshot::build_applied(config, Some(&current))?;
        if let Ok(mut inner) = self.inner.lock() {
            inner.changes = changes;
            inner.save();
        }
        shared.store(Arc::new(next));
        Ok(())
    }
}

impl Inner {
    /// Writes the changes to the state file (when there is one).
    fn save(&self) {
        if let Some(f) = &self.state_file
            && let Err(e) = persist::write(f, &self.changes, &self.config)
        {
            tracing::warn!("cannot write {}: {e}", f.display());
        }
    }
}

/// `<PidFile>.state` of `config`.
fn state_file(config: &Config) -> Option<std::path::PathBuf> {
    config.server.pid_file.as_ref().map(|p| {
        let mut s = p.as_os_str().to_owned();
        s.push(".state");
        std::path::PathBuf::from(s)
    })
}

/// The state file: the changes as JSON, each with a fingerprint of the config it was made
/// over (FNV-1a of the member's or balancer's parameters as the model prints them).
mod persist {
    use super::{BalancerChange, Changes, MemberChange};
    use crate::config::model::{Config, LbMethod, StickySession};
    use serde_json::{Value, json};
    use std::path::Path;
    use std::time::Duration;

    fn fnv(s: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    fn balancer<'c>(c: &'c Config, full: &str) -> Option<&'c crate::config::model::Balancer> {
        c.balancers
            .iter()
            .find(|b| full.strip_prefix("balancer://") == Some(b.name.as_str()))
    }

    fn member_print(c: &Config, b: &str, m: &str) -> Option<String> {
        balancer(c, b)?
            .members
            .iter()
            .find(|x| x.url.to_string() == m)
            .map(|x| fnv(&format!("{:?}", x.params)))
    }

    fn balancer_print(c: &Config, b: &str) -> Option<String> {
        balancer(c, b).map(|b| {
            // Where `stickysession` was written is not part of what it is.
            let mut p = b.params.clone();
            p.sticky_origin = None;
            fnv(&format!("{p:?}"))
        })
    }

    pub(super) fn write(f: &Path, ch: &Changes, base: &Config) -> std::io::Result<()> {
        let members: Vec<Value> = ch
            .members
            .iter()
            .map(|((b, m), c)| {
                json!({
                    "balancer": b, "member": m, "config": member_print(base, b, m),
                    "status_on": c.status_on, "status_off": c.status_off,
                    "loadfactor": c.loadfactor, "lbset": c.lbset,
                    "route": c.route, "redirect": c.redirect, "hc": c.hc,
                })
            })
            .collect();
        let balancers: Vec<Value> = ch
            .balancers
            .iter()
            .map(|(b, c)| {
                json!({
                    "balancer": b, "config": balancer_print(base, b),
                    "lbmethod": c.lbmethod.map(LbMethod::as_str),
                    "timeout": c.timeout.map(|d| d.as_secs()),
                    "maxattempts": c.max_attempts,
                    "nofailover": c.sticky_force,
                    "added": c.added,
                    "sticky": match &c.sticky {
                        None => Value::Null,
                        Some(None) => json!("-"),
                        Some(Some(s)) => json!([s.cookie.to_string(), s.url_param.to_string()]),
                    },
                })
            })
            .collect();
        let tmp = f.with_extension("state.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&json!({ "members": members, "balancers": balancers }))?,
        )?;
        std::fs::rename(&tmp, f)
    }

    /// The changes in `f` that still apply to `config`.
    pub(super) fn read(f: &Path, config: &Config) -> Changes {
        let mut ch = Changes::default();
        let Ok(text) = std::fs::read_to_string(f) else {
            return ch;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!("{}: not a state file; ignored", f.display());
            return ch;
        };
        let s = |v: &Value| v.as_str().map(str::to_string);
        for m in v["members"].as_array().into_iter().flatten() {
            let (Some(b), Some(u)) = (s(&m["balancer"]), s(&m["member"])) else {
                continue;
            };
            if member_print(config, &b, &u) != s(&m["config"]) {
                tracing::info!(balancer = %b, member = %u, "the config changed this member since its balancer-manager change: the change is dropped");
                continue;
            }
            let c = MemberChange {
                status_on: m["status_on"].as_u64().unwrap_or(0) as u16,
                status_off: m["status_off"].as_u64().unwrap_or(0) as u16,
                loadfactor: m["loadfactor"].as_u64().map(|x| x as u32),
                lbset: m["lbset"].as_u64().map(|x| x as u8),
                route: s(&m["route"]),
                redirect: s(&m["redirect"]),
                hc: m["hc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| Some((s(&kv[0])?, s(&kv[1])?)))
                    .collect(),
            };
            tracing::info!(balancer = %b, member = %u, "balancer-manager change kept from before the restart");
            ch.members.insert((b, u), c);
        }
        for x in v["balancers"].as_array().into_iter().flatten() {
            let Some(b) = s(&x["balancer"]) else {
                continue;
            };
            if balancer_print(config, &b) != s(&x["config"]) {
                tracing::info!(balancer = %b, "the config changed this balancer since its balancer-manager change: the change is dropped");
                continue;
            }
            let c = BalancerChange {
                lbmethod: match x["lbmethod"].as_str() {
                    Some("byrequests") => Some(LbMethod::ByRequests),
                    Some("bybusyness") => Some(LbMethod::ByBusyness),
                    Some("bytraffic") => Some(LbMethod::ByTraffic),
                    _ => None,
                },
                timeout: x["timeout"].as_u64().map(Duration::from_secs),
                max_attempts: x["maxattempts"].as_u64().map(|n| n as u32),
                sticky_force: x["nofailover"].as_bool(),
                added: x["added"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect(),
                sticky: match &x["sticky"] {
                    Value::String(d) if d == "-" => Some(None),
                    Value::Array(a) if a.len() == 2 => Some(Some(StickySession {
                        cookie: a[0].as_str().unwrap_or("").into(),
                        url_param: a[1].as_str().unwrap_or("").into(),
                    })),
                    _ => None,
                },
            };
            ch.balancers.insert(b, c);
        }
        ch
    }
}

/// Shares `snap` for the server (the `ArcSwap` the connections read), and lets its
/// control swap in the snapshots that runtime changes build.
pub fn share(snap: Snapshot) -> super::Shared {
    let control = snap.control.clone();
    let shared = Arc::new(ArcSwap::from_pointee(snap));
    let _ = control.shared.set(Arc::downgrade(&shared));
    shared
}
