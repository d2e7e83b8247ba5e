//! Data-centre failover with two sites, each a balancerd with its own members, a client
//! that follows redirects (as the SR Service and the browser do):
//! - with site 1's RWS tier up, API requests are served at site 1;
//! - when every site-1 RWS member fails its health check, site 1 redirects API requests
//!   (`BackupSiteRedirect`, 307, same path and query plus the marker) to site 2, which
//!   serves them;
//! - the Workspace entry URL always gets `?site-1=<site 2>` (`SiteRedirect`), an existing
//!   query kept and an existing `site-1` not duplicated;
//! - when site 1's members come back, traffic returns once their checks pass;
//! - with both sites down, the marked request gets 503 at site 2: never a loop.
//!
//! The timeline (when the redirect started and stopped) is printed.

mod support;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

/// One GET on a new connection: status, `Location`, body.
async fn fetch(addr: SocketAddr, target: &str, host: &str) -> (u16, Option<String>, String) {
    let mut c = Client::connect(addr).await;
    let g = c.get(target, &[("host", host)]).await;
    (g.status, g.header("location"), g.text().trim().to_string())
}

/// Follows redirects between the two sites (at most 5): the final status and body, and the
/// sites visited.
async fn follow(sites: &[(String, SocketAddr)], mut url: String) -> (u16, String, Vec<String>) {
    let mut visited = Vec::new();
    for _ in 0..5 {
        let (base, addr) = sites
            .iter()
            .find(|(b, _)| url.starts_with(b.as_str()))
            .unwrap_or_else(|| panic!("no site for {url}"));
        visited.push(base.clone());
        let target = &url[base.len()..];
        let host = base.trim_start_matches("http://");
        let (status, location, body) = fetch(*addr, target, host).await;
        match (status, location) {
            (301 | 302 | 303 | 307 | 308, Some(l)) => url = l,
            _ => return (status, body, visited),
        }
    }
    panic!("redirect loop: {visited:?}");
}

