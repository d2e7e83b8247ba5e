//! Access control and handlers: `Order`/`Allow`/`Deny`/`Satisfy` (mod_access_compat),
//! `Require` and `<RequireAll|Any|None>` (authz_core), `SetHandler`.

use super::{Dir, Frame, HttpdParser};

use crate::config::model::*;

impl HttpdParser<'_> {
    pub(super) fn set_handler(&mut self, d: &Dir) {
        let o = d.origin();
        let Some(v) = self.one_arg(d) else { return };
        let Some((h, li)) = self.current_location() else {
            self.err(&o, "SetHandler is only supported inside <Location>");
            return;
        };
        let handler = match v.to_ascii_lowercase().as_str() {
            "server-status" => Some(Handler::ServerStatus),
            "balancer-manager" => Some(Handler::BalancerManager),
            "metrics" => Some(Handler::Metrics),
            "ready" => Some(Handler::Ready),
            "live" => Some(Handler::Live),
            "none" => None,
            _ => {
                self.err(
                    &d.arg_origin(0),
                    format!("SetHandler {v} is not a handler balancerd has"),
                )
                .hint("balancerd serves server-status, balancer-manager, metrics, ready and live");
                return;
            }
        };
        self.ctx.builder.host_mut(h).locations[li].handler = handler;
    }

    pub(super) fn access(&mut self, d: &Dir) {
        let o = d.origin();
        if self.access_target().is_none() {
            self.err(
                &o,
                format!("{} is only meaningful inside <Location> or <Proxy>", d.name),
            )
            .hint("wrap it in <Location /path> ... </Location>");
            return;
        }
        match d.lower.as_str() {
            "order" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                let ord = match v.as_str() {
                    "deny,allow" => Order::DenyAllow,
                    "allow,deny" => Order::AllowDeny,
                    "mutual-failure" => Order::MutualFailure,
                    _ => {
                        self.err(
                            &o,
                            format!(
                                "Order '{}' is not one of deny,allow / allow,deny / mutual-failure",
                                d.arg(0).unwrap_or("")
                            ),
                        )
                        .hint("write it without spaces: Order deny,allow");
                        return;
                    }
                };
                if d.args.len() > 1 {
                    self.err(
                        &d.arg_origin(1),
                        "Order takes one word (no space after the comma)",
                    );
                }
                if let Some(a) = self.access_target() {
                    a.order = Some(ord);
                }
            }
            "allow" | "deny" => {
                if !d.arg(0).is_some_and(|f| f.eq_ignore_ascii_case("from")) {
                    self.err(&o, format!("{} must be followed by 'from'", d.name));
                    return;
                }
                if d.args.len() < 2 {
                    self.err(&o, format!("{} from needs at least one host", d.name));
                    return;
                }
                let mut list = Vec::new();
                for (i, w) in d.args.iter().enumerate().skip(1) {
                    match parse_host_match(&w.text) {
                        Ok(m) => list.push(m),
                        Err(e) => {
                            self.err(&d.arg_origin(i), e);
                        }
                    }
                }
                let allow = d.lower == "allow";
                if let Some(a) = self.access_target() {
                    if allow {
                        a.allow.extend(list);
                    } else {
                        a.deny.extend(list);
                    }
                }
            }
            "satisfy" => {
                let v = d.arg(0).unwrap_or("").to_ascii_lowercase();
                let any = match v.as_str() {
                    "any" => true,
                    "all" => false,
                    _ => {
                        self.err(&o, "Satisfy takes Any or All");
                        return;
                    }
                };
                if let Some(a) = self.access_target() {
                    a.satisfy_any = any;
                }
            }
            _ => {
                let words: Vec<String> = d.args.iter().map(|w| w.text.clone()).collect();
                match parse_require(&words) {
                    Ok(r) => {
                        if let Some(Frame::Require { items, .. }) = self.stack.last_mut() {
                            items.push(r);
                        } else {
                            self.add_require(r);
                        }
                    }
                    Err(e) => {
                        self.err(&o, e);
                    }
                }
            }
        }
    }

    pub(super) fn add_require(&mut self, node: Require) {
        if let Some(acc) = self.access_target() {
            acc.require = Some(match acc.require.take() {
                None => Require::Any(vec![node]),
                Some(Require::Any(mut v)) => {
                    v.push(node);
                    Require::Any(v)
                }
                Some(other) => Require::Any(vec![other, node]),
            });
        }
    }

    pub(super) fn access_target(&mut self) -> Option<&mut AccessRules> {
        for f in self.stack.iter().rev() {
            match f {
                Frame::Location { host, index } => {
                    let (h, i) = (*host, *index);
                    return Some(&mut self.ctx.builder.host_mut(h).locations[i].access);
                }
                Frame::Proxy { balancer, .. } => {
                    return Some(match balancer {
                        Some(bi) => self.ctx.builder.config.balancers[*bi]
                            .access
                            .get_or_insert_with(AccessRules::default),
                        None => self
                            .ctx
                            .proxy_access
                            .get_or_insert_with(AccessRules::default),
                    });
                }
                _ => {}
            }
        }
        None
    }
}

