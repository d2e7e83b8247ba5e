//! `balancerd check` on real files: the vendor's published blocks, the shipped examples,
//! and the traps and lints an admin replacing httpd meets. Runs the real binary.

mod support;
use std::path::Path;
use support::*;

fn golden(name: &str) -> (String, String) {
    let dir = root().join("tests/fixtures");
    let out = std::fs::read_to_string(dir.join(format!("{name}.summary"))).unwrap();
    let err = std::fs::read_to_string(dir.join(format!("{name}.diagnostics"))).unwrap();
    (out, err)
}

fn fixture(name: &str) -> Run {
    balancerd(&["check", "--config", &format!("tests/fixtures/{name}.conf")])
}

#[test]
fn rhel8_tenant_file_loads_with_wrapped_line_warnings() {
    let r = fixture("rhel8-loadbalancer_tenant1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = "tests/fixtures/rhel8-loadbalancer_tenant1.conf";
    assert_eq!(
        r.heads(),
        vec![
            format!(
                "{f}:7:1: warning: line 7 holds only 'env=BALANCER_ROUTE_CHANGED'; joined to the Header directive on line 6 (httpd rejects this file: Invalid command 'env=BALANCER_ROUTE_CHANGED')"
            ),
            format!(
                "{f}:23:1: warning: line 23 holds only 'route=RCS1_Application_Name'; joined to the BalancerMember directive on line 22 (httpd rejects this file: Invalid command 'route=RCS1_Application_Name')"
            ),
            format!(
                "{f}:25:1: warning: line 25 holds only 'route=RCS2_Application_Name'; joined to the BalancerMember directive on line 24 (httpd rejects this file: Invalid command 'route=RCS2_Application_Name')"
            ),
            format!(
                "{f}:1:1: note: no Listen directive: this file is checked on its own (as a tenant file included from the main config); it serves nothing by itself"
            ),
        ]
    );
    // The joined words took effect: routes on the RCS members, env= on the Header.
    assert!(r.stdout.contains("http://tlrcs1:8008  route=RCS1_Application_Name  status=-  lbset=0  loadfactor=1  disablereuse=On  connectiontimeout=10000ms"));
    assert!(
        r.stdout
            .contains("balancer://tlwebdav  lbmethod=byrequests maxattempts=1")
    );
    assert!(
        r.stdout
            .contains("    http://tlwebdav2  route=-  status=H  lbset=0  loadfactor=1")
    );
    let (out, err) = golden("rhel8-loadbalancer_tenant1");
    assert_eq!(r.stdout, out);
    assert_eq!(r.stderr, err);
}

#[test]
fn rhel6_second_proxy_section_is_merged_with_a_warning() {
    let r = fixture("rhel6-loadbalancer_tenant1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = "tests/fixtures/rhel6-loadbalancer_tenant1.conf";
    let heads = r.heads();
    assert!(heads.contains(&format!(
        "{f}:21:1: warning: balancer://tlrws is defined again here; it was first defined at {f}:2:1. httpd merges both sections into one balancer: the members http://tlrws1:8008, http://tlrws2:8008 join the 3 member(s) defined there; the last stickysession wins: JSESSIONID (line 26) replaces ROUTEID (line 8) for every member"
    )), "{heads:#?}");
    // The consequence shows in the lint too: the ROUTEID cookie is never read back.
    assert!(heads.contains(&format!(
        "{f}:6:1: warning: this Header sets the cookie ROUTEID but balancer://tlrws reads stickysession=JSESSIONID: the cookie is never read back, so sessions do not stick"
    )));
    assert_eq!(heads.len(), 6, "{heads:#?}");
    // Five members in the merged balancer, the last sticky name.
    assert!(
        r.stdout.contains(
            "balancer://tlrws  lbmethod=byrequests stickysession=JSESSIONID maxattempts=4"
        )
    );
    let (out, err) = golden("rhel6-loadbalancer_tenant1");
    assert_eq!(r.stdout, out);
    assert_eq!(r.stderr, err);
}

#[test]
fn tls_block_stray_space_is_an_error_with_hint() {
    let r = fixture("rhel8-tls-rws");
    assert_eq!(r.code, 1);
    let f = "tests/fixtures/rhel8-tls-rws.conf";
    assert_eq!(
        r.heads(),
        vec![
            format!(
                "{f}:6:1: warning: line 6 holds only 'env=BALANCER_ROUTE_CHANGED'; joined to the Header directive on line 5 (httpd rejects this file: Invalid command 'env=BALANCER_ROUTE_CHANGED')"
            ),
            format!(
                "{f}:7:10: error: ProxySet parameter 'sticky' is not in the form key=value (httpd: \"Invalid ProxySet parameter\")"
            ),
            format!(
                "{f}:2:16: warning: member https://tlrws1:8080 uses https but SSLProxyEngine is not On: httpd fails every request to it with 500"
            ),
            format!(
                "{f}:1:1: note: no Listen directive: this file is checked on its own (as a tenant file included from the main config); it serves nothing by itself"
            ),
        ]
    );
    assert!(
        r.stderr
            .contains("= hint: write stickysession=ROUTEID (no space inside the parameter name)")
    );
    assert!(
        r.stderr
            .contains(" 7 | ProxySet sticky session=ROUTEID\n   |          ^\n")
    );
    assert!(r.stdout.is_empty(), "no summary for an invalid config");
    let (_, err) = golden("rhel8-tls-rws");
    assert_eq!(r.stderr, err);
}

#[test]
fn serverstatus_block_with_trailing_spaces_loads() {
    let r = fixture("serverstatus");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("/server-status -> server-status (access rules)")
    );
    let (out, err) = golden("serverstatus");
    assert_eq!(r.stdout, out);
    assert_eq!(r.stderr, err);
}

#[test]
fn shipped_configs_are_valid_and_summarised() {
    for cfg in ["conf/balancerd.conf", "conf/balancerd.toml"] {
        let r = balancerd(&["check", "--config", cfg, "--strict"]);
        assert_eq!(r.code, 0, "{cfg}: {}", r.stderr);
        assert!(r.heads().is_empty(), "{cfg}: {:?}", r.heads());
        for needle in [
            "listeners:\n  127.0.0.1:808",
            "tenants:\n  t1 (7 routes)\n  t2 (2 routes)\n",
            "balancer://t1rws  lbmethod=byrequests stickysession=ROUTEID maxattempts=2",
            "    http://127.0.0.1:9142  route=-  status=H  lbset=0  loadfactor=1",
            "routes (match order):\n  1. /server-status -> ! (not proxied)",
            "  2. /t1/api -> balancer://t1rws/api",
        ] {
            assert!(
                r.stdout.contains(needle),
                "{cfg}: missing {needle:?} in\n{}",
                r.stdout
            );
        }
    }
    // The default config path is conf/balancerd.conf.
    let r = balancerd(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn json_format_carries_diagnostics_and_summary() {
    let r = balancerd(&[
        "check",
        "--config",
        "tests/fixtures/rhel8-tls-rws.conf",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 1);
    let d = &v["diagnostics"][1];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "tests/fixtures/rhel8-tls-rws.conf");
    assert_eq!(d["line"], 7);
    assert_eq!(d["col"], 10);
    assert_eq!(
        d["hint"],
        "write stickysession=ROUTEID (no space inside the parameter name)"
    );

    let r = balancerd(&[
        "check",
        "--config",
        "conf/balancerd.conf",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["summary"]["balancers"][0]["name"], "balancer://t1rws");
    assert_eq!(
        v["summary"]["balancers"][0]["members"][1]["route"],
        "T1RWS2"
    );
    assert_eq!(v["summary"]["routes"][1]["match"], "/t1/api");
}

#[test]
fn exit_codes_strict_and_usage() {
    let r = fixture("rhel8-loadbalancer_tenant1");
    assert_eq!(r.code, 0);
    let r = balancerd(&[
        "check",
        "--strict",
        "--config",
        "tests/fixtures/rhel8-loadbalancer_tenant1.conf",
    ]);
    assert_eq!(r.code, 1, "warnings fail under --strict");
    let r = balancerd(&["check", "--format", "yaml"]);
    assert_eq!(r.code, 2);
    let r = balancerd(&["frobnicate"]);
    assert_eq!(r.code, 2);
    let r = balancerd(&["check", "--config", "no/such/file.conf"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("error: cannot read no/such/file.conf"),
        "{}",
        r.stderr
    );
}

/// httpd-semantics §14.51: the startup errors httpd gives, each with file:line.
#[test]
fn httpd_startup_errors_are_errors_with_positions() {
    let d = ConfDir::new();
    let cases: &[(&str, &str)] = &[
        (
            "ProxySet balancer://nope stickysession=X",
            "a.conf:1:10: error: ProxySet can not find 'balancer://nope'",
        ),
        (
            "BalancerMember balancer://b http://h loadfactor=0.5",
            "a.conf:1:38: error: loadfactor=0.5: must be a number from 1 to 100",
        ),
        (
            "BalancerMember balancer://b http://h status=X",
            "a.conf:1:38: error: status=X: unknown status letter 'X'",
        ),
        (
            "BalancerMember balancer://b http://h connectiontimeout=10000MS",
            "a.conf:1:38: error: connectiontimeout=10000MS: unknown unit 'MS'",
        ),
        (
            &"BalancerMember balancer://b http://h route=R".replace('R', &"r".repeat(64)),
            "a.conf:1:38: error: route is 64 characters long; httpd allows at most 63",
        ),
        (
            "BalancerMember balancer://b http://h colour=blue",
            "a.conf:1:38: error: unknown member parameter 'colour'",
        ),
        (
            "BalancerMember balancer://b http://h lbfactor=2",
            "a.conf:1:38: error: unknown member parameter 'lbfactor'",
        ),
        (
            "BalancerMember balancer://b http://h timeout=500ms",
            "a.conf:1:38: error: timeout=500ms: httpd reads timeout as whole seconds and ignores the unit, so this means 500 seconds",
        ),
        (
            "ProxyPass /c http://h/c # comment",
            "a.conf:1:25: error: '#' here is not a comment",
        ),
        (
            "Include missing.conf",
            "a.conf:1:9: error: Include missing.conf: no such file",
        ),
        (
            "Listen 8080\nListen 8080",
            "a.conf:2:1: error: Cannot define multiple Listeners on the same IP:port (0.0.0.0:8080)",
        ),
        (
            "ProxyRequests On",
            "a.conf:1:1: error: ProxyRequests On makes httpd a forward proxy",
        ),
        (
            "ProxyPass /x balancer://b/x lbfactor=2\nBalancerMember balancer://b http://h",
            "a.conf:1:29: error: unknown balancer parameter 'lbfactor'",
        ),
        (
            "Frobnicate on",
            "a.conf:1:1: error: unknown directive 'Frobnicate'",
        ),
        (
            "BalancerMembr balancer://b http://h",
            "a.conf:1:1: error: unknown directive 'BalancerMembr'",
        ),
        (
            "<Proxy balancer://b>\nBalancerMember http://h\n",
            "a.conf:2:1: error: missing </Proxy> at the end of the file",
        ),
        (
            "ProxyPass /x unix:/run/app.sock|http://h/",
            "a.conf:1:14: error: unix: sockets are not supported",
        ),
    ];
    for (text, want) in cases {
        d.write("a.conf", text);
        let r = d.check("a.conf");
        assert_eq!(r.code, 1, "{text}: {}", r.stderr);
        assert!(
            r.heads().iter().any(|h| h.starts_with(want)),
            "{text}: want {want:?} in {:#?}",
            r.heads()
        );
    }
    // Hints where they help.
    d.write("a.conf", "BalancerMembr balancer://b http://h");
    assert!(
        d.check("a.conf")
            .stderr
            .contains("= hint: did you mean BalancerMember?")
    );
    d.write("a.conf", "BalancerMember balancer://b http://h lbfactor=2");
    assert!(
        d.check("a.conf")
            .stderr
            .contains("= hint: write loadfactor=")
    );
    d.write(
        "a.conf",
        "BalancerMember balancer://b http://h timeout=500ms",
    );
    assert!(
        d.check("a.conf")
            .stderr
            .contains("= hint: write timeout=1 for about 500 ms")
    );
}

/// httpd-semantics §14.51: what httpd accepts, balancerd accepts (with a warning where
/// httpd is silent).
#[test]
fn httpd_accepted_quirks() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        &format!(
            "IncludeOptional nothing/*.conf\nIncludeOptional missing.conf\n<Proxy balancer://b>\nBalancerMember http://h route=A\nProxySet stickysession={}\n</Proxy>\nProxyPass /x balancer://b/x\n",
            "S".repeat(80)
        ),
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let heads = r.heads();
    assert!(
        heads.iter().any(
            |h| h.starts_with("a.conf:5:10: warning: stickysession name 'SSSS")
                && h.contains("is 80 characters long; httpd silently truncates it to 63")
        ),
        "{heads:#?}"
    );
    assert!(
        r.stdout
            .contains(&format!("stickysession={} ", "S".repeat(63)))
    );
}

#[test]
fn lints_httpd_never_gives() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        r#"Listen 127.0.0.1:8080
<Proxy balancer://t1rws>
BalancerMember http://a:8080 route=R1
BalancerMember http://b:8080 route=R1
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t2" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=JSESSIONID
</Proxy>
<Proxy balancer://t1dav>
BalancerMember http://c status=H
BalancerMember http://d status=+H
</Proxy>
<Proxy balancer://t2rws>
BalancerMember http://e:8080
BalancerMember http://f:8080
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass /t1 balancer://t1rws/
ProxyPass /t1/api balancer://t1rws/api
ProxyPass /t1/dav balancer://t1dav/dav
ProxyPass /t2/api balancer://t2rws/api
ProxyPass /t2/api/x !
"#,
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let heads = r.heads();
    let want = [
        "a.conf:19:1: warning: ProxyPass /t1/api can never match: the earlier ProxyPass /t1 at a.conf:18:1 matches every path it would",
        "a.conf:20:1: warning: ProxyPass /t1/dav can never match",
        "a.conf:22:1: warning: ProxyPass /t2/api/x can never match: the earlier ProxyPass /t2/api at a.conf:21:1",
        "a.conf:4:16: warning: route 'R1' is also used by http://a:8080 (a.conf:3:16) in balancer://t1rws",
        "a.conf:8:1: warning: every member of balancer://t1dav is a hot standby (status=H)",
        "a.conf:5:1: warning: this Header sets the cookie ROUTEID but balancer://t1rws reads stickysession=JSESSIONID",
        "a.conf:5:1: warning: the ROUTEID cookie is set with path=/t2, which does not cover /t1 (ProxyPass at a.conf:18:1)",
        "a.conf:16:10: warning: stickysession=ROUTEID is set but no member of balancer://t2rws has a route",
        "a.conf:15:1: warning: the ROUTEID cookie with path=/ is sent to several tenants (t1, t2)",
    ];
    for w in want {
        assert!(
            heads.iter().any(|h| h.starts_with(w)),
            "missing {w:?} in {heads:#?}"
        );
    }
    assert_eq!(heads.len(), want.len() + 1, "{heads:#?}"); // +1: path=/t2 also misses /t1/api
    // A balancer used by ProxyPass with no members loads, as in httpd (which starts and
    // answers 503 "No workers in balancer"; some products add members at run time), with a
    // warning that also suggests a misspelt name.
    d.write("b.conf", "ProxyPass /t3/api balancer://t3rws/api\n");
    let r = d.check("b.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.heads()
            .iter()
            .any(|h| h.starts_with("b.conf:1:1: warning: balancer://t3rws has no members")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("check the spelling of the balancer name"));
}

#[test]
fn tls_traps() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "Listen 127.0.0.1:8080\nSSLProxyEngine On\n<Proxy balancer://b>\nBalancerMember https://h:8443\n</Proxy>\nProxyPass /x balancer://b/x\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0);
    assert!(r.heads().iter().any(|h| h.starts_with("a.conf:2:1: warning: SSLProxyEngine On without SSLProxyVerify require: member certificates are not verified")), "{:#?}", r.heads());
    d.write(
        "a.conf",
        "Listen 127.0.0.1:8080\n<Proxy balancer://b>\nBalancerMember https://h:8443\n</Proxy>\nProxyPass /x balancer://b/x\n",
    );
    let r = d.check("a.conf");
    assert_eq!(
        r.code, 1,
        "https without SSLProxyEngine in a complete config"
    );
    assert!(r.heads()[0].starts_with(
        "a.conf:3:16: error: member https://h:8443 uses https but SSLProxyEngine is not On"
    ));
    d.write(
        "a.conf",
        "Listen 127.0.0.1:8080\nSSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCACertificateFile ca.pem\n<Proxy balancer://b>\nBalancerMember https://h:8443\n</Proxy>\nProxyPass /x balancer://b/x\n",
    );
    // A missing CA file is an error with file:line...
    let r = d.check("a.conf");
    assert_eq!(r.code, 1);
    assert!(
        r.heads()[0].starts_with("a.conf:4:27: error: cannot read"),
        "{:#?}",
        r.heads()
    );
    // ...and with a real one the config is clean.
    assert_eq!(balancerd_in(d.path(), &["gen-certs", "."]).code, 0);
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.heads().is_empty(), "{:#?}", r.heads());
}

#[test]
fn includes_defines_sections_and_mixed_dialects() {
    let d = ConfDir::new();
    d.write(
        "main.conf",
        "Define TENANTS tenants\nListen 127.0.0.1:8080\n<IfModule mod_proxy.c>\nProxyPass /server-status !\n</IfModule>\n<IfModule mod_jk.c>\nJkMount /* worker\n</IfModule>\n<IfDefine !NOPE>\nIncludeOptional ${TENANTS}/*.conf\n</IfDefine>\nInclude extra.toml\n",
    );
    d.write("tenants/t1.conf", "<Proxy balancer://t1rws>\nBalancerMember http://127.0.0.1:9101 route=A\n</Proxy>\nProxyPass /t1/api balancer://t1rws/api\n");
    d.write("tenants/t2.conf", "<Proxy balancer://t2rws>\nBalancerMember http://127.0.0.1:9201\n</Proxy>\nProxyPass /t2/api balancer://t2rws/api\n");
    d.write("tenants/.hidden.conf", "garbage line\n");
    d.write(
        "extra.toml",
        "include = [\"legacy.conf\"]\n[[balancer]]\nname = \"t3rws\"\n[[balancer.member]]\nurl = \"http://127.0.0.1:9301\"\n[[route]]\npath = \"/t3/api\"\nto = \"balancer://t3rws/api\"\n",
    );
    d.write(
        "legacy.conf",
        "ProxyPass /t4 http://127.0.0.1:9401/t4 timeout=5\n",
    );
    let r = d.check("main.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.heads().is_empty(), "{:#?}", r.heads());
    assert!(
        r.stdout
            .contains("tenants:\n  t1 (1 route)\n  t2 (1 route)\n  t3 (1 route)\n  t4 (1 route)\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("/t4 -> http://127.0.0.1:9401/t4"),
        "{}",
        r.stdout
    );

    // Cycles are detected, with the chain.
    d.write("c1.conf", "Include c2.conf\n");
    d.write("c2.conf", "Include c1.conf\n");
    let r = d.check("c1.conf");
    assert_eq!(r.code, 1);
    assert!(
        r.heads()
            .iter()
            .any(|h| h.starts_with("c2.conf:1:1: error: include cycle")),
        "{:#?}",
        r.heads()
    );

    // An undefined ${VAR} is reported.
    d.write("v.conf", "ProxyPass /x http://${NO_SUCH_VAR_X}/\n");
    let r = d.check("v.conf");
    assert!(
        r.heads()
            .iter()
            .any(|h| h.starts_with("v.conf:1:21: warning: ${NO_SUCH_VAR_X} is not defined")),
        "{:#?}",
        r.heads()
    );

    // Continuation lines and case-insensitive names.
    d.write("k.conf", "<proxy BALANCER://MiXed>\nbalancermember http://h \\\n   LOADFACTOR=2 STATUS=+h\n</proxy>\nproxypass /m balancer://mixed/m\n");
    let r = d.check("k.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("balancer://mixed"));
    assert!(
        r.stdout
            .contains("http://h  route=-  status=H  lbset=0  loadfactor=2"),
        "{}",
        r.stdout
    );
}

#[test]
fn virtual_hosts_keep_main_server_routes_first() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "Listen 127.0.0.1:8080\nProxyPass /t1/api http://127.0.0.1:9101/api\n<VirtualHost *:8080>\nServerName lb.example\nServerAlias lb2.example\nProxyPass / http://127.0.0.1:9999/\n<Location /server-status>\nSetHandler server-status\nRequire ip 127.0.0.1\n</Location>\n</VirtualHost>\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let main = r.stdout.find("1. /t1/api").unwrap();
    let vh = r.stdout.find("2. / -> http://127.0.0.1:9999/").unwrap();
    assert!(main < vh);
    assert!(
        r.stdout
            .contains("<VirtualHost *:8080> lb.example (main-server routes first):")
    );
}

#[test]
fn toml_errors_have_line_and_column() {
    let d = ConfDir::new();
    d.write("a.toml", "[[listen]]\naddr = \"127.0.0.1:8080\"\n[[balancer]]\nname = \"b\"\nstickysesion = \"ROUTEID\"\n[[balancer.member]]\nurl = \"http://h\"\ntimeout = \"500ms\"\nloadfactor = 0.5\n");
    let r = d.check("a.toml");
    assert_eq!(r.code, 1);
    let heads = r.heads();
    assert!(
        heads
            .iter()
            .any(|h| h == "a.toml:5:1: error: unknown key 'stickysesion' in [[balancer]]"),
        "{heads:#?}"
    );
    assert!(r.stderr.contains("= hint: did you mean 'stickysession'?"));
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("a.toml:9:14: error: loadfactor=0.5")),
        "{heads:#?}"
    );
    // 500ms really is 500 ms in TOML: no error for it.
    assert!(!r.stderr.contains("500 seconds"));

    d.write("b.toml", "[[listen]\naddr = 1\n");
    let r = d.check("b.toml");
    assert_eq!(r.code, 1);
    assert!(r.heads()[0].starts_with("b.toml:1:"), "{:#?}", r.heads());
    assert!(r.heads()[0].contains("error: TOML syntax"));
}

/// `ProxyHCExpr` is compiled and `hcexpr`/`hctemplate` names are resolved when the config is
/// read: a malformed expression or a name nobody defined is an error at its line, not a
/// probe that fails forever at run time.
#[test]
fn health_check_expressions_and_templates_are_checked_at_load() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[234]/}\n\
         ProxyHCExpr broken {%{REQUEST_STATUS} =~ /[/}\n\
         ProxyHCTemplate tpl hcmethod=GET hcuri=/health hcexpr=ok\n\
         <Proxy balancer://b>\n\
         BalancerMember http://h1 hctemplate=tpl\n\
         BalancerMember http://h2 hcmethod=GET hcexpr=okk\n\
         BalancerMember http://h3 hctemplate=nope\n\
         </Proxy>\n\
         ProxyPass /x balancer://b/x\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let heads = r.heads();
    let errors: Vec<&String> = heads.iter().filter(|h| h.contains(": error: ")).collect();
    assert_eq!(errors.len(), 3, "{}", r.stderr);
    assert!(
        errors[0].starts_with(
            "a.conf:2:20: error: ProxyHCExpr broken: bad regex /[/: unclosed character class"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("a.conf:6:16: error: hcexpr=okk: no ProxyHCExpr named 'okk'"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2]
            .starts_with("a.conf:7:16: error: hctemplate=nope: no ProxyHCTemplate named 'nope'"),
        "{}",
        errors[2]
    );
    assert!(r.stderr.contains("did you mean ok?"), "{}", r.stderr);
    // Without the broken lines the template is applied to its member in the summary.
    d.write(
        "b.conf",
        "ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[234]/}\n\
         ProxyHCTemplate tpl hcmethod=GET hcuri=/health hcexpr=ok\n\
         <Proxy balancer://b>\n\
         BalancerMember http://h1 hctemplate=tpl\n\
         </Proxy>\n\
         ProxyPass /x balancer://b/x\n",
    );
    let r = d.check("b.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A `ProxyPass` that names a balancer before its `<Proxy>` section is a reference, not a
/// first definition: the section is not reported as defining the balancer again.
#[test]
fn proxy_pass_before_its_proxy_section_is_not_a_second_definition() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "ProxyPass /t1/api balancer://t1rws/api\n<Proxy balancer://t1rws>\nBalancerMember http://a:8080\n</Proxy>\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("defined again"), "{}", r.stderr);
    // Two sections are still reported.
    d.write(
        "b.conf",
        "ProxyPass /t1/api balancer://t1rws/api\n<Proxy balancer://t1rws>\nBalancerMember http://a:8080\n</Proxy>\n<Proxy balancer://t1rws>\nBalancerMember http://b:8080\n</Proxy>\n",
    );
    let r = d.check("b.conf");
    assert!(
        r.heads().iter().any(|h| h.starts_with("b.conf:5:1: warning: balancer://t1rws is defined again here; it was first defined at b.conf:2:1")),
        "{}",
        r.stderr
    );
}

/// `check` on a whole httpd tree stays readable: errors and warnings come first, and a note
/// that repeats (a directive skipped dozens of times) is one line with its count and first
/// place; `--verbose` lists each. mod_autoindex's and mod_mime's file-serving directives are
/// skipped with a note, not unknown.
#[test]
fn repeated_notes_are_grouped_and_errors_come_first() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "AddIcon /icons/a.gif .a\nAddIcon /icons/b.gif .b\nRemoveType .x\nAddIcon /icons/c.gif .c\nAccessFileName .htaccess\nNoSuchDirective x\nProxyPass /a http://h/a\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let heads = r.heads();
    assert!(
        heads[0].starts_with("a.conf:6:1: error: unknown directive 'NoSuchDirective'"),
        "{heads:#?}"
    );
    assert!(
        heads.contains(&"a.conf:1:1: note: AddIcon skipped: directory listings of files on disk; balancerd serves no files (3 times; --verbose lists each)".to_string()),
        "{heads:#?}"
    );
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("a.conf:3:1: note: RemoveType skipped: MIME types")),
        "{heads:#?}"
    );
    assert!(
        heads.iter().any(|h| h
            .starts_with("a.conf:5:1: note: AccessFileName skipped: balancerd serves no files")),
        "{heads:#?}"
    );
    let v = balancerd_in(d.path(), &["check", "--config", "a.conf", "--verbose"]);
    let addicon = v
        .heads()
        .iter()
        .filter(|h| h.contains("note: AddIcon skipped"))
        .count();
    assert_eq!(addicon, 3, "{}", v.stderr);
}

/// A refused `LogFormat` is reported once, at its line, not again at each `CustomLog` that
/// names it ("no LogFormat named …" was a cascade of the first error).
#[test]
fn a_refused_log_format_is_reported_once() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "LogFormat \"%h %Z\" broken\nCustomLog access.log broken\nCustomLog other.log broken\nCustomLog third.log nosuch\nProxyPass /a http://h/a\n",
    );
    let r = d.check("a.conf");
    let errors: Vec<String> = r
        .heads()
        .into_iter()
        .filter(|h| h.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", r.stderr);
    assert!(
        errors[0].starts_with("a.conf:1:11: error: log format code %Z is not supported"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("a.conf:4:21: error: no LogFormat named 'nosuch'"),
        "{errors:#?}"
    );
}

/// Every directive and section in httpd 2.4's manual (the fixture is the list taken from
/// `docs/manual/mod/*.xml`) has a class in balancerd's table, and the generated reference in
/// `docs/` is the table as it is now.
#[test]
fn the_directive_table_covers_httpds_manual() {
    use balancerd::config::httpd::directives::{Class, DIRECTIVES, lookup, markdown};
    let list = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/httpd-2.4-directives.txt"),
    )
    .expect("directive list");
    let mut names = 0;
    let mut missing = Vec::new();
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut f = line.split('\t');
        let (name, module, section) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or("") == "section",
        );
        names += 1;
        match lookup(name) {
            Some(d) if d.module == module && d.section == section => {}
            other => missing.push(format!("{name} ({module}): {other:?}")),
        }
    }
    assert!(names >= 719, "only {names} names in the fixture");
    assert!(missing.is_empty(), "not classified: {missing:#?}");
    // Every refusal says what to do; every skip says why.
    for d in DIRECTIVES {
        match d.class {
            Class::Skipped(w) | Class::Refused { why: w, .. } => {
                assert!(w.len() > 15, "{} has no reason", d.name)
            }
            Class::Implemented => {}
        }
    }
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/httpd-directives.md"),
    )
    .expect("docs/httpd-directives.md");
    assert!(
        doc == markdown(),
        "docs/httpd-directives.md is stale: run `balancerd directives > docs/httpd-directives.md`"
    );
}

