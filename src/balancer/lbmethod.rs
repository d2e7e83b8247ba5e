//! The load-balancing methods, as httpd's `is_best` callbacks (httpd-semantics §5).
//! Called with the balancer's lock held; each offered member's counters move as in httpd.

use super::member::MemberRt;
use crate::config::model::LbMethod;
use std::sync::atomic::Ordering::Relaxed;

/// Per-pick scratch state of a method.
#[derive(Debug, Default)]
pub struct Baton {
    /// Sum of the factors of the members offered (byrequests, bybusyness).
    pub total_factor: i64,
    /// Lowest traffic seen (bytraffic).
    pub min_traffic: u64,
}

/// Offers `cur` against the best so far; returns true when `cur` is the new best.
pub fn is_best(
    method: LbMethod,
    cur: &MemberRt,
    best: Option<&MemberRt>,
    baton: &mut Baton,
) -> bool {
    match method {
        LbMethod::ByRequests => {
            let s = cur.state.lbstatus.fetch_add(cur.factor(), Relaxed) + cur.factor();
            baton.total_factor += cur.factor();
            best.is_none_or(|b| s > b.state.lbstatus.load(Relaxed))
        }
        LbMethod::ByBusyness => {
            let s = cur.state.lbstatus.fetch_add(cur.factor(), Relaxed) + cur.factor();
            baton.total_factor += cur.factor();
            let Some(b) = best else { return true };
            let (cb, bb) = (
                cur.state.peer.busy.load(Relaxed),
                b.state.peer.busy.load(Relaxed),
            );
            cb < bb || (cb == bb && s > b.state.lbstatus.load(Relaxed))
        }
        LbMethod::ByTraffic => {
            let f = cur.factor().max(1) as u64;
            let traffic = cur.state.peer.transferred.load(Relaxed) / f
                + cur.state.peer.read.load(Relaxed) / f;
            if best.is_none() || traffic < baton.min_traffic {
                baton.min_traffic = traffic;
                true
            } else {
                false
            }
        }
    }
}

/// After a pick: the winner pays for the round (byrequests, bybusyness).
pub fn finish(method: LbMethod, winner: &MemberRt, baton: &Baton) {
    if matches!(method, LbMethod::ByRequests | LbMethod::ByBusyness) {
        winner.state.lbstatus.fetch_sub(baton.total_factor, Relaxed);
    }
}
