//! `balancerd convert`: every config the project ships or keeps as a fixture (the shipped
//! examples, the vendor's blocks, the real-world configs, a stock RHEL tree), converted to
//! TOML and to httpd (and TOML back to httpd), checks to the same summary as the original;
//! `explain` gives the same decision and member request on both; what the target dialect
//! has no key for is listed on stderr with its file:line.

mod support;
use std::path::{Path, PathBuf};
use support::*;

/// The summary without the file:line:col of each item (the converted file has its own).
fn normalised(summary: &str) -> String {
    summary
        .lines()
        .map(|l| {
            let mut words: Vec<&str> = l.split(' ').collect();
            if words.last().is_some_and(|w| is_origin(w)) {
                words.pop();
            }
            words.join(" ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_origin(w: &str) -> bool {
    let mut parts = w.rsplitn(3, ':');
    let col = parts.next().unwrap_or("");
    let line = parts.next().unwrap_or("");
    !col.is_empty()
        && col.bytes().all(|c| c.is_ascii_digit())
        && !line.is_empty()
        && line.bytes().all(|c| c.is_ascii_digit())
        && parts.next().is_some()
}

/// Checks `file` (from `dir`), converts it to `to`, checks the result; both summaries must
/// be the same. Returns the converted file.
fn round_trip(dir: &Path, file: &str, to: &str) -> PathBuf {
    let orig = balancerd_in(dir, &["check", "--config", file]);
    assert_eq!(orig.code, 0, "{file}: {}", orig.stderr);
    let out = dir.join(format!(
        "converted-{}.{}",
        file.replace('/', "_"),
        if to == "toml" { "toml" } else { "conf" }
    ));
    let conv = balancerd_in(
        dir,
        &["convert", file, "--to", to, "-o", out.to_str().unwrap()],
    );
    assert_eq!(conv.code, 0, "convert {file} --to {to}: {}", conv.stderr);
    let again = balancerd_in(dir, &["check", "--config", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        again.code, 0,
        "{file} --to {to} does not check:\n{}\n{text}",
        again.stderr
    );
    assert_eq!(
        normalised(&orig.stdout),
        normalised(&again.stdout),
        "{file} --to {to}: the summaries differ\n{text}"
    );
    // Beyond the summary: the whole validated model is the same, but for where things were
    // written and the order they were read in.
    let model = |f: &str| {
        let r = balancerd_in(dir, &["dump-model", "--config", f]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        model_without_places(&r.stdout, dir)
    };
    let (a, b) = (model(file), model(out.to_str().unwrap()));
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(10)
            .map(|(i, (x, y))| format!("{i}: {x}  |  {y}"))
            .collect();
        panic!(
            "{file} --to {to}: the model changed:\n{}\n{text}",
            diff.join("\n")
        );
    }
    out
}

/// The model's Debug form without origins (file:line:col of each item, the sections that
/// defined a balancer, whether a ProxyPass named it before its section) and with paths
/// relative to `dir` (the converted file names every path in full).
fn model_without_places(dump: &str, dir: &Path) -> String {
    const PLACES: [&str; 5] = [
        "origin:",
        "engine_origin:",
        "sticky_origin:",
        "definitions:",
        "referenced_only:",
    ];
    let prefix = format!("\"{}/", dir.display());
    let mut out = Vec::new();
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if PLACES.iter().any(|p| t.starts_with(p)) {
            let indent = l.len() - t.len();
            if t.ends_with('{') || t.ends_with('[') || t.ends_with('(') {
                for m in lines.by_ref() {
                    let mt = m.trim_start();
                    if m.len() - mt.len() == indent && mt.starts_with(['}', ']', ')']) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(l.replace(&prefix, "\""));
    }
    out.join("\n")
}

/// `explain` on both files: the same route pattern, balancer, decision and member request.
fn same_explanation(dir: &Path, a: &str, b: &str, method: &str, url: &str, headers: &[&str]) {
    let run = |file: &str| {
        let mut args = vec!["explain", "--config", file, method, url, "--format", "json"];
        for h in headers {
            args.push("-H");
            args.push(h);
        }
        let r = balancerd_in(dir, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        (
            v["routes"]
                .as_array()
                .and_then(|r| r.last())
                .map(|r| (r["pattern"].clone(), r["result"].clone())),
            v["balancer"].clone(),
            v["decision"].clone(),
            v["answer"].as_str().map(without_origins),
            v["member_request"].clone(),
        )
    };
    assert_eq!(run(a), run(b), "{method} {url} {headers:?}: {a} vs {b}");
}

/// Text with each file:line:col replaced by `<at>`.
fn without_origins(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            if is_origin(w.trim_end_matches(')')) {
                "<at>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_shipped_configs_convert_both_ways_to_the_same_summary() {
    // A copy of conf/ with the certificates balancerd-tls.conf names.
    let d = ConfDir::new();
    let root = root();
    for e in walk(&root.join("conf")) {
        let rel = e.strip_prefix(&root).unwrap();
        d.write(rel.to_str().unwrap(), &std::fs::read_to_string(&e).unwrap());
    }
    let g = balancerd_in(d.path(), &["gen-certs", "certs"]);
    assert_eq!(g.code, 0, "{}", g.stderr);
    for file in ["conf/balancerd.conf", "conf/balancerd-tls.conf"] {
        let t = round_trip(d.path(), file, "toml");
        round_trip(d.path(), file, "httpd");
        // And the TOML back to httpd.
        let rel = t.file_name().unwrap().to_str().unwrap().to_string();
        round_trip(d.path(), &rel, "httpd");
    }
    let h = round_trip(d.path(), "conf/balancerd.toml", "httpd");
    round_trip(d.path(), "conf/balancerd.toml", "toml");
    let t = round_trip(d.path(), "conf/balancerd.conf", "toml");
    for (a, b) in [
        ("conf/balancerd.conf", t.to_str().unwrap()),
        ("conf/balancerd.toml", h.to_str().unwrap()),
    ] {
        same_explanation(
            d.path(),
            a,
            b,
            "GET",
            "/t1/api/x?y=1",
            &["Cookie: ROUTEID=.T1RWS2"],
        );
        same_explanation(
            d.path(),
            a,
            b,
            "GET",
            "/t1/rcs/k;jsessionid=a.RCS1_Application_Name",
            &[],
        );
        same_explanation(d.path(), a, b, "PROPFIND", "/t2/recordings/a.wav", &[]);
        same_explanation(d.path(), a, b, "GET", "/server-status", &[]);
        same_explanation(d.path(), a, b, "GET", "/nothing", &[]);
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_vendor_blocks_and_real_configs_convert_to_the_same_summary() {
    let d = ConfDir::new();
    let fixtures = root().join("tests/fixtures");
    let mut files = Vec::new();
    for f in [
        "rhel6-loadbalancer_tenant1.conf",
        "rhel8-loadbalancer_tenant1.conf",
        "serverstatus.conf",
    ] {
        d.write(f, &std::fs::read_to_string(fixtures.join(f)).unwrap());
        files.push(f.to_string());
    }
    let mut real = 0;
    let mut entries: Vec<PathBuf> = walk(&fixtures.join("real"));
    entries.sort();
    for p in entries {
        let name = format!("real/{}", p.file_name().unwrap().to_str().unwrap());
        d.write(&name, &std::fs::read_to_string(&p).unwrap());
        // Those that fail to load fail as httpd does (tests/config_check.rs); nothing to
        // convert.
        if balancerd_in(d.path(), &["check", "--config", &name]).code == 0 {
            files.push(name);
            real += 1;
        }
    }
    assert!(real >= 10, "only {real} real configs load");
    for f in &files {
        let t = round_trip(d.path(), f, "toml");
        round_trip(d.path(), f, "httpd");
        let rel = t.file_name().unwrap().to_str().unwrap().to_string();
        round_trip(d.path(), &rel, "httpd");
    }
    let t = d
        .path()
        .join("converted-rhel8-loadbalancer_tenant1.conf.toml");
    for url in ["/t1/api/x", "/t1/rcs/y", "/t1/recordings/z.wav"] {
        same_explanation(
            d.path(),
            "rhel8-loadbalancer_tenant1.conf",
            t.to_str().unwrap(),
            "GET",
            url,
            &["Cookie: ROUTEID=.RWS2; JSESSIONID=x.RCS2_Application_Name"],
        );
    }
}

#[test]
fn a_stock_rhel_tree_converts_to_the_same_summary() {
    let src = root().join("tests/fixtures/rhel-tree");
    let d = ConfDir::new();
    let top = d.path().display().to_string();
    for sub in ["conf", "conf.modules.d", "conf.d"] {
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path())
                .unwrap()
                .replace(
                    "ServerRoot \"/etc/httpd\"",
                    &format!("ServerRoot \"{top}\""),
                )
                .replace(
                    "/etc/pki/tls/certs/localhost.crt",
                    &format!("{top}/pki/localhost.pem"),
                )
                .replace(
                    "/etc/pki/tls/private/localhost.key",
                    &format!("{top}/pki/localhost.key"),
                );
            d.write(&format!("{sub}/{}", e.file_name().to_string_lossy()), &text);
        }
    }
    let g = balancerd_in(d.path(), &["gen-certs", "pki"]);
    assert_eq!(g.code, 0, "{}", g.stderr);
    round_trip(d.path(), "conf/httpd.conf", "toml");
    round_trip(d.path(), "conf/httpd.conf", "httpd");
}

/// What TOML has no key for goes into `httpd = [...]` and is listed with its file:line; the
/// converted file routes, rewrites and refuses as the original does.
#[test]
fn what_toml_cannot_say_is_listed_with_its_place() {
    let d = ConfDir::new();
    d.write(
        "lb.conf",
        "Listen 127.0.0.1:8080
ServerName lb.example
ProxyVia On
<Proxy balancer://t1rws>
  BalancerMember http://a:1 route=A timeout=5
  BalancerMember http://b:1 route=B status=+H
  ProxySet stickysession=ROUTEID lbmethod=bybusyness
</Proxy>
<VirtualHost *:8080>
  ServerName agents.example
  RewriteEngine On
  RewriteRule ^/legacy/(.*)$ /t1/api/$1 [PT]
  ProxyPass /t1/api balancer://t1rws/api
  <Location /t1/api/admin>
    Require ip 10.0.0.0/8
  </Location>
</VirtualHost>
",
    );
    let r = balancerd_in(
        d.path(),
        &["convert", "lb.conf", "--to", "toml", "-o", "lb.toml"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "lb.conf:9:1: note: <VirtualHost *:8080>: no TOML key; kept as httpd directives"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("lb.conf: note: ProxyVia: no TOML key; kept as an httpd directive"),
        "{}",
        r.stderr
    );
    let toml = std::fs::read_to_string(d.path().join("lb.toml")).unwrap();
    assert!(toml.contains("lbmethod = \"bybusyness\""), "{toml}");
    assert!(toml.contains("  timeout = \"5s\""), "{toml}");
    assert!(
        toml.contains("\"  RewriteRule ^/legacy/(.*)$ /t1/api/$1 [PT]\","),
        "{toml}"
    );
    round_trip(d.path(), "lb.conf", "toml");
    for (url, client) in [
        ("/legacy/x", "127.0.0.1"),
        ("/t1/api/admin/y", "192.168.0.1"),
        ("/t1/api/admin/y", "10.0.0.1"),
    ] {
        let h = "Host: agents.example";
        let run = |file: &str| {
            let r = balancerd_in(
                d.path(),
                &[
                    "explain", "--config", file, "GET", url, "-H", h, "--client", client,
                    "--format", "json",
                ],
            );
            assert_eq!(r.code, 0, "{}", r.stderr);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            (
                v["decision"].clone(),
                v["answer"].clone(),
                v["member_request"].clone(),
                v["rewrites"].as_array().map(Vec::len),
            )
        };
        assert_eq!(run("lb.conf"), run("lb.toml"), "{url} from {client}");
    }
    // A diagnostic inside `httpd = [...]` points at the string in the TOML file.
    d.write(
        "bad.toml",
        "httpd = [\n  \"ProxyPass /x balancer://nowhere/\",\n  \"NoSuchDirective on\",\n]\n",
    );
    let r = d.check("bad.toml");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("bad.toml:3:4: error:"), "{}", r.stderr);
}

/// TOML durations finer than httpd reads are listed with the member's place; the rest of the
/// config converts.
#[test]
fn what_httpd_cannot_say_is_listed_with_its_place() {
    let d = ConfDir::new();
    d.write(
        "lb.toml",
        "[[listen]]
addr = \"127.0.0.1:8080\"

[[balancer]]
name = \"t1\"
  [[balancer.member]]
  url = \"http://a:1\"
  timeout = \"1500ms\"
  connectiontimeout = \"250ms\"

[[route]]
path = \"/t1\"
to = \"balancer://t1/\"
",
    );
    let r = balancerd_in(d.path(), &["convert", "lb.toml", "-o", "lb.conf"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "lb.toml:7:9: note: timeout=1500 ms on http://a:1: httpd reads timeout in whole seconds; written as 2"
        ),
        "{}",
        r.stderr
    );
    let conf = std::fs::read_to_string(d.path().join("lb.conf")).unwrap();
    assert!(
        conf.contains("BalancerMember http://a:1 timeout=2 connectiontimeout=250ms"),
        "{conf}"
    );
    // A config with errors is not converted.
    d.write("broken.conf", "ProxyPass /x balancer://missing/\nBogus\n");
    let r = balancerd_in(d.path(), &["convert", "broken.conf"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

/// What fuzzing `convert` found (`fuzz/fuzz_targets/config_file.rs`: a config that loads
/// converts to both dialects, and each converted file loads to the same summary): settings
/// one dialect took and the other refused. Each is now refused in both, or converts.
#[test]
fn fuzz_finds_load_the_same_in_both_dialects() {
    let d = ConfDir::new();
    // Refused at their line and column.
    for (file, text, at, message) in [
        (
            "a.toml",
            "[[balancer]]\nname = \"\"\n",
            "a.toml:2:8: error:",
            "is not a name balancer:// can carry",
        ),
        (
            "b.toml",
            "[[balancer]]\nname = \"a/b\"\n",
            "b.toml:2:8: error:",
            "is not a name balancer:// can carry",
        ),
        (
            "c.toml",
            "[[balancer]]\nname = \"t\"\n  [[balancer.member]]\n  url = \"http://h:1/x, y\"\n",
            "c.toml:4:9: error:",
            "has a space or control character; a member URL is one word",
        ),
        (
            "d.toml",
            "[server]\ntimeout = \"0s\"\n",
            "d.toml:2:11: error:",
            "timeout must be more than 0",
        ),
        (
            "e.toml",
            "[[balancer]]\nname = \"t\"\n  [[balancer.member]]\n  url = \"http://h:1\"\n  hcinterval = \"50ms\"\n",
            "e.toml:5:16: error:",
            "hcinterval must be at least 100 ms",
        ),
        (
            "f.conf",
            "ProxyPass /t/dest2 balancer:///tlwebdav/dest3\n",
            "f.conf:1:20: error:",
            "balancer:// needs a name",
        ),
        (
            "g.conf",
            "ProxyPass /t1/rws balancer://?tlrws/rws\n",
            "g.conf:1:19: error:",
            "a balancer name has no wildcard characters",
        ),
    ] {
        d.write(file, text);
        let r = d.check(file);
        assert_eq!(r.code, 1, "{file}: {}", r.stderr);
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with(at) && l.contains(message)),
            "{file}: want {at} … {message}\n{}",
            r.stderr
        );
    }
    // Taken, and converted both ways to the same model.
    d.write(
        "h.toml",
        "[[balancer]]\nname = \"t1\"\nstickysession = \"JSESS ofst\"\n  [[balancer.member]]\n  url = \"http://h:1\"\n\n[[location]]\npath = \"/sus\"\nallow = []\n",
    );
    d.write("i.conf", "ProxyPass /t1/x balancer://t\u{64c}m/y\n");
    for f in ["h.toml", "i.conf"] {
        round_trip(d.path(), f, "toml");
        round_trip(d.path(), f, "httpd");
    }
    // An empty allow list lets no one in, in both dialects.
    let r = balancerd_in(
        d.path(),
        &[
            "explain", "--config", "h.toml", "GET", "/sus", "--format", "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["locations"][0]["access"], "denied for 127.0.0.1");
}
