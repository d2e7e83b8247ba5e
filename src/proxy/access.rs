//! Access rules evaluated as httpd does (httpd-semantics §11): mod_access_compat's
//! `Order`/`Allow`/`Deny` and authz_core's `Require`, combined by `Satisfy` (All by
//! default: both must grant). The client address is the socket's, never a header.

use crate::config::model::{AccessRules, HostMatch, Order, Require};
use std::net::IpAddr;

fn host_matches(m: &HostMatch, ip: IpAddr) -> bool {
    match m {
        HostMatch::All => true,
        HostMatch::Net(n) => n.contains(&ip),
        // Host names need a double reverse lookup; balancerd does not resolve clients.
        HostMatch::Host(_) => false,
        // No request environment variables are set before access checks.
        HostMatch::Env(_, wanted) => !wanted,
    }
}

fn compat(r: &AccessRules, ip: IpAddr) -> bool {
    let allow = r.allow.iter().any(|m| host_matches(m, ip));
    let deny = r.deny.iter().any(|m| host_matches(m, ip));
    match r.order.unwrap_or_default() {
        // Start allowed; a Deny match denies; an Allow match allows again.
        Order::DenyAllow => !deny || allow,
        // Start denied; an Allow match allows; a Deny match denies again.
        Order::AllowDeny => allow && !deny,
        Order::MutualFailure => allow && !deny,
    }
}

fn require(r: &Require, ip: IpAddr) -> bool {
    match r {
        Require::AllGranted => true,
        Require::AllDenied => false,
        Require::Ip(nets) => nets.iter().any(|n| n.contains(&ip)),
        Require::Host(_) => false,
        Require::Local => ip.is_loopback(),
        Require::Not(x) => !require(x, ip),
        Require::All(v) => v.iter().all(|x| require(x, ip)),
        Require::Any(v) => v.iter().any(|x| require(x, ip)),
        Require::None(v) => !v.iter().any(|x| require(x, ip)),
    }
}

/// True when `ip` may access a section with these rules.
pub fn allowed(r: &AccessRules, ip: IpAddr) -> bool {
    let uses_compat = r.order.is_some() || !r.allow.is_empty() || !r.deny.is_empty();
    let c = uses_compat.then(|| compat(r, ip));
    let a = r.require.as_ref().map(|x| require(x, ip));
    match (c, a) {
        (None, None) => true,
        (Some(c), None) => c,
        (None, Some(a)) => a,
        (Some(c), Some(a)) => {
            if r.satisfy_any {
                c || a
            } else {
                c && a
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::httpd::{parse_host_match, parse_require};

    fn rules(order: Option<Order>, allow: &[&str], deny: &[&str]) -> AccessRules {
        AccessRules {
            order,
            allow: allow.iter().map(|a| parse_host_match(a).unwrap()).collect(),
            deny: deny.iter().map(|a| parse_host_match(a).unwrap()).collect(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn compat_orders_as_httpd() {
        let vendor = rules(Some(Order::DenyAllow), &["127.0.0.1"], &["all"]);
        assert!(allowed(&vendor, ip("127.0.0.1")));
        assert!(!allowed(&vendor, ip("127.0.0.2")));
        assert!(
            !allowed(&vendor, ip("::1")),
            "IPv4 rules do not match ::1 (httpd trap)"
        );
        let r = rules(Some(Order::DenyAllow), &["127.0.0.2"], &["127.0.0.0/8"]);
        assert!(allowed(&r, ip("127.0.0.2")) && !allowed(&r, ip("127.0.0.1")));
        let r = rules(Some(Order::AllowDeny), &["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(
            !allowed(&r, ip("127.0.0.2"))
                && allowed(&r, ip("127.0.0.1"))
                && allowed(&r, ip("127.0.0.3"))
        );
    }

    #[test]
    fn satisfy_combines_both() {
        // Order deny,allow (the default) allows everyone not denied: deny all explicitly.
        let mut r = rules(None, &["127.0.0.1"], &["all"]);
        r.require = Some(Require::Any(vec![
            parse_require(&["all".into(), "denied".into()]).unwrap(),
        ]));
        assert!(!allowed(&r, ip("127.0.0.1")));
        r.satisfy_any = true;
        assert!(allowed(&r, ip("127.0.0.1")));
        assert!(!allowed(&r, ip("10.0.0.1")));
    }
}
