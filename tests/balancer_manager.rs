//! The balancer-manager on real sockets: the page and httpd's XML, updates taken only as
//! httpd takes them (a POST form with the balancer's nonce and a same-host `Referer`), the
//! stricter cross-site checks, escaping and the page's headers, traffic following a drain,
//! and changes across a reload. `tests/httpd_diff.rs` pins the same updates against httpd.

mod support;
use std::time::Duration;
use support::*;

const CONFIG: &str = "Listen 127.0.0.1:{PORT}
ServerName lb.example
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
ProxySet stickysession=ROUTEID
</Proxy>
Header add Set-Cookie \"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1\" env=BALANCER_ROUTE_CHANGED
ProxyPass /balancer-manager !
ProxyPass /t1/api balancer://t1rws/api
<Location /balancer-manager>
SetHandler balancer-manager
Require ip 127.0.0.1
</Location>
";

/// One raw exchange (Connection: close), the whole answer.
async fn ask(addr: std::net::SocketAddr, req: String) -> String {
    raw(addr, req.as_bytes(), Duration::from_secs(5)).await.0
}

/// A POST of `form` to the manager with `extra` header lines.
async fn post(addr: std::net::SocketAddr, form: &str, extra: &str) -> String {
    ask(
        addr,
        format!(
            "POST /balancer-manager HTTP/1.1\r\nHost: lb.example\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .await
}

async fn xml(addr: std::net::SocketAddr) -> String {
    ask(
        addr,
        format!("GET /balancer-manager?xml=1 HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
    )
    .await
}

/// The nonce of balancer `name` from the manager's page.
async fn nonce(addr: std::net::SocketAddr, name: &str) -> String {
    let page = ask(
        addr,
        "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    let tag = format!("?b={name}&amp;nonce=");
    let at = page
        .find(&tag)
        .unwrap_or_else(|| panic!("no nonce for {name}: {page}"))
        + tag.len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The `<httpd:status>` of each worker in the XML, in order.
fn statuses(xml: &str) -> Vec<String> {
    xml.split("<httpd:status>")
        .skip(1)
        .map(|s| s.split("</httpd:status>").next().unwrap().to_string())
        .collect()
}

fn field(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<httpd:{tag}>");
    let close = format!("</httpd:{tag}>");
    xml.split(open.as_str())
        .skip(1)
        .map(|s| s.split(close.as_str()).next().unwrap().to_string())
        .collect()
}

/// Runs `balancerd ctl WHERE… ARGS…`: exit code, stdout, stderr.
fn balancerd_ctl(where_: &[&str], args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_balancerd"))
        .arg("ctl")
        .args(where_)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const REF: &str = "Referer: http://lb.example/balancer-manager\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_xml_list_balancers_and_members() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let page = ask(
        p.addr,
        "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    for h in [
        "cache-control: no-store",
        "x-frame-options: deny",
        "content-security-policy: default-src 'none'",
        "content-type: text/html",
    ] {
        assert!(head.contains(h), "{h}: {head}");
    }
    assert!(
        page.contains("LoadBalancer Status for <a href=\"/balancer-manager?b=t1rws&amp;nonce="),
        "{page}"
    );
    assert!(
        page.contains(">http://a:1</a>") && page.contains(">http://b:1</a>"),
        "{page}"
    );
    assert!(
        page.contains("<td>ROUTEID</td>") || page.contains("<td>ROUTEID"),
        "{page}"
    );
    let n = nonce(p.addr, "t1rws").await;
    assert_eq!(n.len(), 32, "{n}");
    // The worker form.
    let form = ask(
        p.addr,
        format!("GET /balancer-manager?b=t1rws&w=http://a:1&nonce={n} HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(
        form.contains("Edit worker settings for http://a:1"),
        "{form}"
    );
    assert!(
        form.contains("name='w_status_N'") && form.contains(&format!("value='{n}'")),
        "{form}"
    );
    // The balancer form.
    let form = ask(
        p.addr,
        format!("GET /balancer-manager?b=t1rws&nonce={n} HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(
        form.contains("Edit balancer settings for balancer://t1rws"),
        "{form}"
    );
    assert!(
        form.contains("name='b_lbm'") && form.contains("name='b_ss'"),
        "{form}"
    );
    let x = xml(p.addr).await;
    assert!(
        x.contains("content-type: text/xml")
            || x.to_ascii_lowercase().contains("content-type: text/xml"),
        "{x}"
    );
    assert!(
        x.contains("<httpd:name>balancer://t1rws</httpd:name>"),
        "{x}"
    );
    assert_eq!(field(&x, "route"), ["A", "B"]);
    assert_eq!(statuses(&x), ["Init Ok ", "Init Ok "]);
    assert_eq!(field(&x, "stickysession"), ["ROUTEID"]);
    assert_eq!(field(&x, "lbmethod"), ["byrequests"]);
    // Access rules hold: a client from another address gets 403.
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut c = s.connect(p.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.write_all(b"GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_apply_only_from_a_same_host_post_with_the_nonce() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let n = nonce(p.addr, "t1rws").await;
    let drain = format!("b=t1rws&w=http%3A%2F%2Fa%3A1&nonce={n}&w_status_N=1");
    // Refused, each answered 200 with the page and nothing changed.
    let refused = [
        // A GET query: only b, w, nonce and xml are read from it.
        (
            ask(p.addr, format!("GET /balancer-manager?{drain} HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n")).await,
            "GET query",
        ),
        (post(p.addr, &drain, "").await, "no Referer"),
        (post(p.addr, &drain, "Referer: http://evil.example/x\r\n").await, "other Referer"),
        (
            post(p.addr, &drain.replace(&n, "0123456789abcdef0123456789abcdef"), REF).await,
            "wrong nonce",
        ),
        (post(p.addr, &drain.replace(&format!("&nonce={n}"), ""), REF).await, "no nonce"),
        (
            post(p.addr, &drain, &format!("{REF}Origin: http://evil.example\r\n")).await,
            "cross-site Origin",
        ),
        (
            post(p.addr, &drain, &format!("{REF}Sec-Fetch-Site: cross-site\r\n")).await,
            "cross-site fetch",
        ),
    ];
    for (answer, why) in &refused {
        assert!(answer.starts_with("HTTP/1.1 200 "), "{why}: {answer}");
        assert_eq!(
            statuses(&xml(p.addr).await),
            ["Init Ok ", "Init Ok "],
            "{why}"
        );
    }
    assert!(
        p.log_text()
            .contains("ignoring params in balancer-manager cross-site access")
    );
    // Taken: same host, the nonce, a POST (a browser's same-origin headers are fine).
    let ok = post(
        p.addr,
        &drain,
        &format!("{REF}Origin: http://lb.example\r\nSec-Fetch-Site: same-origin\r\n"),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    let x = xml(p.addr).await;
    assert_eq!(statuses(&x), ["Init Drn Ok ", "Init Ok "], "{x}");
    p.wait_log(
        "balancer-manager: balancer://t1rws http://a:1: status N 0 -> 1",
        1,
        Duration::from_secs(5),
    )
    .await;
    let log = p.log_text();
    assert!(
        log.contains("balancer-manager: balancer://t1rws http://a:1: status N 0 -> 1")
            && log.contains("127.0.0.1"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_parameter_as_httpd_reads_it() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let n = nonce(p.addr, "t1rws").await;
    let w = |form: &str| format!("b=t1rws&w=http://b:1&nonce={n}&{form}");
    // Member: factor, set, route, redirect, each status flag on and off.
    post(p.addr, &w("w_lf=2.5&w_ls=3&w_wr=B2&w_rr=A"), REF).await;
    let x = xml(p.addr).await;
    assert_eq!(
        field(&x, "loadfactor")[2..4],
        ["2.50".to_string(), "2.50".to_string()],
        "{x}"
    );
    assert_eq!(field(&x, "lbset"), ["0", "3"]);
    assert_eq!(field(&x, "route"), ["A", "B2"]);
    assert_eq!(field(&x, "redirect"), ["", "A"]);
    // Out of range: ignored (factor 1..100, set 0..99); an over-long route clears it.
    post(
        p.addr,
        &w(&format!("w_lf=101&w_ls=100&w_wr={}", "r".repeat(64))),
        REF,
    )
    .await;
    let x = xml(p.addr).await;
    assert_eq!(field(&x, "lbset"), ["0", "3"]);
    assert_eq!(field(&x, "route"), ["A", ""]);
    for (flag, word) in [
        ("I", "Ign"),
        ("D", "Dis"),
        ("H", "Stby"),
        ("R", "Spar"),
        ("S", "Stop"),
        ("N", "Drn"),
    ] {
        post(p.addr, &w(&format!("w_status_{flag}=1")), REF).await;
        let s = statuses(&xml(p.addr).await);
        assert!(s[1].contains(word), "{flag}: {s:?}");
        post(p.addr, &w(&format!("w_status_{flag}=0")), REF).await;
        let s = statuses(&xml(p.addr).await);
        assert!(!s[1].contains(word), "{flag} off: {s:?}");
    }
    // Balancer: lbmethod, timeout, maxattempts, sticky force, sticky session.
    let bal = |form: &str| format!("b=t1rws&nonce={n}&{form}");
    post(
        p.addr,
        &bal("b_lbm=bybusyness&b_tmo=7&b_max=2&b_sforce=1&b_ss=JSESSIONID|jsessionid"),
        REF,
    )
    .await;
    let x = xml(p.addr).await;
    assert_eq!(field(&x, "lbmethod"), ["bybusyness"], "{x}");
    assert_eq!(field(&x, "timeout")[0], "7");
    assert_eq!(field(&x, "maxattempts"), ["2"]);
    assert_eq!(field(&x, "nofailover"), ["On"]);
    assert_eq!(field(&x, "stickysession"), ["JSESSIONID"]);
    // Out of range or unknown: ignored; '-' removes the sticky session.
    post(
        p.addr,
        &bal("b_lbm=nosuch&b_tmo=7201&b_max=100&b_ss=-"),
        REF,
    )
    .await;
    let x = xml(p.addr).await;
    assert_eq!(field(&x, "lbmethod"), ["bybusyness"]);
    assert_eq!(field(&x, "timeout")[0], "7");
    assert_eq!(field(&x, "maxattempts"), ["2"]);
    assert!(field(&x, "stickysession").is_empty(), "{x}");
    // Values are escaped on the page and in the XML.
    post(p.addr, &w("w_wr=%3Cscript%3Ex%3C%2Fscript%3E"), REF).await;
    let x = xml(p.addr).await;
    assert!(
        x.contains("&lt;script&gt;x&lt;/script&gt;") && !x.contains("<script>"),
        "{x}"
    );
    let page = ask(
        p.addr,
        "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(!page.contains("<script>"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_member_keeps_its_sessions_and_gets_no_new_ones() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let n = nonce(p.addr, "t1rws").await;
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_status_N=1"),
        REF,
    )
    .await;
    assert!(statuses(&xml(p.addr).await)[0].contains("Drn"));
    // New clients: all to B.
    for _ in 0..10 {
        let g = get(p.addr, "/t1/api/x", &[]).await;
        assert_eq!(g.text().trim(), "backend B");
    }
    // A client sticky to A stays with A.
    for _ in 0..5 {
        let g = get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.A")]).await;
        assert_eq!(g.text().trim(), "backend A");
    }
    // Disabled: it takes no requests, so its sticky clients move too.
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_status_N=0&w_status_D=1"),
        REF,
    )
    .await;
    for _ in 0..5 {
        let g = get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.A")]).await;
        assert_eq!(g.text().trim(), "backend B");
    }
    // Enabled again: new clients reach A.
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_status_D=0"),
        REF,
    )
    .await;
    let mut seen_a = false;
    for _ in 0..6 {
        seen_a |= get(p.addr, "/t1/api/x", &[]).await.text().trim() == "backend A";
    }
    assert!(seen_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_survive_a_reload_unless_the_config_changed_that_member() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let n = nonce(p.addr, "t1rws").await;
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_status_D=1"),
        REF,
    )
    .await;
    post(
        p.addr,
        &format!("b=t1rws&w=http://b:1&nonce={n}&w_ls=2"),
        REF,
    )
    .await;
    let reload = |p: &Proxy| {
        let before = p.log_text().matches("reloaded").count();
        let _ = balancerd::app::send_signal(p.pid(), libc::SIGHUP);
        for _ in 0..200 {
            if p.log_text().matches("reloaded").count() > before {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no reload: {}", p.log_text());
    };
    // The same config: both changes stay, and so does the nonce.
    reload(&p);
    let x = xml(p.addr).await;
    assert_eq!(statuses(&x), ["Init Dis ", "Init Ok "], "{x}");
    assert_eq!(field(&x, "lbset"), ["0", "2"]);
    assert_eq!(nonce(p.addr, "t1rws").await, n);
    // The config changes member b (its factor): b's runtime change gives way, a's stays.
    let text = std::fs::read_to_string(p.conf.path().join("balancerd.conf")).unwrap();
    p.conf.write(
        "balancerd.conf",
        &text.replace(
            "BalancerMember http://b:1 route=B",
            "BalancerMember http://b:1 route=B loadfactor=2",
        ),
    );
    reload(&p);
    let x = xml(p.addr).await;
    assert_eq!(statuses(&x), ["Init Dis ", "Init Ok "], "{x}");
    assert_eq!(field(&x, "lbset"), ["0", "0"], "{x}");
    assert!(
        p.log_text()
            .contains("the reloaded config changed this member")
    );
}

/// `balancerd ctl` through the admin socket beside the PidFile: the same changes as the
/// manager's form, from a script, and the state as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_changes_the_running_instance_through_its_admin_socket() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let p = Proxy::start(
        &format!("{CONFIG}PidFile {}\n", pid.display()),
        &[("a:1", a.addr), ("b:1", b.addr)],
    );
    let socket = dir.path().join("balancerd.pid.ctl");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let conf = p.conf.path().join("balancerd.conf");
    let conf = conf.display().to_string();
    let ctl = |args: &[&str]| balancerd_ctl(&["--config", &conf], args);
    let (code, out, err) = ctl(&["status"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balancers"][0]["name"], "balancer://t1rws");
    assert_eq!(v["balancers"][0]["members"][0]["status"], "Ok");
    // Drain A: new clients go to B, A's sticky clients stay.
    let (code, out, err) = ctl(&["drain", "t1rws", "http://a:1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("changed: status N 0 -> 1"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balancers"][0]["members"][0]["status"], "N");
    assert_eq!(v["balancers"][0]["members"][0]["changed_at_runtime"], true);
    for _ in 0..4 {
        assert_eq!(
            get(p.addr, "/t1/api/x", &[]).await.text().trim(),
            "backend B"
        );
    }
    assert_eq!(
        get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.A")])
            .await
            .text()
            .trim(),
        "backend A"
    );
    // The manager's XML shows the same.
    assert_eq!(statuses(&xml(p.addr).await)[0], "Init Drn Ok ");
    // Settings by name; a member may be named by its route.
    let (code, _, err) = ctl(&["set", "t1rws", "B", "factor=2", "lbset=1", "status=+H"]);
    assert_eq!(code, 0, "{err}");
    let x = xml(p.addr).await;
    assert_eq!(field(&x, "lbset"), ["0", "1"]);
    assert!(statuses(&x)[1].contains("Stby"), "{x}");
    let (code, _, err) = ctl(&["set", "t1rws", "lbmethod=bybusyness", "nofailover=on"]);
    assert_eq!(code, 0, "{err}");
    let x = xml(p.addr).await;
    assert_eq!(field(&x, "lbmethod"), ["bybusyness"]);
    assert_eq!(field(&x, "nofailover"), ["On"]);
    // Enable clears D, N and S.
    let (code, _, err) = ctl(&["enable", "t1rws", "http://a:1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(statuses(&xml(p.addr).await)[0], "Init Ok ");
    // Mistakes are errors that say what is wrong.
    let (code, _, err) = ctl(&["drain", "t1rws", "http://nosuch:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no member http://nosuch:1"), "{err}");
    let (code, _, err) = ctl(&["set", "t1rws", "B", "colour=blue"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown setting 'colour'"), "{err}");
    let (code, _, _) = ctl(&["frobnicate"]);
    assert_eq!(code, 2);
    p.wait_log("admin socket", 1, Duration::from_secs(5)).await;
}

/// With a PidFile, changes are kept in `<PidFile>.state` and survive a restart, unless the
/// config changed that member meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_survive_a_restart_through_the_state_file() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let config = format!("{CONFIG}PidFile {}\n", pid.display());
    let hosts = [("a:1", a.addr), ("b:1", b.addr)];
    let p = Proxy::start(&config, &hosts);
    let n = nonce(p.addr, "t1rws").await;
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_status_N=1"),
        REF,
    )
    .await;
    post(
        p.addr,
        &format!("b=t1rws&w=http://b:1&nonce={n}&w_ls=2"),
        REF,
    )
    .await;
    post(
        p.addr,
        &format!("b=t1rws&nonce={n}&b_lbm=bybusyness&b_ss=-"),
        REF,
    )
    .await;
    let state = dir.path().join("balancerd.pid.state");
    assert!(state.exists());
    drop(p);
    // The same config after a restart: every change is back.
    let p = Proxy::start(&config, &hosts);
    let x = xml(p.addr).await;
    assert_eq!(
        statuses(&x),
        ["Init Drn Ok ", "Init Ok "],
        "{x}\n{}",
        p.log_text()
    );
    assert_eq!(field(&x, "lbset"), ["0", "2"]);
    assert_eq!(field(&x, "lbmethod"), ["bybusyness"]);
    assert!(field(&x, "stickysession").is_empty(), "{x}");
    assert!(
        p.log_text()
            .contains("balancer-manager change kept from before the restart")
    );
    drop(p);
    // The config changed member b meanwhile: its change is dropped, a's stays.
    let changed = config.replace(
        "BalancerMember http://b:1 route=B",
        "BalancerMember http://b:1 route=B loadfactor=3",
    );
    let p = Proxy::start(&changed, &hosts);
    let x = xml(p.addr).await;
    assert_eq!(statuses(&x), ["Init Drn Ok ", "Init Ok "], "{x}");
    assert_eq!(field(&x, "lbset"), ["0", "0"], "{x}");
    assert!(
        p.log_text()
            .contains("the config changed this member since its balancer-manager change")
    );
}

/// `b_nwrkr` with `b_wyes=1` adds a member as httpd does: within the balancer's `growth`,
/// disabled until enabled; another one past the growth, or one it has, is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_within_growth_starts_disabled() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let c = Backend::start("C").await;
    let config = CONFIG.replace(
        "ProxySet stickysession=ROUTEID",
        "ProxySet stickysession=ROUTEID growth=1",
    );
    let p = Proxy::start(
        &config,
        &[("a:1", a.addr), ("b:1", b.addr), ("c:1", c.addr)],
    );
    let n = nonce(p.addr, "t1rws").await;
    let form = ask(
        p.addr,
        format!("GET /balancer-manager?b=t1rws&nonce={n} HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(form.contains("name='b_nwrkr'"), "{form}");
    // Without the confirmation box: nothing.
    post(
        p.addr,
        &format!("b=t1rws&nonce={n}&b_nwrkr=http://c:1"),
        REF,
    )
    .await;
    assert_eq!(statuses(&xml(p.addr).await).len(), 2);
    let added = post(
        p.addr,
        &format!("b=t1rws&nonce={n}&b_nwrkr=http%3A%2F%2Fc%3A1&b_wyes=1"),
        REF,
    )
    .await;
    assert!(added.starts_with("HTTP/1.1 200 "), "{added}");
    let x = xml(p.addr).await;
    assert_eq!(statuses(&x), ["Init Ok ", "Init Ok ", "Init Dis "], "{x}");
    // Disabled: no traffic yet. Enabled: it serves.
    for _ in 0..6 {
        assert_ne!(
            get(p.addr, "/t1/api/x", &[]).await.text().trim(),
            "backend C"
        );
    }
    post(
        p.addr,
        &format!("b=t1rws&w=http://c:1&nonce={n}&w_status_D=0"),
        REF,
    )
    .await;
    let mut served_c = false;
    for _ in 0..9 {
        served_c |= get(p.addr, "/t1/api/x", &[]).await.text().trim() == "backend C";
    }
    assert!(served_c);
    // Past the growth, or a member it has: 400, nothing added.
    for url in ["http://d:1", "http://a:1"] {
        let r = post(
            p.addr,
            &format!("b=t1rws&nonce={n}&b_nwrkr={url}&b_wyes=1"),
            REF,
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{url}: {r}");
    }
    assert_eq!(statuses(&xml(p.addr).await).len(), 3);
}

/// The member form's health-check fields (mod_proxy_hcheck's `w_hm`, `w_hi`, `w_hp`,
/// `w_hf`, `w_hu`): switching a member's check on from the manager starts the checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_set_from_the_member_form() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let n = nonce(p.addr, "t1rws").await;
    let form = ask(
        p.addr,
        format!("GET /balancer-manager?b=t1rws&w=http://a:1&nonce={n} HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
    )
    .await;
    for f in [
        "name='w_hm'",
        "name='w_hi'",
        "name='w_hp'",
        "name='w_hf'",
        "name='w_hu'",
        "name='w_he'",
    ] {
        assert!(form.contains(f), "{f}: {form}");
    }
    let before = a.count();
    // The absence of checks: only a bounded wait shows it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(a.count(), before, "no checks before");
    // Too short an interval (httpd's floor is 100 ms) and a bad method are ignored.
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_hm=BREW&w_hi=50"),
        REF,
    )
    .await;
    // Again an absence: a bounded wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.count(), before);
    post(
        p.addr,
        &format!("b=t1rws&w=http://a:1&nonce={n}&w_hm=GET&w_hi=200&w_hp=1&w_hf=2&w_hu=%2Fhealth"),
        REF,
    )
    .await;
    let checked = wait_for(async || a.count() >= before + 2, Duration::from_secs(5)).await;
    assert!(
        checked.is_some(),
        "checks every 200 ms: {}",
        a.count() - before
    );
    assert_eq!(a.last().target, "/health");
    let page = ask(
        p.addr,
        "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(page.contains("<td>GET</td><td>200ms</td><td>1 ("), "{page}");
    assert!(page.contains("<td>/health</td>"), "{page}");
    assert!(
        p.log_text().contains("hcmethod 'None' -> 'GET'"),
        "{}",
        p.log_text()
    );
}

/// The state as JSON over HTTP (`Accept: application/json`, no `Referer` needed to read),
/// and `balancerd ctl --url` changing the instance through the manager itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_over_http_and_ctl_through_the_manager_url() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let answer = ask(
        p.addr,
        "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["balancers"][0]["name"], "balancer://t1rws");
    assert_eq!(v["balancers"][0]["nonce"], nonce(p.addr, "t1rws").await);
    assert_eq!(v["balancers"][0]["members"][1]["route"], "B");
    let url = format!("http://{}/balancer-manager", p.addr);
    let ctl = |args: &[&str]| balancerd_ctl(&["--url", &url], args);
    let (code, out, err) = ctl(&["drain", "t1rws", "A"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balancers"][0]["members"][0]["status"], "N", "{out}");
    assert_eq!(statuses(&xml(p.addr).await)[0], "Init Drn Ok ");
    let (code, out, _) = ctl(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"status_words\": \"Init Drn Ok\""), "{out}");
    let (code, _, err) = ctl(&["drain", "t1rws", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("no member nosuch"), "{err}");
}
