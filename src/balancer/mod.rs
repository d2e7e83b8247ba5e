//! A balancer at runtime and its member choice, with httpd's semantics:
//! force recovery, sticky route lookup (with `redirect=`), `nofailover`, then the lbmethod
//! over lbset tiers, hot spares (R) and hot standbys (H) in httpd's order.
//!
//! `pick` borrows everything and allocates nothing.
//!
//! Layer 7. Owns: the member at runtime (spec + peer + health state, [`member`]), lbmethods,
//! sticky routes. May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`.

pub mod lbmethod;
pub mod member;
pub mod sticky;

use crate::config::model::{BalancerParams, HeaderRule, ReverseRules};
use lbmethod::Baton;
use member::MemberRt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A balancer in a snapshot.
#[derive(Debug)]
pub struct BalancerRt {
    /// `balancer://name` (`BALANCER_NAME`).
    pub full_name: Arc<str>,
    /// Members in config order.
    pub members: Vec<MemberRt>,
    /// Parameters.
    pub params: BalancerParams,
    /// `maxattempts` in effect.
    pub max_attempts: u32,
    /// `Header` rules from the `<Proxy>` section.
    pub response_headers: Vec<HeaderRule>,
    /// `RequestHeader` rules from the `<Proxy>` section.
    pub request_headers: Vec<HeaderRule>,
    /// Reverse maps scoped to this balancer.
    pub reverse: ReverseRules,
    /// Access rules of the `<Proxy>` section.
    pub access: Option<crate::config::model::AccessRules>,
    /// `SetEnv proxy-*` of the `<Proxy>` section.
    pub proxy_switches: crate::config::model::ProxySwitches,
    /// `BackupSiteRedirect`: where requests go when no member can serve.
    pub backup_site: Option<crate::config::model::BackupSite>,
    /// httpd's per-balancer lock around member choice.
    lock: Mutex<()>,
}

/// What `pick` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Use member `index`; `route_changed` sets `BALANCER_ROUTE_CHANGED`.
    Member {
        /// Index into `members`.
        index: usize,
        /// True when the pick did not honour the client's route (or balanced with sticky on).
        route_changed: bool,
        /// True when the session route was honoured.
        sticky_hit: bool,
    },
    /// `nofailover=On` and the client's route belongs to a member that cannot serve: 503.
    NoFailover,
    /// No usable member.
    NoMember,
}

impl BalancerRt {
    /// A balancer runtime.
    pub fn new(
        name: &str,
        members: Vec<MemberRt>,
        params: BalancerParams,
        max_attempts: u32,
        response_headers: Vec<HeaderRule>,
        request_headers: Vec<HeaderRule>,
        reverse: ReverseRules,
    ) -> Self {
        BalancerRt {
            full_name: Arc::from(format!("balancer://{name}")),
            members,
            params,
            max_attempts,
            response_headers,
            request_headers,
            reverse,
            access: None,
            proxy_switches: Default::default(),
            backup_site: None,
            lock: Mutex::new(()),
        }
    }

    /// Chooses a member for one attempt (httpd's `proxy_balancer_pre_request` steps 3–6).
    pub fn pick(&self, session_route: Option<&str>) -> Pick {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.force_recovery();
        if let Some(route) = session_route {
            if let Some(i) = self.find_route_worker(route, 1) {
                // Sticky hits move the byrequests counters too.
                let mut total = 0;
                for m in &self.members {
                    if m.usable() {
                        m.state.lbstatus.fetch_add(m.factor(), Relaxed);
                        total += m.factor();
                    }
                }
                let m = &self.members[i];
                m.state.lbstatus.fetch_sub(total, Relaxed);
                m.state.elected.fetch_add(1, Relaxed);
                return Pick::Member {
                    index: i,
                    route_changed: *m.route != *route,
                    sticky_hit: true,
                };
            }
            if self.params.no_failover
                && self
                    .members
                    .iter()
                    .any(|m| !m.route.is_empty() && *m.route == *route)
            {
                return Pick::NoFailover;
            }
        }
        match self.best_worker() {
            Some(i) => {
                self.members[i].state.elected.fetch_add(1, Relaxed);
                Pick::Member {
                    index: i,
                    route_changed: self.params.sticky.is_some(),
                    sticky_hit: false,
                }
            }
            None => Pick::NoMember,
        }
    }

    /// When every member is in error (after the retry check) and forcerecovery is On,
    /// clear the error of all of them.
    fn force_recovery(&self) {
        for m in &self.members {
            if !m.state.in_error.load(Relaxed) {
                return;
            }
            m.retry();
            if !m.state.in_error.load(Relaxed) {
                return;
            }
        }
        if self.params.force_recovery.unwrap_or(true) && !self.members.is_empty() {
            for m in &self.members {
                m.state.in_error.store(false, Relaxed);
            }
            tracing::warn!(balancer = %self.full_name, "every member is in error: forcing recovery");
        }
    }