/// A directive the table calls implemented is read by a handler: written alone, it gets its
/// own message (missing argument, …), never "unknown" or "no handler".
#[test]
fn every_implemented_directive_has_a_handler() {
    use balancerd::config::httpd::directives::{Class, DIRECTIVES};
    let d = ConfDir::new();
    let mut text = String::new();
    for e in DIRECTIVES.iter().filter(|e| e.class == Class::Implemented) {
        if e.section {
            text.push_str(&format!("<{} x>\n</{}>\n", e.name, e.name));
        } else if !matches!(e.name, "Include" | "IncludeOptional") {
            text.push_str(&format!("{} x\n", e.name));
        }
    }
    d.write("all.conf", &text);
    let r = d.check("all.conf");
    for h in r.heads() {
        assert!(
            !h.contains("no handler read it")
                && !h.contains("unknown directive")
                && !h.contains("unknown section"),
            "{h}\n{}",
            r.stderr
        );
    }
}

/// A refused directive is an error that names its module and says what httpd would have
/// done and what to write instead; written with the value balancerd behaves as, it is
/// accepted with a note. A typo is still "unknown", with the closest name.
#[test]
fn refused_directives_say_what_httpd_would_do() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "ProxyPass /a http://h/a\nCacheEnable disk /\nProxyErrorOverride Off\nProxyErrorOverride On\nAuthType Basic\nProxyPasReverse /a http://h/a\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("a.conf:2:1: error: CacheEnable (mod_cache) changes what httpd does and balancerd does not implement it"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: httpd would answer from a response cache"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("a.conf:3:1: note: ProxyErrorOverride Off is what balancerd does"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("a.conf:4:1: error: ProxyErrorOverride (mod_proxy)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("a.conf:5:1: error: AuthType (mod_authn_core)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("balancerd does not, so the location would be open to anyone"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("a.conf:6:1: error: unknown directive 'ProxyPasReverse'"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean ProxyPassReverse?"),
        "{}",
        r.stderr
    );
}

/// `<IfVersion>`, `<IfFile>`, `<IfDirective>` and `<IfSection>` are evaluated as httpd
/// evaluates them: a false one's body is not read (its errors are not reported), a true
/// one's is.
#[test]
fn conditional_sections_are_evaluated() {
    let d = ConfDir::new();
    d.write("exists.txt", "x");
    d.write(
        "a.conf",
        "LoadModule proxy_module modules/mod_proxy.so\n\
         <IfVersion < 2.4>\nBogusOld x\n</IfVersion>\n\
         <IfVersion >= 2.4.10>\nProxyPass /v http://h/v\n</IfVersion>\n\
         <IfVersion ~ ^2\\.4\\.>\nProxyPass /re http://h/re\n</IfVersion>\n\
         <IfFile nothere.txt>\nBogusFile x\n</IfFile>\n\
         <IfFile exists.txt>\nProxyPass /f http://h/f\n</IfFile>\n\
         <IfDirective ProxyPass>\nProxyPass /d http://h/d\n</IfDirective>\n\
         <IfDirective CacheEnable>\nBogusDir x\n</IfDirective>\n\
         <IfDirective !CacheEnable>\nProxyPass /nd http://h/nd\n</IfDirective>\n\
         <IfSection Proxy>\nProxyPass /s http://h/s\n</IfSection>\n\
         <IfSection !VirtualHost>\nBogusSection x\n</IfSection>\n\
         Listen 127.0.0.1:1\n",
    );
    let r = d.check("a.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("Bogus"), "{}", r.stderr);
    for p in ["/v", "/re", "/f", "/d", "/nd", "/s"] {
        assert!(
            r.stdout.contains(&format!("{p} ")),
            "route {p} missing:\n{}",
            r.stdout
        );
    }
}

/// The stock Debian apache2 tree (`.ci/run` installs apache2), read with its envvars as
/// apache2ctl reads it, loads with no error, and the summary names its listener and its
/// virtual host.
#[test]
fn the_stock_debian_apache2_tree_loads() {
    assert!(
        Path::new("/etc/apache2/apache2.conf").exists(),
        "/etc/apache2 is missing: install Debian's apache2 (.ci/run does)"
    );
    let bin = env!("CARGO_BIN_EXE_balancerd");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". /etc/apache2/envvars && exec {bin} check --config /etc/apache2/apache2.conf"
        ))
        .current_dir("/etc/apache2")
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(" 0 error(s)") || !stderr.contains("error"),
        "{stderr}"
    );
    assert!(stdout.contains("0.0.0.0:80 (http)"), "{stdout}");
    assert!(stdout.contains("<VirtualHost *:80>"), "{stdout}");
}

