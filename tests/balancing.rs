//! Balancing end to end through the binary: `lbset` tiers falling back and returning, a
//! draining member keeping its sticky sessions, `bybusyness` steering around a slow member,
//! `bytraffic` weighing bytes, and `maxattempts` bounding failover. Real members on loopback;
//! every test names which member must see which request.

mod support;
use std::time::Duration;
use support::*;

/// Which member answered (`backend NAME`).
async fn who(p: &Proxy, path: &str, headers: &[(&str, &str)]) -> String {
    let g = get(p.addr, path, headers).await;
    assert_eq!(g.status, 200, "{path}: {}", p.log_text());
    g.text().trim().trim_start_matches("backend ").to_string()
}

/// `lbset`: the lower set takes every request while one of its members is usable; when both
/// fail, the higher set takes over; when one comes back (after `retry`), traffic returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbset_falls_back_to_the_next_tier_and_returns() {
    let mut a1 = Backend::start("a1").await;
    let mut a2 = Backend::start("a2").await;
    let b1 = Backend::start("b1").await;
    let conf = "Listen 127.0.0.1:{PORT}
<Proxy balancer://dc>
BalancerMember http://a1:1 lbset=0 retry=1
BalancerMember http://a2:1 lbset=0 retry=1
BalancerMember http://b1:1 lbset=1
</Proxy>
ProxyPass /rec balancer://dc/rec
";
    let p = Proxy::start(
        conf,
        &[("a1:1", a1.addr), ("a2:1", a2.addr), ("b1:1", b1.addr)],
    );
    let mut first = Vec::new();
    for _ in 0..6 {
        first.push(who(&p, "/rec/x", &[]).await);
    }
    assert_eq!(first, ["a1", "a2", "a1", "a2", "a1", "a2"]);
    assert_eq!(
        b1.count(),
        0,
        "the second tier idles while the first serves"
    );
    // One of the first tier down: the other takes everything, still no fallback.
    a1.stop();
    for _ in 0..4 {
        assert_eq!(who(&p, "/rec/x", &[]).await, "a2");
    }
    assert_eq!(b1.count(), 0);
    // Both down: the second tier.
    a2.stop();
    for _ in 0..4 {
        assert_eq!(who(&p, "/rec/x", &[]).await, "b1");
    }
    // a1 back: once its retry timer (1 s) runs out, traffic returns to the first tier.
    a1.restart().await;
    let back = wait_for(
        async || who(&p, "/rec/x", &[]).await == "a1",
        Duration::from_secs(5),
    )
    .await;
    assert!(back.is_some(), "traffic returned to a1: {}", p.log_text());
    let before = b1.count();
    for _ in 0..4 {
        assert_eq!(who(&p, "/rec/x", &[]).await, "a1");
    }
    assert_eq!(b1.count(), before, "nothing more on the second tier");
}

/// Drain (`status=N`): a draining member gets no new sessions but keeps serving the sticky
/// ones that name its route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_member_keeps_its_sessions_and_takes_no_new_ones() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let conf = "Listen 127.0.0.1:{PORT}
<Proxy balancer://rws>
BalancerMember http://a:1 route=A status=+N
BalancerMember http://b:1 route=B
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /api balancer://rws/api
";
    let p = Proxy::start(conf, &[("a:1", a.addr), ("b:1", b.addr)]);
    for _ in 0..8 {
        assert_eq!(who(&p, "/api/new", &[]).await, "b", "no new session on A");
    }
    for _ in 0..4 {
        assert_eq!(
            who(&p, "/api/old", &[("cookie", "ROUTEID=.A")]).await,
            "a",
            "A's session stays on A"
        );
        assert_eq!(who(&p, "/api/old", &[("cookie", "ROUTEID=.B")]).await, "b");
    }
    assert_eq!(a.count(), 4);
}

