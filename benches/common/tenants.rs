//! The generated multi-tenant config shared by the benchmarks: one file per tenant with the
//! vendor's layout (RWS with ROUTEID, RP, RCS with JSESSIONID, interaction receiver, WebDAV
//! with a hot standby).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Tenant `n`'s file.
pub fn tenant_file(n: usize) -> String {
    let mut s = String::new();
    let port = |i: usize| 10000 + (n * 13 + i) % 50000;
    let _ = writeln!(s, "<Proxy balancer://t{n}rws>");
    for i in 1..=3 {
        let _ = writeln!(
            s,
            "BalancerMember http://10.0.{}.{i}:{} route=T{n}RWS{i}",
            n % 250,
            port(i)
        );
    }
    let _ = writeln!(
        s,
        "Header add Set-Cookie \"ROUTEID=.%{{BALANCER_WORKER_ROUTE}}e; path=/t{n}\" env=BALANCER_ROUTE_CHANGED"
    );
    let _ = writeln!(s, "ProxySet stickysession=ROUTEID\n</Proxy>");
    let _ = writeln!(
        s,
        "ProxyPass /t{n}/api balancer://t{n}rws/api\nProxyPass /t{n}/internal-api balancer://t{n}rws/internal-api"
    );
    let _ = writeln!(
        s,
        "<Proxy balancer://t{n}rp>\nBalancerMember http://10.1.{}.1:8889\nBalancerMember http://10.1.{}.2:8889\n</Proxy>\nProxyPass /t{n}/rp/api balancer://t{n}rp/api",
        n % 250,
        n % 250
    );
    let _ = writeln!(
        s,
        "<Proxy balancer://t{n}rcs>\nBalancerMember http://10.2.{}.1:8008 disablereuse=On connectiontimeout=10000ms route=RCS1\nBalancerMember http://10.2.{}.2:8008 disablereuse=On connectiontimeout=10000ms route=RCS2\nProxySet stickysession=JSESSIONID\n</Proxy>\nProxyPass /t{n}/rcs balancer://t{n}rcs/rcs",
        n % 250,
        n % 250
    );
    let _ = writeln!(
        s,
        "<Location /t{n}/rcs>\nProxyPassReverseCookiePath \"/rcs\" \"/t{n}/rcs\"\n</Location>"
    );
    let _ = writeln!(
        s,
        "<Proxy balancer://t{n}ir>\nBalancerMember http://10.3.{}.1\nBalancerMember http://10.3.{}.2\n</Proxy>\nProxyPass /t{n}/interactionreceiver balancer://t{n}ir/interactionreceiver",
        n % 250,
        n % 250
    );
    let _ = writeln!(
        s,
        "<Proxy balancer://t{n}webdav>\nBalancerMember http://10.4.{}.1\nBalancerMember http://10.4.{}.2 status=H\n</Proxy>\nProxyPass /t{n}/recordings balancer://t{n}webdav/recordings",
        n % 250,
        n % 250
    );
    s
}

/// Writes `tenants` tenant files and a main file under `dir`; returns the main file.
pub fn write_config(dir: &Path, tenants: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    for n in 1..=tenants {
        std::fs::write(
            dir.join(format!("conf.d/loadbalancer_tenant{n}.conf")),
            tenant_file(n),
        )
        .expect("write");
    }
    let main = dir.join("httpd.conf");
    std::fs::write(&main, "Listen 127.0.0.1:8080\nProxyPass /server-status !\nIncludeOptional conf.d/loadbalancer_tenant*.conf\n").expect("write");
    main
}