fn site_config(port: u16, rws: SocketAddr, gws: SocketAddr, other: u16) -> String {
    format!(
        "Listen 127.0.0.1:{port}
ServerName 127.0.0.1
SiteRedirect agents.example.com/ui http://127.0.0.1:{port} 127.0.0.1:{other}
<Proxy balancer://rws>
  BalancerMember http://{rws} route=R hcmethod=GET hcuri=/health hcinterval=200ms
  BackupSiteRedirect http://127.0.0.1:{other}
</Proxy>
<Proxy balancer://gws>
  BalancerMember http://{gws} route=G
  ProxySet stickysession=GWSID
</Proxy>
Header add Set-Cookie \"GWSID=.%{{BALANCER_WORKER_ROUTE}}e; path=/ui\" env=BALANCER_ROUTE_CHANGED
ProxyPass /api balancer://rws/api
ProxyPass /ui balancer://gws/ui
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_fail_over_and_back_without_loops() {
    let mut rws1 = Backend::start("site1-rws").await;
    let gws1 = Backend::start("site1-gws").await;
    let mut rws2 = Backend::start("site2-rws").await;
    let gws2 = Backend::start("site2-gws").await;
    let (p1, p2) = (free_port(), free_port());
    let c1 = ConfDir::new();
    c1.write("site.conf", &site_config(p1, rws1.addr, gws1.addr, p2));
    let c2 = ConfDir::new();
    c2.write("site.conf", &site_config(p2, rws2.addr, gws2.addr, p1));
    let s1 = Proxy::start_in(c1, "site.conf", p1, &[]);
    let s2 = Proxy::start_in(c2, "site.conf", p2, &[]);
    let sites = vec![
        (format!("http://127.0.0.1:{p1}"), s1.addr),
        (format!("http://127.0.0.1:{p2}"), s2.addr),
    ];
    let site1 = sites[0].0.clone();
    let t0 = Instant::now();
    let mut timeline = Vec::new();

    // Site 1 up: served locally.
    let (st, body, via) = follow(&sites, format!("{site1}/api/calls?x=1")).await;
    assert_eq!((st, body.as_str()), (200, "backend site1-rws"), "{via:?}");
    assert_eq!(via.len(), 1);

    // The Workspace entry URL (common host) always names the backup site.
    let (st, loc, _) = fetch(s1.addr, "/ui/index.html?lang=fr", "agents.example.com").await;
    assert_eq!(st, 302);
    assert_eq!(
        loc.as_deref(),
        Some(format!("{site1}/ui/index.html?lang=fr&site-1=127.0.0.1:{p2}").as_str())
    );
    let (_, loc, _) = fetch(s1.addr, "/ui/?site-1=elsewhere", "agents.example.com:443").await;
    assert_eq!(
        loc.as_deref(),
        Some(format!("{site1}/ui/?site-1=elsewhere").as_str()),
        "an existing site-1 is kept, not duplicated"
    );
    let (_, loc, _) = fetch(s1.addr, "/ui", "agents.example.com").await;
    assert_eq!(loc, Some(format!("{site1}/ui?site-1=127.0.0.1:{p2}")));
    // Following it: the local site serves the app, and its sticky cookie is set there.
    let mut c = Client::connect(s1.addr).await;
    let g = c
        .get("/ui/index.html?site-1=x", &[("host", "127.0.0.1")])
        .await;
    assert_eq!(g.text().trim(), "backend site1-gws");
    assert!(
        g.all("set-cookie")
            .iter()
            .any(|v| v == "GWSID=.G; path=/ui"),
        "{:?}",
        g.all("set-cookie")
    );
    // Other hosts and paths are not redirected.
    assert_eq!(fetch(s1.addr, "/api/x", "agents.example.com").await.0, 200);

    // Every site-1 RWS member down: its health check marks it, and API requests go to site 2.
    rws1.kill().await;
    let down = Instant::now();
    let redirected = wait_for(
        async || fetch(s1.addr, "/api/calls?x=1", "127.0.0.1").await.0 == 307,
        Duration::from_secs(10),
    )
    .await
    .expect("site 1 never redirected to site 2");
    timeline.push(format!(
        "{:>6.2}s site-1 RWS killed; {:.2}s later site 1 redirects API requests to site 2",
        (down - t0).as_secs_f64(),
        redirected.as_secs_f64()
    ));
    let (st, loc, _) = fetch(s1.addr, "/api/calls?x=1", "127.0.0.1").await;
    assert_eq!(st, 307);
    assert_eq!(
        loc,
        Some(format!("http://127.0.0.1:{p2}/api/calls?x=1&bd-failover=1"))
    );
    let (st, body, via) = follow(&sites, format!("{site1}/api/calls?x=1")).await;
    assert_eq!((st, body.as_str()), (200, "backend site2-rws"), "{via:?}");
    assert_eq!(via.len(), 2);
    // The entry URL still names the backup site.
    let (_, loc, _) = fetch(s1.addr, "/ui/", "agents.example.com").await;
    assert_eq!(loc, Some(format!("{site1}/ui/?site-1=127.0.0.1:{p2}")));

    // Both sites down: site 2 refuses the marked request with 503 (no loop).
    rws2.kill().await;
    wait_for(
        async || fetch(s2.addr, "/api/x", "127.0.0.1").await.0 == 307,
        Duration::from_secs(10),
    )
    .await
    .expect("site 2 never saw its member down");
    let (st, _, via) = follow(&sites, format!("{site1}/api/calls?x=1")).await;
    assert_eq!(st, 503, "{via:?}");
    assert_eq!(via.len(), 2, "{via:?}");
    timeline.push(format!(
        "{:>6.2}s both sites down: site 1 -> site 2 -> 503 (marked request), no loop",
        t0.elapsed().as_secs_f64()
    ));
    assert!(
        s2.log_text()
            .contains("the request came from the backup site")
    );

    // Site 1 back: once its check passes, served locally again.
    rws1.restart().await;
    rws2.restart().await;
    let up = Instant::now();
    let back = wait_for(
        async || fetch(s1.addr, "/api/calls", "127.0.0.1").await.0 == 200,
        Duration::from_secs(10),
    )
    .await
    .expect("site 1 did not take its traffic back");
    timeline.push(format!(
        "{:>6.2}s site-1 RWS back; {:.2}s later site 1 serves API requests again (redirects stopped)",
        (up - t0).as_secs_f64(),
        back.as_secs_f64()
    ));
    let (st, body, via) = follow(&sites, format!("{site1}/api/calls?x=1")).await;
    assert_eq!((st, body.as_str()), (200, "backend site1-rws"), "{via:?}");
    eprintln!("two sites:\n{}", timeline.join("\n"));
}
