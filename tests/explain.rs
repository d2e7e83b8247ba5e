//! `balancerd explain` on real config files: the rule that matched with its file:line (or why
//! none did), rewrites, access rules, where the sticky route came from (cookie, URL
//! parameter, path parameter) or why not, each member's eligibility and the member chosen;
//! the member request it prints is what a real member receives through the running proxy;
//! `--live` sees the running instance's runtime changes and counters.

mod support;
use std::time::Duration;
use support::*;

const CONFIG: &str = "Listen 127.0.0.1:{PORT}
ServerName lb.example
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B status=D
BalancerMember http://c:1 route=C lbset=1
BalancerMember http://s:1 route=S status=H
ProxySet stickysession=JSESSIONID|jsessionid
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
<Location /t1/api/admin>
Require ip 10.0.0.0/8
</Location>
RewriteEngine On
RewriteRule ^/old/(.*)$ /t1/api/$1 [PT]
";

fn explain(conf: &ConfDir, args: &[&str]) -> Run {
    let mut a = vec!["explain", "--config", "balancerd.conf"];
    a.extend_from_slice(args);
    let r = balancerd_in(conf.path(), &a);
    assert_eq!(r.code, 0, "explain {args:?}: {}{}", r.stdout, r.stderr);
    r
}

fn json(conf: &ConfDir, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["--format", "json"]);
    let r = explain(conf, &a);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn conf() -> ConfDir {
    let c = ConfDir::new();
    c.write("balancerd.conf", &CONFIG.replace("{PORT}", "8080"));
    c
}

/// The member marked chosen, and each member's `why`.
fn chosen(v: &serde_json::Value) -> (String, Vec<String>) {
    let members = v["members"].as_array().unwrap();
    let chosen = members
        .iter()
        .find(|m| m["chosen"] == true)
        .map(|m| m["url"].as_str().unwrap().to_string())
        .unwrap_or_default();
    let why = members
        .iter()
        .map(|m| m["why"].as_str().unwrap().to_string())
        .collect();
    (chosen, why)
}

#[test]
fn a_sticky_cookie_names_its_member_and_every_member_says_why() {
    let c = conf();
    let v = json(&c, &["GET", "/t1/api/x", "-H", "Cookie: JSESSIONID=abc.A"]);
    let routes = v["routes"].as_array().unwrap();
    let last = routes.last().unwrap();
    assert_eq!(last["result"], "matched");
    assert_eq!(last["pattern"], "/t1/api");
    assert_eq!(last["at"], "balancerd.conf:10:1");
    assert_eq!(
        v["balancer"],
        "balancer://t1rws  lbmethod=byrequests stickysession=JSESSIONID|jsessionid maxattempts=3"
    );
    assert_eq!(v["sticky"]["source"], "cookie");
    assert_eq!(v["sticky"]["name"], "JSESSIONID");
    assert_eq!(v["sticky"]["route"], "A");
    let (who, why) = chosen(&v);
    assert_eq!(who, "http://a:1");
    assert_eq!(why[0], "eligible");
    assert_eq!(why[1], "disabled (D): takes no requests");
    assert_eq!(why[2], "lbset 1: not reached (lbset 0 has a usable member)");
    assert_eq!(
        why[3],
        "hot standby (H): only when no other member of its lbset is usable"
    );
    assert!(
        v["decision"]
            .as_str()
            .unwrap()
            .contains("its route 'A' is the session's"),
        "{v}"
    );
    // The member request: the balancer's path, the client's cookie, X-Forwarded-*.
    let head = v["member_request"].as_str().unwrap();
    assert!(head.starts_with("GET /api/x HTTP/1.1\n"), "{head}");
    assert!(head.contains("\nhost: a:1\n"), "{head}");
    assert!(head.contains("\nx-forwarded-for: 127.0.0.1\n"), "{head}");
    // The same in text.
    let t = explain(&c, &["GET", "/t1/api/x", "-H", "Cookie: JSESSIONID=abc.A"]).stdout;
    assert!(
        t.contains("  1. ProxyPass /t1/api balancer://t1rws/api  balancerd.conf:10:1  -> matched"),
        "{t}"
    );
    assert!(
        t.contains("sticky:    route 'A' from the cookie JSESSIONID=abc.A"),
        "{t}"
    );
    assert!(t.contains("  => http://a:1  route=A  status=Ok"), "{t}");
}