/// `bybusyness`: the member with the fewest requests in flight gets the next one. A slow
/// member holding requests gets no more while the fast one is idle; `byrequests` on the same
/// members splits evenly (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bybusyness_steers_around_a_slow_member() {
    for (method, slow_max, slow_min) in [("bybusyness", 2, 1), ("byrequests", 6, 6)] {
        let slow = Backend::start("slow").await;
        slow.set_reply(Reply::Delay(Duration::from_millis(1500)));
        let fast = Backend::start("fast").await;
        let conf = format!(
            "Listen 127.0.0.1:{{PORT}}
<Proxy balancer://rp>
BalancerMember http://slow:1
BalancerMember http://fast:1
ProxySet lbmethod={method}
</Proxy>
ProxyPass /rp balancer://rp/rp
"
        );
        let p = Proxy::start(&conf, &[("slow:1", slow.addr), ("fast:1", fast.addr)]);
        // 12 requests, one every 50 ms, each left running: the slow member's answers take
        // 1.5 s, so everything it takes is still in flight when the last one is sent.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let addr = p.addr;
            tasks.push(tokio::spawn(async move {
                get(addr, &format!("/rp/{i}"), &[]).await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut names = Vec::new();
        for t in tasks {
            let g = t.await.unwrap();
            assert_eq!(g.status, 200);
            names.push(g.text());
        }
        let on_slow = names.iter().filter(|n| *n == "backend slow\n").count();
        assert!(
            (slow_min..=slow_max).contains(&on_slow),
            "{method}: {on_slow} of 12 on the slow member: {names:?}"
        );
        assert_eq!(slow.count() + fast.count(), 12);
    }
}

/// `bytraffic`: the member that moved fewer bytes gets the next request. After one member
/// streamed 4 MB, the other takes the next requests; `byrequests` would alternate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytraffic_weighs_the_bytes_moved() {
    let big = Backend::start("big").await;
    big.set_reply(Reply::Big(4 * 1024 * 1024));
    let small = Backend::start("small").await;
    let conf = "Listen 127.0.0.1:{PORT}
<Proxy balancer://dav>
BalancerMember http://big:1
BalancerMember http://small:1
ProxySet lbmethod=bytraffic
</Proxy>
ProxyPass /dav balancer://dav/dav
";
    let p = Proxy::start(conf, &[("big:1", big.addr), ("small:1", small.addr)]);
    let mut got = Vec::new();
    for i in 0..12 {
        let g = get(p.addr, &format!("/dav/{i}"), &[]).await;
        assert_eq!(g.status, 200);
        got.push(g.body.len());
    }
    // Both start at 0 bytes: config order gives the first to `big`; its 4 MB outweigh
    // every small answer after it.
    assert_eq!(got[0], 4 * 1024 * 1024, "{got:?}");
    assert_eq!(big.count(), 1, "{got:?}");
    assert_eq!(small.count(), 11);
    // Request bytes count too: a 5 MB upload goes to `small`, still the lighter one.
    let upload = vec![b'u'; 5 * 1024 * 1024];
    let mut c = Client::connect(p.addr).await;
    let g = c
        .send(req("PUT", "/dav/up", &[], body(upload)))
        .await
        .unwrap();
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "backend small\n", "small was still lighter");
    // Now `small` moved over 5 MB against `big`'s 4: the next request goes to `big`.
    assert_eq!(c.get("/dav/next", &[]).await.body.len(), 4 * 1024 * 1024);
}

/// `maxattempts=N`: after the first member fails, at most N more are tried. Three members,
/// the first two refuse connections: with `maxattempts=1` the request fails (503) without
/// reaching the third; with `maxattempts=2` the third answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxattempts_bounds_the_failover() {
    for (attempts, status, reached) in [(1, 503, 0), (2, 200, 1)] {
        let mut a = Backend::start("a").await;
        let mut b = Backend::start("b").await;
        let c = Backend::start("c").await;
        a.stop();
        b.stop();
        let conf = format!(
            "Listen 127.0.0.1:{{PORT}}
<Proxy balancer://rcs>
BalancerMember http://a:1
BalancerMember http://b:1
BalancerMember http://c:1
ProxySet maxattempts={attempts}
</Proxy>
ProxyPass /rcs balancer://rcs/rcs
"
        );
        let p = Proxy::start(&conf, &[("a:1", a.addr), ("b:1", b.addr), ("c:1", c.addr)]);
        let g = get(p.addr, "/rcs/key", &[]).await;
        assert_eq!(g.status, status, "maxattempts={attempts}: {}", p.log_text());
        assert_eq!(c.count(), reached, "maxattempts={attempts}");
        // Both failed members are now in error: the next request goes to c either way.
        assert_eq!(who(&p, "/rcs/key", &[]).await, "c");
    }
}