    fn find_route_worker(&self, route: &str, depth: usize) -> Option<usize> {
        for standby in [false, true] {
            for (i, m) in self.members.iter().enumerate() {
                if m.is_standby() != standby || m.route.is_empty() || *m.route != *route {
                    continue;
                }
                if m.usable() {
                    return Some(i);
                }
                m.retry();
                if m.usable() {
                    return Some(i);
                }
                let redirect = &m.spec.params.redirect;
                if !redirect.is_empty()
                    && depth < self.members.len()
                    && let Some(r) = self.find_route_worker(redirect, depth + 1)
                {
                    let rm = &self.members[r];
                    if !rm.usable() {
                        rm.retry();
                    }
                    if rm.usable() {
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    /// httpd's `ap_proxy_balancer_get_best_worker`: lbset tiers ascending; in each, the
    /// normal members, then up to one hot spare per unusable member, then hot standbys.
    fn best_worker(&self) -> Option<usize> {
        let method = self.params.lbmethod;
        let max_lbset = self.members.iter().map(|m| m.spec.params.lbset).max()?;
        for lbset in 0..=max_lbset {
            let mut baton = Baton::default();
            let mut best: Option<usize> = None;
            let mut unusable = 0usize;
            for standby in [false, true] {
                if standby && best.is_some() {
                    break;
                }
                // Spares are collected in config order (no allocation: walk twice).
                for (i, m) in self.members.iter().enumerate() {
                    if m.spec.params.lbset != lbset || m.is_standby() != standby {
                        continue;
                    }
                    if m.is_draining() {
                        if !m.is_spare() && !standby {
                            unusable += 1;
                        }
                        continue;
                    }
                    if !m.usable() {
                        m.retry();
                    }
                    if m.is_spare() {
                        continue;
                    }
                    if m.usable() {
                        if lbmethod::is_best(method, m, best.map(|b| &self.members[b]), &mut baton)
                        {
                            best = Some(i);
                        }
                    } else {
                        unusable += 1;
                    }
                }
                if !standby && unusable > 0 {
                    let spares = self.members.iter().enumerate().filter(|(_, m)| {
                        m.spec.params.lbset == lbset
                            && m.is_spare()
                            && !m.is_standby()
                            && !m.is_draining()
                            && m.usable()
                    });
                    for (i, m) in spares.take(unusable) {
                        if lbmethod::is_best(method, m, best.map(|b| &self.members[b]), &mut baton)
                        {
                            best = Some(i);
                        }
                    }
                }
            }
            if let Some(b) = best {
                lbmethod::finish(method, &self.members[b], &baton);
                return Some(b);
            }
        }
        None
    }

    /// The soonest time an in-error member becomes eligible again (for `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.members.iter().filter_map(MemberRt::retry_in).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builder::parse_member_url;
    use crate::config::model::{Member, MemberParams, StatusFlags};
    use crate::config::params::apply_status;

    fn member(url: &str, route: &str, status: &str, lf: u32, lbset: u8) -> MemberRt {
        let f: Arc<str> = Arc::from("t");
        let mut p = MemberParams {
            route: route.into(),
            loadfactor: lf * 100,
            lbset,
            ..Default::default()
        };
        let mut s = StatusFlags::default();
        apply_status(&mut s, status).unwrap();
        p.status = s;
        MemberRt::new(
            Member {
                url: parse_member_url(url).unwrap().0,
                params: p,
                origin: crate::config::diag::Origin::new(&f, 1, 1),
            },
            None,
        )
    }

    fn bal(members: Vec<MemberRt>) -> BalancerRt {
        let n = members.len() as u32;
        BalancerRt::new(
            "b",
            members,
            BalancerParams::default(),
            n.saturating_sub(1),
            vec![],
            vec![],
            ReverseRules::default(),
        )
    }

    fn picks(b: &BalancerRt, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| match b.pick(None) {
                Pick::Member { index, .. } => index,
                p => panic!("{p:?}"),
            })
            .collect()
    }

    #[test]
    fn byrequests_alternates_and_weights() {
        let b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        assert_eq!(picks(&b, 4), vec![0, 1, 0, 1]);
        let b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 3, 0),
        ]);
        let p = picks(&b, 8);
        assert_eq!(p.iter().filter(|&&i| i == 0).count(), 2);
        assert_eq!(p.iter().filter(|&&i| i == 1).count(), 6);
    }

    #[test]
    fn standby_spare_and_lbset_order() {
        // lbset 0 = {dead, H}, lbset 1 = {C, D}: the standby serves.
        let b = bal(vec![
            member("http://a", "", "", 1, 0),
            member("http://h", "", "H", 1, 0),
            member("http://c", "", "", 1, 1),
            member("http://d", "", "", 1, 1),
        ]);
        b.members[0].mark_error("test");
        assert_eq!(picks(&b, 3), vec![1, 1, 1]);
        // {dead, B, C +R, D +R}: B and C alternate, D never used.
        let b = bal(vec![
            member("http://a", "", "", 1, 0),
            member("http://b", "", "", 1, 0),
            member("http://c", "", "+R", 1, 0),
            member("http://d", "", "+R", 1, 0),
        ]);
        b.members[0].mark_error("test");
        let p = picks(&b, 6);
        assert!(!p.contains(&3) && p.contains(&1) && p.contains(&2), "{p:?}");
        assert!(!p.contains(&0));
    }

    #[test]
    fn sticky_and_redirect_and_nofailover() {
        let b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        assert!(matches!(
            b.pick(Some("B")),
            Pick::Member {
                index: 1,
                route_changed: false,
                sticky_hit: true
            }
        ));
        assert!(matches!(
            b.pick(Some("zz")),
            Pick::Member {
                route_changed: false,
                sticky_hit: false,
                ..
            }
        ));
        let mut old = member("http://o", "OLD", "", 1, 0);
        old.spec.params.redirect = "NEW".into();
        let b = bal(vec![old, member("http://n", "NEW", "", 1, 0)]);
        b.members[0].mark_error("x");
        assert!(matches!(
            b.pick(Some("OLD")),
            Pick::Member {
                index: 1,
                route_changed: true,
                sticky_hit: true
            }
        ));
        let mut b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        b.params.no_failover = true;
        b.members[0].mark_error("x");
        assert_eq!(b.pick(Some("A")), Pick::NoFailover);
        assert!(matches!(
            b.pick(Some("UNKNOWN")),
            Pick::Member { index: 1, .. }
        ));
    }

    #[test]
    fn force_recovery_when_all_in_error() {
        let b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        b.members[0].mark_error("x");
        b.members[1].mark_error("x");
        assert!(matches!(b.pick(None), Pick::Member { .. }));
        let mut b = bal(vec![member("http://a", "A", "", 1, 0)]);
        b.params.force_recovery = Some(false);
        b.members[0].mark_error("x");
        assert_eq!(b.pick(None), Pick::NoMember);
        assert!(b.retry_after().is_some());
    }

    #[test]
    fn sticky_hits_move_the_byrequests_counters() {
        let b = bal(vec![
            member("http://a", "A", "", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        for _ in 0..2 {
            assert!(matches!(b.pick(Some("A")), Pick::Member { index: 0, .. }));
        }
        // A paid for both sticky hits, so the next balanced pick goes to B (a tie would
        // have gone to A).
        assert!(matches!(b.pick(None), Pick::Member { index: 1, .. }));
    }

    #[test]
    fn bybusyness_and_bytraffic() {
        let mut b = bal(vec![
            member("http://a", "", "", 1, 0),
            member("http://b", "", "", 1, 0),
        ]);
        b.params.lbmethod = crate::config::model::LbMethod::ByBusyness;
        b.members[0].state.peer.busy.store(3, Relaxed);
        assert_eq!(picks(&b, 3), vec![1, 1, 1]);
        b.members[0].state.peer.busy.store(0, Relaxed);
        b.members[1].state.peer.busy.store(1, Relaxed);
        assert_eq!(picks(&b, 2), vec![0, 0]);
        let mut t = bal(vec![
            member("http://a", "", "", 1, 0),
            member("http://b", "", "", 2, 0),
        ]);
        t.params.lbmethod = crate::config::model::LbMethod::ByTraffic;
        t.members[0].state.peer.read.store(1000, Relaxed);
        t.members[1].state.peer.read.store(1500, Relaxed);
        // b: 1500/2 = 750 < a: 1000/1.
        assert_eq!(picks(&t, 1), vec![1]);
        t.members[1].state.peer.transferred.store(1000, Relaxed);
        assert_eq!(picks(&t, 1), vec![0]);
    }

    #[test]
    fn disabled_draining_and_ignore_errors() {
        // A D member's route is balanced elsewhere with ROUTE_CHANGED.
        let b = bal(vec![
            member("http://a", "A", "D", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        assert!(matches!(
            b.pick(Some("A")),
            Pick::Member {
                index: 1,
                route_changed: false,
                sticky_hit: false
            }
        ));
        assert_eq!(picks(&b, 3), vec![1, 1, 1]);
        // N: no new sessions, but its sticky route still reaches it.
        let b = bal(vec![
            member("http://a", "A", "N", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        assert_eq!(picks(&b, 3), vec![1, 1, 1]);
        assert!(matches!(
            b.pick(Some("A")),
            Pick::Member {
                index: 0,
                sticky_hit: true,
                ..
            }
        ));
        // I: errors never take it out.
        let b = bal(vec![
            member("http://a", "A", "I", 1, 0),
            member("http://b", "B", "", 1, 0),
        ]);
        b.members[0].mark_error("x");
        assert!(b.members[0].usable());
    }
}