#[test]
fn the_route_is_found_in_a_path_or_url_parameter_or_not_at_all() {
    let c = conf();
    // Path parameter naming a disabled member: the lbmethod chooses, and B says why not.
    let v = json(&c, &["GET", "/t1/api/x;jsessionid=abc.B"]);
    assert_eq!(v["sticky"]["source"], "path parameter");
    assert_eq!(v["sticky"]["route"], "B");
    let (who, why) = chosen(&v);
    assert_eq!(who, "http://a:1");
    assert_eq!(
        why[1],
        "disabled (D): takes no requests; has the session's route but cannot take it"
    );
    assert!(
        v["decision"]
            .as_str()
            .unwrap()
            .contains("no usable member has the session's route 'B'"),
        "{v}"
    );
    // URL parameter naming the lbset-1 member: a sticky route crosses tiers (httpd).
    let v = json(&c, &["GET", "/t1/api/x?jsessionid=abc.C"]);
    assert_eq!(v["sticky"]["source"], "URL parameter");
    assert_eq!(chosen(&v).0, "http://c:1");
    // A value without the separator: no route, and why.
    let v = json(&c, &["GET", "/t1/api/x", "-H", "Cookie: JSESSIONID=abcA"]);
    assert_eq!(v["sticky"]["route"], serde_json::Value::Null);
    assert_eq!(
        v["sticky"]["why_not"],
        "the value 'abcA' has no '.' (stickysessionsep): httpd takes the route after it"
    );
    let v = json(&c, &["GET", "/t1/api/x"]);
    assert_eq!(
        v["sticky"]["why_not"],
        "no 'jsessionid' URL or path parameter and no 'JSESSIONID' cookie"
    );
}

