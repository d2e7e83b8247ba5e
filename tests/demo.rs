//! `balancerd demo` from the shipped config: demo members start, tenant routing, the
//! ROUTEID cookie and hot-standby failover work as the printed curl commands say.

mod support;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_shipped_config() {
    // The demo uses the shipped ports (the README's curl lines name them): a test that
    // skipped when they are busy would pass without testing anything, so it fails instead.
    for port in [8080, 8099, 9101, 9141, 9142] {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            panic!("port {port}, which the demo uses, is not free ({e}): stop what holds it");
        }
    }
    /// Kills the demo when the test ends, passed or failed (a leftover would hold the ports).
    struct Demo(Option<std::process::Child>);
    impl Drop for Demo {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut demo = Demo(Some(
        std::process::Command::new(env!("CARGO_BIN_EXE_balancerd"))
            .arg("demo")
            .current_dir(root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    for _ in 0..300 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let g = get(addr, "/t1/api/v2/me", &[]).await;
    assert_eq!(g.status, 200);
    assert!(
        g.text()
            .starts_with("member http://127.0.0.1:9101 route T1RWS1: GET /api/v2/me"),
        "{}",
        g.text()
    );
    assert_eq!(
        g.all("set-cookie"),
        vec!["ROUTEID=.T1RWS1; path=/t1".to_string()]
    );
    assert!(
        get(addr, "/t2/api/v2/me", &[])
            .await
            .text()
            .contains("route T2RWS")
    );
    let g = get(addr, "/t1/api/x", &[("cookie", "ROUTEID=.T1RWS2")]).await;
    assert!(g.text().contains("route T1RWS2"));
    let g = get(addr, "/t1/rcs/x", &[]).await;
    assert!(g.all("set-cookie")[0].ends_with("; Path=/t1/rcs"));
    assert!(
        get(addr, "/t1/recordings/a.wav", &[])
            .await
            .text()
            .contains("127.0.0.1:9141")
    );
    get("127.0.0.1:8099".parse().unwrap(), "/stop/9141", &[]).await;
    assert!(
        get(addr, "/t1/recordings/a.wav", &[])
            .await
            .text()
            .contains("127.0.0.1:9142")
    );
    let mut child = demo.0.take().expect("the demo runs");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("curl -s -b 'ROUTEID=.T1RWS2'"), "{text}");
}