/// A stock RHEL/Fedora-family httpd tree (Fedora's package layout: conf/httpd.conf,
/// conf.modules.d/, conf.d/ with mod_ssl's ssl.conf), with ServerRoot and the certificate
/// paths pointed at a copy (the certificate is made at test time, as RHEL's first start
/// makes it), loads with no error; the summary has both listeners and the TLS virtual host.
#[test]
fn the_stock_rhel_httpd_tree_loads() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rhel-tree");
    let d = ConfDir::new();
    for sub in ["conf", "conf.modules.d", "conf.d"] {
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            let root = d.path().display().to_string();
            let text = text
                .replace(
                    "ServerRoot \"/etc/httpd\"",
                    &format!("ServerRoot \"{root}\""),
                )
                .replace(
                    "/etc/pki/tls/certs/localhost.crt",
                    &format!("{root}/pki/localhost.pem"),
                )
                .replace(
                    "/etc/pki/tls/private/localhost.key",
                    &format!("{root}/pki/localhost.key"),
                );
            d.write(&format!("{sub}/{}", e.file_name().to_string_lossy()), &text);
        }
    }
    let g = balancerd_in(d.path(), &["gen-certs", "pki"]);
    assert_eq!(g.code, 0, "{}", g.stderr);
    let r = d.check("conf/httpd.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("0.0.0.0:80 (http)"), "{}", r.stdout);
    assert!(r.stdout.contains("0.0.0.0:443 (https)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("<VirtualHost _default_:443>"),
        "{}",
        r.stdout
    );
}

/// Public mod_proxy_balancer configs written by others (`tests/fixtures/real/`, each with its
/// source on the first line) load, or fail only where httpd fails too. httpd is the oracle:
/// each file also goes through `apache2 -t` with the modules a stock httpd loads, and the
/// two verdicts must agree. (The official image's `/usr/local/apache2` that one file names
/// is made in a temporary folder, for both.)
#[test]
fn public_balancer_configs_load_where_httpd_loads_them() {
    let apache2 = Path::new("/usr/sbin/apache2");
    assert!(apache2.exists(), "install Debian's apache2 (.ci/run does)");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real");
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    let d = ConfDir::new();
    let dir = d.path().display().to_string();
    let modules = "/usr/lib/apache2/modules";
    let preamble = httpd_preamble(&dir);
    d.write("preamble.conf", &preamble);
    // The author's httpd folder (the official image's /usr/local/apache2), made here.
    for sub in ["root/htdocs", "root/cgi-bin", "root/conf"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    d.write("root/conf/mime.types", "text/html html\n");
    std::os::unix::fs::symlink(modules, d.path().join("root/modules")).unwrap();
    let mut loaded = 0;
    let mut report = String::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.starts_with("# source: https://github.com/"),
            "{name}: the first line names its source"
        );
        let text = text.replace("/usr/local/apache2", &format!("{dir}/root"));
        d.write(&name, &text);
        let ours = d.check(&name);
        // Debian's httpd has these compiled in, and refuses to load them again.
        let for_httpd: String = text
            .lines()
            .map(|l| {
                let built_in = ["watchdog", "log_config", "logio", "version", "unixd", "so"]
                    .iter()
                    .any(|m| {
                        l.trim_start()
                            .starts_with(&format!("LoadModule {m}_module "))
                    });
                if built_in {
                    format!("# {l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let httpd_path = d.write(&format!("httpd-{name}"), &for_httpd);
        let httpd = std::process::Command::new(apache2)
            .args(["-t", "-C", "ServerRoot /usr/lib/apache2", "-C"])
            .arg(format!("Include {dir}/preamble.conf"))
            .arg("-f")
            .arg(&httpd_path)
            .output()
            .unwrap();
        let httpd_ok = httpd.status.success();
        let httpd_said = String::from_utf8_lossy(&httpd.stderr)
            .lines()
            .filter(|l| !l.contains("already loaded") && !l.contains("AH00558"))
            .collect::<Vec<_>>()
            .join(" | ");
        report.push_str(&format!(
            "{name}: balancerd {}, httpd {} ({httpd_said})\n",
            if ours.code == 0 { "loads" } else { "refuses" },
            if httpd_ok { "loads" } else { "refuses" }
        ));
        if ours.code == 0 {
            loaded += 1;
        }
        assert_eq!(
            ours.code == 0,
            httpd_ok,
            "{name}: balancerd and httpd disagree\n-- balancerd --\n{}\n-- httpd --\n{httpd_said}",
            ours.stderr
        );
    }
    assert!(files.len() >= 10 && loaded >= 10, "{report}");
    eprintln!("{report}");
}

/// The mod_rewrite balancerd does not do is an error that names it: file tests, maps,
/// flags outside the implemented set, a `[P]` whose host comes from a back-reference,
/// per-directory rules, and a rule that would map the request to a file.
#[test]
fn mod_rewrite_outside_the_implemented_part_is_refused() {
    let d = ConfDir::new();
    d.write(
        "a.conf",
        "RewriteEngine On\n\
         RewriteCond %{REQUEST_FILENAME} !-f\n\
         RewriteRule ^/a(.*)$ /index.php [L]\n\
         RewriteMap m txt:/etc/map.txt\n\
         RewriteRule ^/b(.*)$ /b2$1 [C,PT]\n\
         RewriteRule ^/c/([^/]+)/(.*)$ http://$1/$2 [P]\n\
         <Location /d>\nRewriteRule ^x$ /y [PT]\n</Location>\n\
         RewriteRule ^/e(.*)$ /e2$1\n\
         RewriteRule ^/ok/(.*)$ balancer://b/$1 [P,L]\n\
         <Proxy balancer://b>\nBalancerMember http://h:1\n</Proxy>\n",
    );
    let r = d.check("a.conf");
    let errors: Vec<String> = r
        .heads()
        .into_iter()
        .filter(|h| h.contains(": error: "))
        .collect();
    let want = [
        "a.conf:2:13: error: unknown server variable %{REQUEST_FILENAME}",
        "a.conf:3:1: error: this RewriteRule maps the request to a file",
        "a.conf:4:1: error: RewriteMap (mod_rewrite) changes what httpd does",
        "a.conf:5:28: error: flag [C] is not supported",
        "a.conf:6:31: error: [P] with a scheme or host from a back-reference",
        "a.conf:8:1: error: RewriteRule inside <Location> or <Proxy> (per-directory rewriting) is not supported",
        "a.conf:10:1: error: this RewriteRule maps the request to a file",
    ];
    for w in want {
        assert!(errors.iter().any(|e| e.starts_with(w)), "{w}\n{errors:#?}");
    }
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
}

/// `UnderscoresInHeaders` (httpd dialect) and `underscores_in_headers` (TOML) load, and a
/// value that is not On/Off or a boolean is an error at its file:line.
#[test]
fn underscores_in_headers_in_both_dialects() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ok = w(
        "ok.conf",
        "Listen 127.0.0.1:8080\nUnderscoresInHeaders On\n",
    );
    assert_eq!(balancerd(&["check", "--config", &ok]).code, 0);
    let bad = w(
        "bad.conf",
        "Listen 127.0.0.1:8080\nUnderscoresInHeaders Maybe\n",
    );
    let r = balancerd(&["check", "--config", &bad]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.conf:2:")
            && r.stderr
                .contains("UnderscoresInHeaders must be On or Off, not 'Maybe'"),
        "{}",
        r.stderr
    );
    let ok = w(
        "ok.toml",
        "[server]\nunderscores_in_headers = true\n[[listen]]\naddr = \"127.0.0.1:8080\"\n",
    );
    let r = balancerd(&["check", "--config", &ok]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bad = w(
        "bad.toml",
        "[server]\nunderscores_in_headers = \"yes\"\n[[listen]]\naddr = \"127.0.0.1:8080\"\n",
    );
    let r = balancerd(&["check", "--config", &bad]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.toml:2:")
            && r.stderr
                .contains("underscores_in_headers must be true or false"),
        "{}",
        r.stderr
    );
}

/// What an `apache2 -t` of a test file runs with: its runtime files in `dir`, and the
/// modules a stock httpd loads for a balancer (each only when not built in).
fn httpd_preamble(dir: &str) -> String {
    let modules = "/usr/lib/apache2/modules";
    let mut preamble = format!(
        "Mutex file:{dir} default\nDefaultRuntimeDir {dir}\nPidFile {dir}/pid\nErrorLog {dir}/error.log\n"
    );
    for m in [
        "mpm_event",
        "authz_core",
        "authz_host",
        "access_compat",
        "authn_core",
        "headers",
        "status",
        "proxy",
        "proxy_http",
        "proxy_balancer",
        "slotmem_shm",
        "lbmethod_byrequests",
        "lbmethod_bybusyness",
        "lbmethod_bytraffic",
        "proxy_wstunnel",
        "proxy_ajp",
        "mime",
        "env",
        "setenvif",
        "alias",
        "dir",
        "autoindex",
        "ssl",
        "socache_shmcb",
        "reqtimeout",
        "filter",
        "deflate",
    ] {
        preamble.push_str(&format!(
            "<IfModule !{m}_module>\nLoadModule {m}_module {modules}/mod_{m}.so\n</IfModule>\n"
        ));
    }
    preamble
}

/// `apache2 -t` on `text` with the modules a balancer config needs: `Ok` when httpd accepts
/// it, else httpd's error.
fn httpd_t(d: &ConfDir, text: &str) -> Result<(), String> {
    let apache2 = Path::new("/usr/sbin/apache2");
    assert!(apache2.exists(), "install Debian's apache2 (.ci/run does)");
    let mut conf = httpd_preamble(&d.path().display().to_string());
    conf.push_str(text);
    conf.push('\n');
    let path = d.write("httpd-t.conf", &conf);
    let out = std::process::Command::new(apache2)
        .args(["-t", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("AH00558"))
        .collect::<Vec<_>>()
        .join(" | ");
    if out.status.success() {
        Ok(())
    } else {
        Err(said)
    }
}

/// Every diagnostic that states what httpd does with a file is checked against httpd: the
/// startup errors balancerd reports as httpd's are refused by `apache2 -t` with the same
/// complaint, the ones balancerd refuses where httpd starts (`timeout=500ms`, `unix:`
/// sockets, `ProxyRequests On`) are accepted by it, and the vendor file's wrapped lines and
/// stray space fail httpd as the warnings say.
#[test]
fn what_the_diagnostics_say_of_httpd_holds_for_httpd() {
    let d = ConfDir::new();
    let long_route = format!(
        "BalancerMember balancer://b http://h route={}",
        "r".repeat(64)
    );
    // (config, what httpd says: part of its complaint, or None when it starts; then
    // balancerd's exit code: 1, except the wrapped lines it joins with a warning)
    let cases: &[(&str, Option<&str>, i32)] = &[
        (
            "ProxySet balancer://nope stickysession=X",
            Some("ProxySet can not find 'balancer://nope' Balancer."),
            1,
        ),
        (
            "BalancerMember balancer://b http://h loadfactor=0.5",
            Some("BalancerMember LoadFactor must be a number between 1..100"),
            1,
        ),
        (
            "BalancerMember balancer://b http://h status=X",
            Some("BalancerMember Unknown status parameter option"),
            1,
        ),
        (
            "BalancerMember balancer://b http://h connectiontimeout=10000MS",
            Some("BalancerMember Connectiontimeout has wrong format"),
            1,
        ),
        (
            &long_route,
            Some("BalancerMember Route length must be < 64 characters"),
            1,
        ),
        (
            "BalancerMember balancer://b http://h colour=blue",
            Some("BalancerMember unknown Worker parameter"),
            1,
        ),
        (
            "BalancerMember balancer://b http://h lbfactor=2",
            Some("BalancerMember unknown Worker parameter"),
            1,
        ),
        (
            "ProxyPass /c http://h/c # comment",
            Some(
                "Invalid ProxyPass|ProxyPassMatch parameter. Parameter must be in the form 'key=value'.",
            ),
            1,
        ),
        (
            "Listen 8080\nListen 8080",
            Some("Cannot define multiple Listeners on the same IP:port"),
            1,
        ),
        (
            "ProxyPass /x balancer://b/x lbfactor=2\nBalancerMember balancer://b http://h",
            Some("ProxyPass unknown Balancer parameter"),
            1,
        ),
        ("Frobnicate on", Some("Invalid command 'Frobnicate'"), 1),
        (
            "<Proxy balancer://b>\nBalancerMember http://h\nProxySet sticky session=ROUTEID\n</Proxy>",
            Some("Invalid ProxySet parameter. Parameter must be in the form 'key=value'"),
            1,
        ),
        (
            "Header add Set-Cookie \"ROUTEID=.x; path=/t1\"\nenv=BALANCER_ROUTE_CHANGED",
            Some("Invalid command 'env=BALANCER_ROUTE_CHANGED'"),
            0,
        ),
        (
            "<Proxy balancer://tlrcs>\nBalancerMember http://tlrcs1:8008 connectiontimeout=10000ms disablereuse=On\nroute=RCS1_Application_Name\n</Proxy>",
            Some("Invalid command 'route=RCS1_Application_Name'"),
            0,
        ),
        // balancerd refuses these; httpd starts (and does what the error says).
        (
            "BalancerMember balancer://b http://h timeout=500ms",
            None,
            1,
        ),
        ("ProxyPass /x unix:/run/app.sock|http://h/", None, 1),
        ("ProxyRequests On", None, 1),
    ];
    for (text, httpd_says, ours) in cases {
        let got = httpd_t(&d, text);
        match httpd_says {
            Some(msg) => {
                let said = got.expect_err(&format!("httpd accepted {text:?}"));
                assert!(said.contains(msg), "{text:?}: httpd said {said}");
            }
            None => assert!(got.is_ok(), "{text:?}: httpd refused: {got:?}"),
        }
        d.write("a.conf", text);
        assert_eq!(d.check("a.conf").code, *ours, "{text:?}");
    }
    // The vendor's file as published: httpd stops at its first wrapped line.
    let vendor = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rhel8-loadbalancer_tenant1.conf"),
    )
    .unwrap();
    let said = httpd_t(&d, &vendor).expect_err("httpd refuses the vendor file");
    assert!(
        said.contains("Invalid command 'env=BALANCER_ROUTE_CHANGED'"),
        "{said}"
    );
}
