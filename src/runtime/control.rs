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
            }
        }
        config
    }
}

struct Inner {
    /// The config as loaded, before the changes.
    config: Config,
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
        let c = Arc::new(Control {
            shared: OnceLock::new(),
            serial: Mutex::new(()),
            inner: Mutex::new(Inner {
                config: config.clone(),
                changes: Changes::default(),
                nonces: HashMap::new(),
            }),
        });
        c.adopt_nonces(config);
        c
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
            let params = |c: &Config| find_b(c, b).map(|b| b.params);
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
            inner.config = config;
            inner.changes = changes;
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
        }
        shared.store(Arc::new(next));
        Ok(())
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