#[test]
fn rewrites_access_rules_and_unmatched_paths_are_explained() {
    let c = conf();
    let v = json(&c, &["GET", "/old/y"]);
    assert_eq!(v["rewrites"][0]["pattern"], "^/old/(.*)$");
    assert_eq!(v["rewrites"][0]["at"], "balancerd.conf:15:1");
    assert_eq!(v["path"], "/t1/api/y");
    assert!(
        v["member_request"]
            .as_str()
            .unwrap()
            .starts_with("GET /api/y HTTP/1.1\n")
    );

    let v = json(&c, &["GET", "/t1/api/admin/x", "--client", "192.168.1.9"]);
    assert_eq!(v["locations"][0]["at"], "balancerd.conf:11:1");
    assert_eq!(v["locations"][0]["access"], "denied for 192.168.1.9");
    assert_eq!(
        v["answer"],
        "403 Forbidden: refused by the access rules of the <Location> above"
    );
    assert_eq!(v["member_request"], serde_json::Value::Null);
    let v = json(&c, &["GET", "/t1/api/admin/x", "--client", "10.1.2.3"]);
    assert_eq!(v["locations"][0]["access"], "allowed for 10.1.2.3");
    assert_eq!(chosen(&v).0, "http://a:1");

    let t = explain(&c, &["GET", "/t2/api/x"]).stdout;
    assert!(
        t.contains("  1. ProxyPass /t1/api balancer://t1rws/api  balancerd.conf:10:1  -> no match"),
        "{t}"
    );
    assert!(
        t.contains(
            "answer:    404 Not Found: no ProxyPass matched and nothing else serves the path"
        ),
        "{t}"
    );
    // A usage error is exit 2.
    let r = balancerd_in(
        c.path(),
        &[
            "explain",
            "--config",
            "balancerd.conf",
            "GET",
            "/",
            "-H",
            "nocolon",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// What `explain` prints as the member request is what the member receives through the
/// running proxy (same request line, same fields).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_request_is_what_the_member_receives() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let config = "Listen 127.0.0.1:{PORT}
ServerName lb.example
ProxyVia On
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
ProxySet stickysession=ROUTEID
</Proxy>
RequestHeader set X-Tenant t1
ProxyPass /t1/api balancer://t1rws/api
";
    let p = Proxy::start(config, &[("a:1", a.addr), ("b:1", b.addr)]);
    let headers = [
        ("Host", "agents.example:8443"),
        ("Cookie", "ROUTEID=.B"),
        ("Accept", "application/json"),
        ("X-Request-Id", "r-17"),
    ];
    let got = get(p.addr, "/t1/api/calls/7?since=3", &headers).await;
    assert_eq!(got.text().trim(), "backend B");
    let seen = b.seen.lock().unwrap()[0].clone();

    let mut args = vec!["GET", "/t1/api/calls/7?since=3"];
    let hs: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    for h in &hs {
        args.push("-H");
        args.push(h);
    }
    let v = json(&p.conf, &args);
    let head = v["member_request"].as_str().unwrap().to_string();
    let mut lines = head.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{} {} HTTP/1.1", seen.method, seen.target)
    );
    let mut told: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    let mut received: Vec<(String, String)> = seen
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    told.sort();
    received.sort();
    assert_eq!(told, received, "{head}");
    assert!(told.contains(&("x-tenant".into(), "t1".into())));
    assert!(told.iter().any(|(k, _)| k == "via"));
}

/// `--live` reads the running instance: a member drained with `ctl` is shown drained and
/// takes no new session, its sticky clients still reach it, and the counters are the
/// instance's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sees_the_running_instances_changes_and_counters() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("balancerd.pid");
    let config = format!(
        "Listen 127.0.0.1:{{PORT}}
ServerName lb.example
PidFile {}
<Proxy balancer://t1rws>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
BalancerMember http://c:1 route=C
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1/api balancer://t1rws/api
",
        pid.display()
    );
    // C's port is closed: the first request that picks it puts it in error.
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Proxy::start(
        &config,
        &[("a:1", a.addr), ("b:1", b.addr), ("c:1", closed)],
    );
    let socket = dir.path().join("balancerd.pid.ctl");
    let ready = wait_for(async || socket.exists(), Duration::from_secs(10)).await;
    assert!(ready.is_some(), "no admin socket at {}", socket.display());
    let r = balancerd_in(
        p.conf.path(),
        &[
            "ctl",
            "--config",
            "balancerd.conf",
            "drain",
            "t1rws",
            "http://a:1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // byrequests alternates B and C; C fails to connect (E) and B answers every request.
    for _ in 0..3 {
        assert_eq!(
            get(p.addr, "/t1/api/x", &[]).await.text().trim(),
            "backend B"
        );
    }

    // Without --live: the config with the changes kept in <PidFile>.state (A drained), and
    // no counters or error states.
    let v = json(&p.conf, &["GET", "/t1/api/x"]);
    assert_eq!(v["live"], false);
    assert_eq!(v["members"][0]["status"], "N");
    assert_eq!(v["members"][1]["elected"], 0);
    assert_eq!(v["members"][2]["status"], "Ok");
    // With --live: C is in error with its retry time, and the counters are the instance's.
    let v = json(&p.conf, &["GET", "/t1/api/x", "--live"]);
    assert_eq!(v["live"], true);
    let (who, why) = chosen(&v);
    assert_eq!(who, "http://b:1");
    assert_eq!(v["members"][0]["status"], "N");
    assert_eq!(why[0], "draining (N): only requests carrying its route");
    assert_eq!(v["members"][1]["elected"], 3);
    assert_eq!(v["members"][2]["status"], "E");
    assert!(
        why[2].starts_with("in error (E): retried in "),
        "{}",
        why[2]
    );
    // A's sticky client still reaches A.
    let v = json(
        &p.conf,
        &["GET", "/t1/api/x", "--live", "-H", "Cookie: ROUTEID=.A"],
    );
    assert_eq!(chosen(&v).0, "http://a:1");
    assert_eq!(
        get(p.addr, "/t1/api/x", &[("cookie", "ROUTEID=.A")])
            .await
            .text()
            .trim(),
        "backend A"
    );
    // No admin socket: a clear error, exit 1.
    let r = balancerd_in(
        p.conf.path(),
        &[
            "explain",
            "--config",
            "balancerd.conf",
            "--live",
            "--socket",
            "/nonexistent.ctl",
            "GET",
            "/t1/api/x",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot reach /nonexistent.ctl"),
        "{}",
        r.stderr
    );
}
