//! Operations surfaces: `/server-status` behind httpd's access rules (both the 2.2 and 2.4
//! forms), `?auto`, answering while every member hangs, and the metrics page.

mod support;
use std::time::{Duration, Instant};
use support::*;

fn with_status(status_block: &str) -> String {
    format!(
        "Listen 127.0.0.1:{{PORT}}\nServerName lb.example\nProxyPass /server-status !\nProxyPass /metrics !\n{status_block}\n<Location /metrics>\nSetHandler metrics\nRequire ip 127.0.0.1\n</Location>\n<Proxy balancer://t1rws>\nBalancerMember http://a:1 route=A\nBalancerMember http://b:1 route=B\n</Proxy>\nProxyPass /t1/api balancer://t1rws/api\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_status_access_rules_22_and_24_forms() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let vendor = std::fs::read_to_string(root().join("tests/fixtures/serverstatus.conf")).unwrap();
    let modern =
        "<Location /server-status>\nSetHandler server-status\nRequire ip 127.0.0.1\n</Location>";
    for block in [vendor.as_str(), modern] {
        let p = Proxy::start(&with_status(block), &[("a:1", a.addr), ("b:1", b.addr)]);
        let g = get_from("127.0.0.1", p.addr, "/server-status").await;
        assert_eq!(g.status, 200, "{block}");
        assert!(
            g.text().trim_end().ends_with("</body></html>"),
            "{}",
            g.text()
        );
        assert!(g.text().contains("balancer://t1rws"));
        let g = get_from("127.0.0.2", p.addr, "/server-status").await;
        assert_eq!(g.status, 403, "{block}");
        let g = get_from("127.0.0.2", p.addr, "/server-status?auto").await;
        assert_eq!(g.status, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_status_auto_keys_and_member_lines() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(
        &with_status(
            "<Location /server-status>\nSetHandler server-status\nOrder deny,allow\nDeny from all\nAllow from 127.0.0.1\n</Location>",
        ),
        &[("a:1", a.addr), ("b:1", b.addr)],
    );
    for _ in 0..4 {
        get(p.addr, "/t1/api/x", &[]).await;
    }
    let g = get_from("127.0.0.1", p.addr, "/server-status?auto").await;
    assert_eq!(g.status, 200);
    let t = g.text();
    assert_eq!(
        t.lines().next(),
        Some("localhost"),
        "first line is the bare host"
    );
    for k in [
        "ServerVersion: ",
        "Total Accesses: ",
        "Total kBytes: ",
        "Uptime: ",
        "ReqPerSec: ",
        "BusyWorkers: ",
        "IdleWorkers: ",
        "Scoreboard: ",
        "ProxyBalancer[0]Name: balancer://t1rws",
        "ProxyBalancer[0]Worker[1]Route: B",
        "ProxyBalancer[0]Worker[0]Elected: 2",
    ] {
        assert!(t.contains(k), "missing {k:?} in\n{t}");
    }
    let total: u64 = t
        .lines()
        .find_map(|l| l.strip_prefix("Total Accesses: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(total >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_status_answers_at_once_while_every_member_hangs() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.set_reply(Reply::Delay(Duration::from_secs(20)));
    b.set_reply(Reply::Delay(Duration::from_secs(20)));
    let p = Proxy::start(
        &with_status(
            "<Location /server-status>\nSetHandler server-status\nRequire local\n</Location>",
        ),
        &[("a:1", a.addr), ("b:1", b.addr)],
    );
    let mut hung = Vec::new();
    for _ in 0..50 {
        let addr = p.addr;
        hung.push(tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), get(addr, "/t1/api/slow", &[])).await;
        }));
    }
    let held = wait_for(
        async || {
            a.in_flight.load(std::sync::atomic::Ordering::SeqCst)
                + b.in_flight.load(std::sync::atomic::Ordering::SeqCst)
                == 50
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(held.is_some(), "the 50 requests hang at the members");
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t0 = Instant::now();
        let g = get_from("127.0.0.1", p.addr, "/server-status?auto").await;
        worst = worst.max(t0.elapsed());
        assert_eq!(g.status, 200);
        // 50 hung proxied requests plus this status request itself (as httpd counts it).
        assert!(g.text().contains("BusyWorkers: 51"), "{}", g.text());
        assert!(g.text().contains("Worker[0]Busy: 25") && g.text().contains("Worker[1]Busy: 25"));
    }
    assert!(worst < Duration::from_millis(50), "status took {worst:?}");
    for h in hung {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_page() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    b.set_reply(Reply::Status(500));
    let p = Proxy::start(&with_status(""), &[("a:1", a.addr), ("b:1", b.addr)]);
    for _ in 0..4 {
        get(p.addr, "/t1/api/x", &[]).await;
    }
    let g = get_from("127.0.0.1", p.addr, "/metrics").await;
    assert_eq!(g.status, 200);
    let t = g.text();
    for k in [
        "balancerd_requests_total{class=\"2xx\"} 2",
        "balancerd_requests_total{class=\"5xx\"} 2",
        "balancerd_member_requests_total{tenant=\"t1\",balancer=\"balancer://t1rws\",member=\"http://b:1\",class=\"5xx\"} 2",
        "balancerd_upstream_latency_seconds_count{tenant=\"t1\",balancer=\"balancer://t1rws\",member=\"http://a:1\"} 2",
        "balancerd_member_usable{tenant=\"t1\",balancer=\"balancer://t1rws\",member=\"http://a:1\"} 1",
        "balancerd_upstream_connections_opened_total",
    ] {
        assert!(t.contains(k), "missing {k:?} in\n{t}");
    }
    assert_eq!(get_from("127.0.0.2", p.addr, "/metrics").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_access_rules_guard_proxied_paths_too() {
    let a = Backend::start("A").await;
    let p = Proxy::start(
        "Listen 127.0.0.1:{PORT}\n<Location /admin>\nRequire ip 127.0.0.1\n</Location>\nProxyPass /admin http://a:1/admin\nProxyPass /open http://a:1/open\n",
        &[("a:1", a.addr)],
    );
    assert_eq!(get_from("127.0.0.1", p.addr, "/admin/x").await.status, 200);
    assert_eq!(get_from("127.0.0.2", p.addr, "/admin/x").await.status, 403);
    assert_eq!(get_from("127.0.0.2", p.addr, "/open/x").await.status, 200);
    assert_eq!(a.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_with_balancer_variables() {
    let a = Backend::start("A").await;
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("access.log");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nLogFormat \"%h %l %u %t \\\"%r\\\" %>s %b %D route=%{{BALANCER_WORKER_ROUTE}}e changed=%{{BALANCER_ROUTE_CHANGED}}e ua=\\\"%{{User-Agent}}i\\\" backend=%{{X-Backend}}o\" balanced\nCustomLog {} balanced\n<Proxy balancer://b>\nBalancerMember http://a:1 route=R1\nProxySet stickysession=ROUTEID\n</Proxy>\nProxyPass /t1/api balancer://b/api\n",
        log.display()
    );
    let p = Proxy::start(&conf, &[("a:1", a.addr)]);
    get(p.addr, "/t1/api/x?y=1", &[("user-agent", "agent-007")]).await;
    get(p.addr, "/nope", &[]).await;
    let mut text = String::new();
    for _ in 0..40 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].contains("\"GET /t1/api/x?y=1 HTTP/1.1\" 200 10 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(" route=R1 changed=1 ua=\"agent-007\" backend=A"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /nope HTTP/1.1\" 404 "),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(" route=- changed=- "), "{}", lines[1]);
}

/// `%p`, `%{canonical}p`, `%{local}p` (the port the request arrived on) and `%{remote}p`
/// (the client's port), as httpd's mod_log_config writes them (Debian's `vhost_combined`
/// format uses `%v:%p`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_ports() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("A").await;
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("access.log");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nServerName lb.example\nLogFormat \"%v:%p %{{canonical}}p %{{local}}p %{{remote}}p %>s\" ports\nCustomLog {} ports\nProxyPass /a http://a:1/a\n",
        log.display()
    );
    let p = Proxy::start(&conf, &[("a:1", a.addr)]);
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let client_port = s.local_addr().unwrap().port();
    s.write_all(b"GET /a/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let mut text = String::new();
    for _ in 0..40 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = p.addr.port();
    assert_eq!(
        text.trim(),
        format!("lb.example:{port} {port} {port} {client_port} 200"),
        "{text}"
    );
}

/// Logs per server, as httpd keeps them: a `<VirtualHost>` with its own `CustomLog` or
/// `TransferLog` (RHEL's ssl.conf has both) logs its requests there and not to the main
/// server's log; a virtual host without one logs to the main server's; every `CustomLog` of
/// a server gets the line. `TransferLog` uses the last `LogFormat` without a nickname.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_virtual_host_logs_to_its_own_files() {
    let a = Backend::start("A").await;
    let d = tempfile::tempdir().unwrap();
    let main_log = d.path().join("main.log");
    let own_log = d.path().join("own.log");
    let transfer_log = d.path().join("transfer.log");
    let conf = format!(
        "Listen 127.0.0.1:{{PORT}}\nLogFormat \"main %v %U %>s\" m\nCustomLog {main} m\nProxyPass /a http://a:1/a\n\
         <VirtualHost *:*>\nServerName first.example\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName own.example\nLogFormat \"xfer %U %I %O\"\nTransferLog {xfer}\nCustomLog {own} \"own %U %{{SSL_PROTOCOL}}x\"\n</VirtualHost>\n",
        main = main_log.display(),
        own = own_log.display(),
        xfer = transfer_log.display()
    );
    let p = Proxy::start(&conf, &[("a:1", a.addr)]);
    get(p.addr, "/a/1", &[("host", "first.example")]).await;
    get(p.addr, "/a/2", &[("host", "own.example")]).await;
    let read = |f: &std::path::Path| std::fs::read_to_string(f).unwrap_or_default();
    for _ in 0..60 {
        if !read(&main_log).is_empty()
            && !read(&own_log).is_empty()
            && !read(&transfer_log).is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        read(&main_log).trim(),
        "main first.example /a/1 200",
        "{}",
        p.log_text()
    );
    assert_eq!(read(&own_log).trim(), "own /a/2 -");
    let xfer = read(&transfer_log);
    let words: Vec<&str> = xfer.split_whitespace().collect();
    assert_eq!(&words[..2], ["xfer", "/a/2"], "{xfer}");
    let (i, o): (u64, u64) = (words[2].parse().unwrap(), words[3].parse().unwrap());
    assert!(i > 30 && o > 30, "%I and %O count the heads: {xfer}");
}
