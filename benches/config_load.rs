//! Loads and validates a generated 500-tenant config (500 tenant files, 5 balancers each),
//! the size of a large multi-tenant deployment. Target: under 200 ms.

use balancerd::config::{self, LoadOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write as _;

fn tenant_file(n: usize) -> String {
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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    for n in 1..=500 {
        std::fs::write(
            dir.path()
                .join(format!("conf.d/loadbalancer_tenant{n}.conf")),
            tenant_file(n),
        )
        .expect("write");
    }
    let main = dir.path().join("httpd.conf");
    std::fs::write(&main, "Listen 127.0.0.1:8080\nProxyPass /server-status !\nIncludeOptional conf.d/loadbalancer_tenant*.conf\n").expect("write");
    let l = config::load(&main, &LoadOptions::default());
    let c0 = l.config.as_ref().expect("generated config is valid");
    assert_eq!(c0.balancers.len(), 2500);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics.first());
    let mut g = c.benchmark_group("config");
    g.sample_size(20);
    g.bench_function("load_500_tenants", |b| {
        b.iter(|| config::load(&main, &LoadOptions::default()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
