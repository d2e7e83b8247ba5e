//! The vendor's RHEL 8 tenant file, served for real: member hosts mapped to loopback
//! backends started by the test. Sticky ROUTEID and JSESSIONID routing, cookie paths,
//! `disablereuse`, and hot-standby WebDAV, as the admins' httpd behaves.

mod support;
use support::*;

fn vendor_config() -> String {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/rhel8-loadbalancer_tenant1.conf"))
            .unwrap();
    format!("Listen 127.0.0.1:{{PORT}}\n{text}")
}

struct Vendor {
    rws: Vec<Backend>,
    rcs: Vec<Backend>,
    _dav: Vec<Backend>,
    proxy: Proxy,
}

async fn vendor() -> Vendor {
    let mut rws = Vec::new();
    for i in 1..=3 {
        rws.push(Backend::start(&format!("rws{i}")).await);
    }
    let mut rcs = Vec::new();
    for i in 1..=2 {
        rcs.push(Backend::start(&format!("rcs{i}")).await);
    }
    let dav = vec![Backend::start("dav1").await, Backend::start("dav2").await];
    let rp = [Backend::start("rp1").await, Backend::start("rp2").await];
    let ir = [Backend::start("ir1").await, Backend::start("ir2").await];
    let map = vec![
        ("tlrws1:8080", rws[0].addr),
        ("tlrws2:8080", rws[1].addr),
        ("tlrws3:8080", rws[2].addr),
        ("tlrcs1:8008", rcs[0].addr),
        ("tlrcs2:8008", rcs[1].addr),
        ("tlwebdav1:80", dav[0].addr),
        ("tlwebdav2:80", dav[1].addr),
        ("tlrp1:8889", rp[0].addr),
        ("tlrp2:8889", rp[1].addr),
        ("tlir1:80", ir[0].addr),
        ("tlir2:80", ir[1].addr),
    ];
    let proxy = Proxy::start(&vendor_config(), &map);
    std::mem::forget(rp);
    std::mem::forget(ir);
    Vendor {
        rws,
        rcs,
        _dav: dav,
        proxy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rws_round_robin_with_routeid_cookie_and_stickiness() {
    let v = vendor().await;
    let a = v.proxy.addr;
    // 12 cookieless requests: members 1,2,3,1,2,3,... each with the ROUTEID cookie.
    for i in 0..12 {
        let g = get(a, &format!("/t1/api/v2/me?i={i}"), &[]).await;
        assert_eq!(g.status, 200, "{}", v.proxy.log_text());
        let n = i % 3 + 1;
        assert_eq!(g.text(), format!("backend rws{n}\n"));
        assert_eq!(
            g.all("set-cookie"),
            vec![format!("ROUTEID=.T1RWS{n}; path=/t1")]
        );
    }
    for (i, b) in v.rws.iter().enumerate() {
        assert_eq!(b.count(), 4, "member {}", i + 1);
        assert_eq!(b.last().target.split('?').next().unwrap(), "/api/v2/me");
    }
    // A sticky cookie goes to its member, with no new cookie.
    for _ in 0..3 {
        let g = get(a, "/t1/api/x", &[("cookie", "ROUTEID=.T1RWS2")]).await;
        assert_eq!(g.text(), "backend rws2\n");
        assert!(g.all("set-cookie").is_empty());
    }
    // No dot: no route, so balanced, and a cookie is issued.
    let g = get(a, "/t1/api/x", &[("cookie", "ROUTEID=T1RWS2")]).await;
    assert_eq!(g.all("set-cookie").len(), 1);
    // Member 2 stops: its cookie fails over and receives a new ROUTEID.
    let mut rws = v.rws;
    rws[1].stop();
    let g = get(a, "/t1/api/x", &[("cookie", "ROUTEID=.T1RWS2")]).await;
    assert_eq!(g.status, 200);
    assert_ne!(g.text(), "backend rws2\n");
    let c = g.all("set-cookie");
    assert_eq!(c.len(), 1);
    assert!(
        c[0] == "ROUTEID=.T1RWS1; path=/t1" || c[0] == "ROUTEID=.T1RWS3; path=/t1",
        "{c:?}"
    );
    assert!(
        v.proxy
            .log_text()
            .contains("disabling member http://tlrws2:8080"),
        "{}",
        v.proxy.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcs_jsessionid_cookie_path_param_and_connection_close() {
    let v = vendor().await;
    let a = v.proxy.addr;
    for b in &v.rcs {
        b.add_header("set-cookie", "JSESSIONID=abc.RCS_X; Path=/rcs");
    }
    for _ in 0..3 {
        let g = get(
            a,
            "/t1/rcs/x",
            &[("cookie", "JSESSIONID=abc.RCS2_Application_Name")],
        )
        .await;
        assert_eq!(g.text(), "backend rcs2\n");
    }
    // The URL form: a ;jsessionid= path parameter (stickysession JSESSIONID finds it only
    // with the JSESSIONID|jsessionid form, which is not in the vendor file; the cookie name
    // itself is searched in the URL too).
    let g = get(a, "/t1/rcs/x;JSESSIONID=abc.RCS2_Application_Name", &[]).await;
    assert_eq!(g.text(), "backend rcs2\n");
    assert_eq!(
        v.rcs[1].last().target,
        "/rcs/x;JSESSIONID=abc.RCS2_Application_Name"
    );
    // The member's cookie path /rcs reaches the client as /t1/rcs.
    assert_eq!(
        g.all("set-cookie"),
        vec!["JSESSIONID=abc.RCS_X; Path=/t1/rcs".to_string()]
    );
    // disablereuse=On: every RCS request carries Connection: close, one connection each.
    let before = v.rcs[1].conns.load(std::sync::atomic::Ordering::SeqCst);
    let mut c = Client::connect(a).await;
    for _ in 0..4 {
        let g = c
            .get(
                "/t1/rcs/y",
                &[("cookie", "JSESSIONID=abc.RCS2_Application_Name")],
            )
            .await;
        assert_eq!(g.status, 200);
        assert_eq!(v.rcs[1].last().headers["connection"], "close");
    }
    let after = v.rcs[1].conns.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - before, 4, "no RCS connection is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcs_path_parameter_with_split_sticky_names() {
    let rcs1 = Backend::start("rcs1").await;
    let rcs2 = Backend::start("rcs2").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://t1rcs>\nBalancerMember http://rcs1:8008 route=RCS1_Application_Name\nBalancerMember http://rcs2:8008 route=RCS2_Application_Name\nProxySet stickysession=JSESSIONID|jsessionid\n</Proxy>\nProxyPass /t1/rcs balancer://t1rcs/rcs\n";
    let p = Proxy::start(conf, &[("rcs1:8008", rcs1.addr), ("rcs2:8008", rcs2.addr)]);
    for _ in 0..3 {
        let g = get(
            p.addr,
            "/t1/rcs/x;jsessionid=abc.RCS2_Application_Name",
            &[],
        )
        .await;
        assert_eq!(g.text(), "backend rcs2\n");
        let g = get(
            p.addr,
            "/t1/rcs/x",
            &[("cookie", "JSESSIONID=abc.RCS2_Application_Name")],
        )
        .await;
        assert_eq!(g.text(), "backend rcs2\n");
    }
    assert_eq!(rcs1.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_hot_standby_takes_over_and_hands_back() {
    let mut primary = Backend::start("dav1").await;
    let standby = Backend::start("dav2").await;
    let conf = "Listen 127.0.0.1:{PORT}\n<Proxy balancer://tlwebdav>\nBalancerMember http://tlwebdav1 retry=1\nBalancerMember http://tlwebdav2 status=H\n</Proxy>\nProxyPass /t1/recordings balancer://tlwebdav/recordings\n";
    let p = Proxy::start(
        conf,
        &[
            ("tlwebdav1:80", primary.addr),
            ("tlwebdav2:80", standby.addr),
        ],
    );
    for _ in 0..5 {
        assert_eq!(
            get(p.addr, "/t1/recordings/a.wav", &[]).await.text(),
            "backend dav1\n"
        );
    }
    assert_eq!(
        standby.count(),
        0,
        "the standby receives nothing while the primary is up"
    );
    primary.stop();
    for _ in 0..5 {
        let g = get(p.addr, "/t1/recordings/a.wav", &[]).await;
        assert_eq!(g.text(), "backend dav2\n", "{}", p.log_text());
    }
    assert_eq!(
        standby.count(),
        5,
        "every request while the primary is down"
    );
    primary.restart().await;
    // Once its retry timer (1 s) has run out, the primary takes the next request.
    let back = wait_for(
        async || get(p.addr, "/t1/recordings/a.wav", &[]).await.text() == "backend dav1\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(
        back.is_some(),
        "the primary is used again: {}",
        p.log_text()
    );
    standby.clear();
    for _ in 0..5 {
        assert_eq!(
            get(p.addr, "/t1/recordings/a.wav", &[]).await.text(),
            "backend dav1\n"
        );
    }
    assert_eq!(
        standby.count(),
        0,
        "nothing once the primary is back and its retry passed"
    );
}