/// Parses one `Allow from` / `Deny from` host.
pub fn parse_host_match(w: &str) -> Result<HostMatch, String> {
    if w.eq_ignore_ascii_case("all") {
        return Ok(HostMatch::All);
    }
    if let Some(v) = w.strip_prefix("env=") {
        return Ok(match v.strip_prefix('!') {
            Some(n) => HostMatch::Env(n.to_string(), false),
            None => HostMatch::Env(v.to_string(), true),
        });
    }
    if let Some(net) = parse_net(w) {
        return Ok(HostMatch::Net(net));
    }
    if w.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && w.bytes().any(|b| b.is_ascii_alphabetic())
    {
        return Ok(HostMatch::Host(w.to_ascii_lowercase()));
    }
    Err(format!("'{w}' is not an address, network or host name"))
}

/// An address, CIDR, netmask form or partial IPv4 (`10.1` → 10.1.0.0/16).
pub fn parse_net(w: &str) -> Option<ipnet::IpNet> {
    use std::net::IpAddr;
    if let Ok(n) = w.parse::<ipnet::IpNet>() {
        return Some(n.trunc());
    }
    if let Ok(a) = w.parse::<IpAddr>() {
        return Some(ipnet::IpNet::from(a));
    }
    if let Some((a, m)) = w.split_once('/') {
        let a: std::net::Ipv4Addr = a.parse().ok()?;
        let m: std::net::Ipv4Addr = m.parse().ok()?;
        let bits = u32::from(m);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return None;
        }
        return ipnet::Ipv4Net::new(a, bits.leading_ones() as u8)
            .ok()
            .map(|n| ipnet::IpNet::V4(n.trunc()));
    }
    // Partial IPv4: 1 to 3 numeric octets, optionally ending in '.'.
    let t = w.strip_suffix('.').unwrap_or(w);
    let parts: Vec<&str> = t.split('.').collect();
    if (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u8>().is_ok())
    {
        let mut oct = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            oct[i] = p.parse().ok()?;
        }
        return ipnet::Ipv4Net::new(oct.into(), (parts.len() * 8) as u8)
            .ok()
            .map(ipnet::IpNet::V4);
    }
    None
}

/// Parses a `Require` line.
pub fn parse_require(words: &[String]) -> Result<Require, String> {
    let (neg, rest) = match words.first() {
        Some(w) if w.eq_ignore_ascii_case("not") => (true, &words[1..]),
        _ => (false, words),
    };
    let Some(kind) = rest.first() else {
        return Err("Require needs a provider (all, ip, host, local)".into());
    };
    let args = &rest[1..];
    let r = match kind.to_ascii_lowercase().as_str() {
        "all" => match args.first().map(|a| a.to_ascii_lowercase()) {
            Some(a) if a == "granted" => Require::AllGranted,
            Some(a) if a == "denied" => Require::AllDenied,
            _ => return Err("Require all takes granted or denied".into()),
        },
        "ip" => {
            let mut nets = Vec::new();
            for a in args {
                nets.push(
                    parse_net(a)
                        .ok_or_else(|| format!("Require ip: '{a}' is not an address or network"))?,
                );
            }
            if nets.is_empty() {
                return Err("Require ip needs at least one address".into());
            }
            Require::Ip(nets)
        }
        "host" => {
            if args.is_empty() {
                return Err("Require host needs at least one name".into());
            }
            Require::Host(args.iter().map(|a| a.to_ascii_lowercase()).collect())
        }
        "local" => Require::Local,
        other => {
            return Err(format!(
                "Require {other} is not supported (balancerd has no authentication); use all, ip, host or local"
            ));
        }
    };
    Ok(if neg { Require::Not(Box::new(r)) } else { r })
}
