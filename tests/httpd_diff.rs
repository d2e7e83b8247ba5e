//! Differential tests: the same config text served by real httpd (Debian's `apache2`, which
//! `.ci/run` installs) and by balancerd, the same raw requests sent to both, and what the
//! client sees compared. This is how an httpd behaviour is pinned: by running httpd, not by
//! reading its manual.
//!
//! Each server gets its own preamble (`Listen`, and for httpd the `LoadModule` lines and its
//! own pid and error files); the routing part of the config is the same text for both.

mod support;
use std::process::{Child, Command};
use std::time::Duration;
use support::*;

const APACHE2: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// The `LoadModule` lines the test httpd runs with (Debian's module files).
fn module_lines() -> String {
    let modules = [
        ("mpm_event_module", "mod_mpm_event.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("authz_host_module", "mod_authz_host.so"),
        ("headers_module", "mod_headers.so"),
        ("status_module", "mod_status.so"),
        ("proxy_module", "mod_proxy.so"),
        ("proxy_http_module", "mod_proxy_http.so"),
        ("slotmem_shm_module", "mod_slotmem_shm.so"),
        ("proxy_balancer_module", "mod_proxy_balancer.so"),
        ("lbmethod_byrequests_module", "mod_lbmethod_byrequests.so"),
        ("lbmethod_bybusyness_module", "mod_lbmethod_bybusyness.so"),
        ("lbmethod_bytraffic_module", "mod_lbmethod_bytraffic.so"),
        ("reqtimeout_module", "mod_reqtimeout.so"),
        ("env_module", "mod_env.so"),
        ("alias_module", "mod_alias.so"),
        ("rewrite_module", "mod_rewrite.so"),
    ];
    modules
        .iter()
        .map(|(name, file)| format!("LoadModule {name} {MODULES}/{file}\n"))
        .collect()
}

/// A real httpd on loopback, stopped on drop.
struct Httpd {
    child: Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Httpd {
    fn start(routing: &str) -> Httpd {
        assert!(
            std::path::Path::new(APACHE2).exists(),
            "{APACHE2} is missing: install Debian's apache2 (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut conf = format!(
            "ServerRoot {d}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nMutex file:{d} default\nDefaultRuntimeDir {d}\nListen 127.0.0.1:{port}\n",
            d = dir.path().display()
        );
        conf.push_str(&module_lines());
        conf.push_str(routing);
        let path = dir.path().join("httpd.conf");
        std::fs::write(&path, conf).unwrap();
        // Its own process group: httpd's worker processes go with it on drop (a SIGKILL of
        // the parent alone leaves them running).
        use std::os::unix::process::CommandExt;
        let child = Command::new(APACHE2)
            .process_group(0)
            .arg("-f")
            .arg(&path)
            .arg("-D")
            .arg("FOREGROUND")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start apache2");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut h = Httpd { child, addr, dir };
        for _ in 0..300 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return h;
            }
            if let Ok(Some(st)) = h.child.try_wait() {
                panic!("apache2 exited ({st}): {}", h.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("apache2 did not start: {}", h.logs());
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        // The whole group: the parent and every worker process it started.
        let _ = balancerd::app::send_signal_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client sees of one answer: the status line's code and the fields named.
fn seen(answer: &str, fields: &[&str]) -> (String, Vec<(String, Option<String>)>) {
    let mut lines = answer.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string();
    let head: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    let values = fields
        .iter()
        .map(|f| {
            let v = head.iter().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(f)
                    .then(|| v.trim().to_string())
            });
            (f.to_string(), v)
        })
        .collect();
    (status, values)
}

/// Sends each request to both servers and compares status and fields.
async fn same_answers(routing: &str, cases: &[(&[u8], &[&str])]) -> Vec<String> {
    let httpd = Httpd::start(routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    let mut out = Vec::new();
    for (req, fields) in cases {
        let (h, _) = raw(httpd.addr, req, Duration::from_millis(700)).await;
        let (b, _) = raw(ours.addr, req, Duration::from_millis(700)).await;
        let (hs, bs) = (seen(&h, fields), seen(&b, fields));
        assert_eq!(
            hs,
            bs,
            "request {:?}\n-- httpd --\n{h}\n-- balancerd --\n{b}\n{}",
            String::from_utf8_lossy(req),
            httpd.logs()
        );
        out.push(hs.0);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pass_reverse_names_the_server_as_httpd_does() {
    let member = Backend::start("m").await;
    member.set_reply(Reply::Status(302));
    member.add_header("Location", &format!("http://{}/api/next", member.addr));
    let routing = format!(
        "ServerName lb.example\nProxyPass /t1/api http://{a}/api\nProxyPassReverse /t1/api http://{a}/api\n",
        a = member.addr
    );
    let statuses = same_answers(
        &routing,
        &[
            // No Host (HTTP/1.0): the Location names the ServerName (no port), as httpd's.
            (b"GET /t1/api/x HTTP/1.0\r\n\r\n", &["location"]),
            // A Host: the Location names it.
            (
                b"GET /t1/api/x HTTP/1.1\r\nHost: gir.example:8443\r\nConnection: close\r\n\r\n",
                &["location"],
            ),
        ],
    )
    .await;
    assert_eq!(statuses, ["302", "302"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_star_is_answered_by_the_server_as_httpd_does() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\nProxyPass /t1/api http://{a}/api\n",
        a = member.addr
    );
    let statuses = same_answers(
        &routing,
        &[(
            b"OPTIONS * HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
            &["content-length"],
        )],
    )
    .await;
    assert_eq!(statuses, ["200"]);
    assert_eq!(member.count(), 0, "OPTIONS * is never proxied");
}

/// `/server-status?auto` carries every key httpd's does, in httpd's order (the Pacemaker
/// `apache` agent and monitoring scripts read them by name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_status_auto_has_httpds_keys_in_httpds_order() {
    let routing = "ServerName lb.example\nExtendedStatus On\n<Location /server-status>\nSetHandler server-status\n</Location>\n";
    let httpd = Httpd::start(routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .filter(|k| !k.starts_with("ProxyBalancer["))
            .collect()
    };
    let req = b"GET /server-status?auto HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n";
    let body = |answer: String| {
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    let (h, _) = raw(httpd.addr, req, Duration::from_millis(700)).await;
    let (b, _) = raw(ours.addr, req, Duration::from_millis(700)).await;
    let (hk, bk) = (keys(&body(h)), keys(&body(b)));
    assert!(hk.len() > 20, "httpd answered: {hk:?}\n{}", httpd.logs());
    // Every key of httpd's, in the same relative order; balancerd may add its own.
    let mut at = 0;
    for k in &hk {
        match bk[at..].iter().position(|x| x == k) {
            Some(p) => at += p + 1,
            None => panic!(
                "balancerd lacks '{k}' (or has it out of httpd's order)\nhttpd: {hk:?}\nbalancerd: {bk:?}"
            ),
        }
    }
}

/// A balancer with no members loads and answers 503; `ProxyPassMatch` with `$1` right after
/// the balancer name routes into that balancer (httpd substitutes, then looks the name up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_balancers_and_dollar_n_after_the_balancer_name_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\nProxyPass /t3/api balancer://t3rws/api\nProxyPassMatch ^/m(/.*)$ balancer://cluster$1\n<Proxy balancer://cluster>\nBalancerMember http://{a}\n</Proxy>\n",
        a = member.addr
    );
    let statuses = same_answers(
        &routing,
        &[
            (
                b"GET /t3/api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
                &[],
            ),
            (
                b"GET /m/rec/1 HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
                &[],
            ),
        ],
    )
    .await;
    assert_eq!(statuses, ["503", "200"]);
    // Both servers sent the member the same path.
    let seen: Vec<String> = member
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(seen, ["/rec/1", "/rec/1"]);
}

/// `<IfModule>` is true only for a module the config loads (or one built into httpd):
/// a block for a module the files do not load is skipped, errors and all, as httpd skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_module_follows_the_modules_the_config_loads() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\n<IfModule ssl_module>\nSSLEngine on\nSSLCertificateFile /nonexistent.pem\nProxyPass /s http://{a}/s\n</IfModule>\n<IfModule mod_deflate.c>\nProxyPass /r http://{a}/r\n</IfModule>\n<IfModule mod_proxy.c>\nProxyPass /p http://{a}/p\n</IfModule>\n<IfModule !mod_ssl.c>\nProxyPass /n http://{a}/n\n</IfModule>\n<IfModule log_config_module>\nProxyPass /l http://{a}/l\n</IfModule>\n",
        a = member.addr
    );
    let httpd = Httpd::start(&routing);
    // balancerd reads the same LoadModule lines (the module files are httpd's business).
    let ours = Proxy::start(
        &format!("Listen 127.0.0.1:{{PORT}}\n{}{routing}", module_lines()),
        &[],
    );
    for (path, want) in [
        ("/s", 404),
        ("/r", 404),
        ("/p", 200),
        ("/n", 200),
        ("/l", 200),
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n");
        let (h, _) = raw(httpd.addr, req.as_bytes(), Duration::from_millis(700)).await;
        let (b, _) = raw(ours.addr, req.as_bytes(), Duration::from_millis(700)).await;
        let (hs, bs) = (seen(&h, &[]).0, seen(&b, &[]).0);
        assert_eq!(hs, want.to_string(), "httpd {path}: {h}\n{}", httpd.logs());
        assert_eq!(bs, hs, "balancerd {path}: {b}\n{}", ours.log_text());
    }
}

/// A `ProxyPass` inside `<Location>` is tried before the server's own `ProxyPass` lines,
/// whatever their order in the file; of two matching `<Location>` sections the later wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pass_in_location_goes_before_the_servers_own() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let c = Backend::start("C").await;
    let routing = format!(
        "ServerName lb.example\nProxyPass /t1 http://{b}/b\n<Location /t1/api>\nProxyPass http://{a}/a\n</Location>\n<Location /t1/api/v2>\nProxyPass http://{c}/c\n</Location>\nProxyPass /t2 http://{b}/t2\n",
        a = a.addr,
        b = b.addr,
        c = c.addr
    );
    let httpd = Httpd::start(&routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    for path in ["/t1/api/x", "/t1/api/v2/y", "/t1/other", "/t2/z"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n");
        let (h, _) = raw(httpd.addr, req.as_bytes(), Duration::from_millis(700)).await;
        let (o, _) = raw(ours.addr, req.as_bytes(), Duration::from_millis(700)).await;
        let body = |t: &str| {
            t.split_once("\r\n\r\n")
                .map(|(_, b)| b.trim().to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            body(&o),
            body(&h),
            "{path}\n-- httpd --\n{h}\n-- balancerd --\n{o}\n{}",
            httpd.logs()
        );
    }
    let targets = |be: &Backend| -> Vec<String> {
        be.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.target.clone())
            .collect()
    };
    // Each request reached the same member at the same path from both servers.
    assert_eq!(targets(&a), ["/a/x", "/a/x"]);
    assert_eq!(targets(&c), ["/c/y", "/c/y"]);
    assert_eq!(targets(&b), ["/b/other", "/b/other", "/t2/z", "/t2/z"]);
}

/// Sends `parts` with the pauses given before each, then reads until the server closes or
/// `wait` passes without a byte.
async fn slow(addr: std::net::SocketAddr, parts: &[(u64, &[u8])], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    for (pause, bytes) in parts {
        tokio::time::sleep(Duration::from_millis(*pause)).await;
        if s.write_all(bytes).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// mod_reqtimeout as httpd runs it: a head that stops arriving is answered 408 when the
/// header stage's time is up; a head that keeps arriving at `MinRate` has its deadline
/// pushed on (to the stage's maximum) and is served; a body that stops is answered as
/// httpd answers it. Both servers get the same config and the same timed bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_read_timeout_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\nRequestReadTimeout header=1-4,MinRate=100 body=1\nProxyPass / http://{a}/\n",
        a = member.addr
    );
    let httpd = Httpd::start(&routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    let filler = format!("X-Filler: {}\r\n", "f".repeat(120));
    let stalled_head: &[(u64, &[u8])] = &[(0, b"GET /a HTTP/1.1\r\nHost: lb.example\r\n")];
    let dripped_head: Vec<(u64, &[u8])> = vec![
        (
            0,
            b"GET /b HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n",
        ),
        (700, filler.as_bytes()),
        (700, filler.as_bytes()),
        (700, filler.as_bytes()),
        (0, b"\r\n"),
    ];
    let stalled_body: &[(u64, &[u8])] = &[(
        0,
        b"POST /c HTTP/1.1\r\nHost: lb.example\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc",
    )];
    let mut statuses = Vec::new();
    for (what, parts) in [
        ("stalled head", stalled_head.to_vec()),
        ("head dripped at MinRate", dripped_head),
        ("stalled body", stalled_body.to_vec()),
    ] {
        let started = std::time::Instant::now();
        let h = slow(httpd.addr, &parts, Duration::from_secs(4)).await;
        let h_took = started.elapsed();
        let started = std::time::Instant::now();
        let b = slow(ours.addr, &parts, Duration::from_secs(4)).await;
        let b_took = started.elapsed();
        let (hs, bs) = (seen(&h, &[]).0, seen(&b, &[]).0);
        assert_eq!(
            hs,
            bs,
            "{what}\n-- httpd ({h_took:?}) --\n{h}\n-- balancerd ({b_took:?}) --\n{b}\n{}",
            httpd.logs()
        );
        statuses.push(hs);
    }
    assert_eq!(statuses[0], "408", "a stalled head is answered 408");
    assert_eq!(statuses[1], "200", "a head arriving at MinRate is served");
    assert_eq!(statuses[2], "408", "a stalled body is answered 408");
    assert_eq!(
        member.count(),
        2,
        "only the dripped head reached the member (once from each server)"
    );
}

/// `TraceEnable Off` (Debian's stock `security.conf`) refuses a proxied TRACE as httpd does;
/// with the default (On) TRACE is proxied to the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_enable_as_httpd() {
    let member = Backend::start("m").await;
    for (setting, want) in [("TraceEnable Off\n", "405"), ("", "200")] {
        let routing = format!(
            "ServerName lb.example\n{setting}ProxyPass /t1/api http://{a}/api\n",
            a = member.addr
        );
        let statuses = same_answers(
            &routing,
            &[(
                b"TRACE /t1/api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
                &["allow"],
            )],
        )
        .await;
        assert_eq!(statuses, [want], "{setting}");
    }
    assert_eq!(
        member.count(),
        2,
        "only the allowed TRACEs reached the member"
    );
}

/// `AddDefaultCharset` (RHEL's stock httpd.conf has `AddDefaultCharset UTF-8`) adds the
/// charset to a proxied `text/html` or `text/plain` answer that has none, as httpd does, and
/// leaves other types and types that name a charset alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_default_charset_as_httpd() {
    for ct in [
        "text/html",
        "text/plain",
        "application/json",
        "text/html; charset=koi8-r",
    ] {
        let member = Backend::start("m").await;
        member.add_header("Content-Type", ct);
        let routing = format!(
            "ServerName lb.example\nAddDefaultCharset UTF-8\nProxyPass /t1/api http://{a}/api\n",
            a = member.addr
        );
        let statuses = same_answers(
            &routing,
            &[(
                b"GET /t1/api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
                &["content-type"],
            )],
        )
        .await;
        assert_eq!(statuses, ["200"], "{ct}");
        let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
        let (answer, _) = raw(
            ours.addr,
            b"GET /t1/api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
            Duration::from_millis(700),
        )
        .await;
        let got = seen(&answer, &["content-type"]).1[0].1.clone();
        let want = match ct {
            "text/html" | "text/plain" => format!("{ct}; charset=UTF-8"),
            other => other.to_string(),
        };
        assert_eq!(got.as_deref(), Some(want.as_str()), "{answer}");
    }
}

/// `ErrorDocument` for the errors the proxy answers itself, as httpd: a text replaces the
/// page and keeps the status; a local path is fetched with GET (through its own route; the
/// client gets that answer, status included); a URL is a 302; a `<Location>`'s own wins over
/// the server's; a member's error answer is never replaced; a local document that fails too
/// gives the first status with httpd's "Additionally" sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_document_as_httpd() {
    let member = Backend::start("m").await;
    let dead = free_port();
    let routing = format!(
        "ServerName lb.example\n\
         ErrorDocument 404 \"nope text\"\n\
         ErrorDocument 403 /err/403\n\
         ErrorDocument 503 http://example.com/down\n\
         ProxyPass /err http://{a}/err\n\
         ProxyPass /api http://{a}/api\n\
         ProxyPass /dead http://127.0.0.1:{dead}/dead\n\
         <Location /api/secret>\nRequire all denied\n</Location>\n\
         <Location /api/local>\nErrorDocument 403 \"location text\"\nRequire all denied\n</Location>\n",
        a = member.addr
    );
    let fields: &[&str] = &["content-type", "content-length", "location"];
    let statuses = same_answers(
        &routing,
        &[
            (b"GET /nothing HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n", fields),
            (b"GET /api/secret HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n", &["x-backend"]),
            (
                b"POST /api/secret HTTP/1.1\r\nHost: lb.example\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
                &["x-backend"],
            ),
            (b"GET /api/local HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n", fields),
            (b"GET /dead/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n", &["location"]),
        ],
    )
    .await;
    assert_eq!(statuses, ["404", "200", "200", "403", "302"]);
    assert!(
        member.saw("GET", "/err/403"),
        "the local document was fetched with GET"
    );
    assert!(!member.saw("POST", "/err/403"));
    // The member's own 404 passes through untouched.
    member.set_reply(Reply::Status(404));
    let statuses = same_answers(
        &routing,
        &[(
            b"GET /api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
            fields,
        )],
    )
    .await;
    assert_eq!(statuses, ["404"]);
    // A local document that fails too.
    let routing = "ServerName lb.example\nErrorDocument 404 /missing/doc\n";
    let statuses = same_answers(
        routing,
        &[(
            b"GET /nothing HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
            &["content-type"],
        )],
    )
    .await;
    assert_eq!(statuses, ["404"]);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    let (answer, _) = raw(
        ours.addr,
        b"GET /nothing HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n",
        Duration::from_millis(700),
    )
    .await;
    assert!(
        answer.contains("Additionally, a 404 Not Found error was encountered while trying to use an ErrorDocument to handle the request."),
        "{answer}"
    );
}

/// Sends `req` to httpd and to balancerd (same config) and returns, for each, the client's
/// answer and the request head the member saw.
async fn member_views(
    routing: &str,
    member: &Backend,
    req: &[u8],
) -> ((String, Seen), (String, Seen)) {
    let httpd = Httpd::start(routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    let (h, _) = raw(httpd.addr, req, Duration::from_millis(700)).await;
    let hs = member.last();
    let (b, _) = raw(ours.addr, req, Duration::from_millis(700)).await;
    let bs = member.last();
    ((h, hs), (b, bs))
}

/// `ProxyVia On` (one of the public configs in `tests/fixtures/real/` has it) adds this hop
/// to the member's `Via` (merged after the client's) and to the client's answer, named as
/// httpd names it; `Block` removes the client's; `Off` passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_via_as_httpd() {
    let member = Backend::start("m").await;
    for setting in ["On", "Block", "Off"] {
        let routing = format!(
            "ServerName lb.example\nProxyVia {setting}\nProxyPass /t1/api http://{a}/api\n",
            a = member.addr
        );
        for host in ["lb.example", "lb.example:8080"] {
            let req = format!(
                "GET /t1/api/x HTTP/1.1\r\nHost: {host}\r\nVia: 1.0 client-proxy\r\nConnection: close\r\n\r\n"
            );
            let ((h, hs), (b, bs)) = member_views(&routing, &member, req.as_bytes()).await;
            let via = |s: &Seen| -> Vec<String> {
                s.headers
                    .get_all("via")
                    .iter()
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
                    .split(", ")
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(
                via(&hs),
                via(&bs),
                "ProxyVia {setting}, Host {host}: the member's Via"
            );
            assert_eq!(
                seen(&h, &["via"]),
                seen(&b, &["via"]),
                "ProxyVia {setting}, Host {host}: the client's Via\n{h}\n{b}"
            );
        }
    }
}

/// The `SetEnv` switches of mod_proxy_http (Open-Xchange's stock proxy_http.conf sets two
/// inside `<Proxy balancer://…>`): `proxy-nokeepalive` closes the member connection
/// (`Connection: close`); with `proxy-sendchunked` a `Content-Length` body keeps its length
/// and a chunked body above the 16 KiB prefetch stays chunked, as httpd 2.4 sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_env_proxy_switches_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\n<Proxy balancer://ox>\nBalancerMember http://{a}\nSetEnv proxy-nokeepalive\nSetEnv proxy-sendchunked\n</Proxy>\nProxyPass /ajax balancer://ox/ajax\n",
        a = member.addr
    );
    for (size, chunked) in [(100usize, false), (40_000, false), (40_000, true)] {
        let mut req = if chunked {
            format!(
                "POST /ajax/x HTTP/1.1\r\nHost: lb.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{size:x}\r\n"
            )
        } else {
            format!(
                "POST /ajax/x HTTP/1.1\r\nHost: lb.example\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            )
        }
        .into_bytes();
        req.extend(std::iter::repeat_n(b'a', size));
        if chunked {
            req.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        let ((h, hs), (b, bs)) = member_views(&routing, &member, &req).await;
        assert_eq!(seen(&h, &[]).0, seen(&b, &[]).0);
        for field in ["connection", "transfer-encoding", "content-length"] {
            assert_eq!(
                hs.headers.get(field),
                bs.headers.get(field),
                "{size} bytes: the member's {field}"
            );
        }
        assert_eq!(hs.body_len, bs.body_len);
        assert_eq!(hs.body_sha, bs.body_sha);
    }
    assert_eq!(
        member
            .last()
            .headers
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
}

/// mod_alias redirects as httpd applies them in front of a proxy: a server `ProxyPass` wins
/// over a server `Redirect` for the same path; a prefix keeps the rest of the path and the
/// query; `RedirectMatch` substitutes `$N`; `gone` is 410; a path target is made absolute
/// with the request's host; a `<Location>`'s `Redirect` wins over its `ProxyPass`, after its
/// access rules; a prefix matches whole segments only; a denied location without a handler
/// is 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\n\
         Redirect /old http://x.example/new\n\
         ProxyPass /old http://{a}/old\n\
         Redirect permanent /moved https://y.example/m\n\
         RedirectMatch 301 ^/rm/(.*)\\.html$ https://z.example/$1\n\
         Redirect gone /g\n\
         Redirect 303 /see /local/path\n\
         <Location /loc>\nRedirect http://w.example/w\nProxyPass http://{a}/loc\n</Location>\n\
         <Location /denied>\nRequire all denied\nRedirect http://w.example/d\n</Location>\n\
         ProxyPass /denied http://{a}/denied\n\
         <Location /closed>\nRequire all denied\n</Location>\n",
        a = member.addr
    );
    let req = |p: &str| {
        format!("GET {p} HTTP/1.1\r\nHost: lb.example:8080\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    let paths = [
        "/old/a?q=1",
        "/moved/x?y=2",
        "/rm/p/q.html?z",
        "/g/x",
        "/see/a",
        "/loc/x",
        "/denied/x",
        "/movedx",
        "/closed/x",
    ];
    let reqs: Vec<Vec<u8>> = paths.iter().map(|p| req(p)).collect();
    let cases: Vec<(&[u8], &[&str])> = reqs
        .iter()
        .map(|r| (r.as_slice(), &["location"][..]))
        .collect();
    let statuses = same_answers(&routing, &cases).await;
    assert_eq!(
        statuses,
        [
            "200", "301", "301", "410", "303", "302", "403", "404", "403"
        ]
    );
}

/// mod_rewrite in front of balancers, as httpd runs it (before `ProxyPass`): `[P]` into a
/// balancer with `%N` from a header condition and `$N` from the path; a failed condition
/// falls through to `ProxyPass`; `[R=301]` keeps the query; `[F]`, `[G]`; a query condition
/// picking between two `[P]` rules, one with a new query and `QSA`; two host conditions
/// joined by `[OR]` with `[NC]`; `[PT]` handing a new path to `ProxyPass`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_rewrite_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\n\
         RewriteEngine On\n\
         <Proxy balancer://cluster>\nBalancerMember http://{a}\n</Proxy>\n\
         RewriteCond %{{HTTP:X-Tenant}} ^t([0-9]+)$\n\
         RewriteRule ^/api/(.*)$ balancer://cluster/tenant%1/$1 [P,L]\n\
         RewriteRule ^/old/(.*)$ /new/$1 [R=301,L]\n\
         RewriteRule ^/blocked - [F]\n\
         RewriteRule ^/gone - [G]\n\
         RewriteCond %{{QUERY_STRING}} (^|&)v=2(&|$)\n\
         RewriteRule ^/svc/(.*)$ http://{a}/v2/$1?x=1 [P,QSA]\n\
         RewriteRule ^/svc/(.*)$ http://{a}/v1/$1 [P]\n\
         RewriteCond %{{HTTP_HOST}} ^www\\. [NC,OR]\n\
         RewriteCond %{{HTTP_HOST}} ^old\\.\n\
         RewriteRule ^/(.*)$ https://lb.example/$1 [R,L]\n\
         RewriteRule ^/pt/(.*)$ /app/$1 [PT]\n\
         ProxyPass /app http://{a}/app\n\
         ProxyPass /api http://{a}/direct\n",
        a = member.addr
    );
    let cases: [(&str, &str, &str, &str); 9] = [
        ("/api/x", "lb.example", "X-Tenant: t7\r\n", "200 /tenant7/x"),
        ("/api/x", "lb.example", "", "200 /direct/x"),
        ("/old/a?q=1", "lb.example", "", "301"),
        ("/blocked", "lb.example", "", "403"),
        ("/gone/x", "lb.example", "", "410"),
        ("/svc/a?v=2", "lb.example", "", "200 /v2/a?x=1&v=2"),
        ("/svc/a?v=1", "lb.example", "", "200 /v1/a?v=1"),
        ("/p?z", "WWW.lb.example", "", "302"),
        ("/pt/z", "lb.example", "", "200 /app/z"),
    ];
    for (path, host, extra, want) in cases {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        let ((h, hs), (b, bs)) = member_views(&routing, &member, req.as_bytes()).await;
        let (hseen, bseen) = (seen(&h, &["location"]), seen(&b, &["location"]));
        assert_eq!(
            hseen, bseen,
            "{path} (Host {host})\n-- httpd --\n{h}\n-- balancerd --\n{b}"
        );
        let got = if hseen.0 == "200" {
            assert_eq!(hs.target, bs.target, "{path}: the member's target");
            format!("200 {}", bs.target)
        } else {
            hseen.0.clone()
        };
        assert_eq!(got, want, "{path}");
    }
}

/// `UseCanonicalName On`: self-referential URLs name the `ServerName` instead of the
/// client's `Host`: a member's `Location` mapped by `ProxyPassReverse`, and a `Redirect`
/// to a path; `Off` (the default) names the `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_canonical_name_as_httpd() {
    let member = Backend::start("m").await;
    member.set_reply(Reply::Status(302));
    member.add_header("Location", &format!("http://{}/api/next", member.addr));
    for setting in ["On", "Off"] {
        let routing = format!(
            "ServerName lb.example\nUseCanonicalName {setting}\nProxyPass /t1/api http://{a}/api\nProxyPassReverse /t1/api http://{a}/api\nRedirect 302 /go /landing\n",
            a = member.addr
        );
        let statuses = same_answers(
            &routing,
            &[
                (
                    b"GET /t1/api/x HTTP/1.1\r\nHost: other.example:8080\r\nConnection: close\r\n\r\n",
                    &["location"],
                ),
                (
                    b"GET /go/x HTTP/1.1\r\nHost: other.example:8080\r\nConnection: close\r\n\r\n",
                    &["location"],
                ),
            ],
        )
        .await;
        assert_eq!(statuses, ["302", "302"], "{setting}");
    }
}

/// `AllowEncodedSlashes`: `Off` (the default) answers a `%2F` 404; `On` decodes it to a
/// separator (the member gets `/`); `NoDecode` keeps it (the member gets `%2F`), as httpd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_encoded_slashes_as_httpd() {
    let member = Backend::start("m").await;
    // (Off last: the member has seen a request by then, which member_views reads.)
    for (setting, want) in [
        ("On", "200 /api/a/b"),
        ("NoDecode", "200 /api/a%2Fb"),
        ("Off", "404"),
    ] {
        let routing = format!(
            "ServerName lb.example\nAllowEncodedSlashes {setting}\nProxyPass /t1/api http://{a}/api\n",
            a = member.addr
        );
        let req = b"GET /t1/api/a%2Fb HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n";
        let before = member.count();
        let ((h, hs), (b, bs)) = member_views(&routing, &member, req).await;
        let (hst, bst) = (seen(&h, &[]).0, seen(&b, &[]).0);
        assert_eq!(hst, bst, "{setting}\n{h}\n{b}");
        let got = if hst == "200" {
            assert_eq!(hs.target, bs.target, "{setting}: the member's path");
            format!("200 {}", bs.target)
        } else {
            assert_eq!(
                member.count(),
                before,
                "{setting}: nothing reached the member"
            );
            hst
        };
        assert_eq!(got, want, "{setting}");
    }
}

/// The `Host` rules (RFC 9112 §3.2) beside httpd: a missing, repeated, listed or malformed
/// `Host` is a 400 before anything reaches a member; an absolute-form target's authority
/// takes the place of `Host`; an HTTP/1.0 request without `Host` gets the server's
/// `ServerName` as the member's `Host` (`ProxyPreserveHost On`), as httpd sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_field_rules_as_httpd() {
    let member = Backend::start("m").await;
    let routing = format!(
        "ServerName lb.example\nProxyPreserveHost On\nProxyPass /t1/api http://{a}/api\n",
        a = member.addr
    );
    let httpd = Httpd::start(&routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    // (request, the status both give, the member's Host when it is reached)
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "GET /t1/api/ok HTTP/1.1\r\nHost: lb.example\r\n",
            "200",
            Some("lb.example"),
        ),
        ("GET /t1/api/h10 HTTP/1.0\r\n", "200", Some("lb.example")),
        ("GET /t1/api/nohost HTTP/1.1\r\n", "400", None),
        (
            "GET /t1/api/two HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n",
            "400",
            None,
        ),
        (
            "GET /t1/api/list HTTP/1.1\r\nHost: a.example, b.example\r\n",
            "400",
            None,
        ),
        ("GET /t1/api/space HTTP/1.1\r\nHost: a b\r\n", "400", None),
        ("GET /t1/api/slash HTTP/1.1\r\nHost: a/b\r\n", "400", None),
        (
            "GET /t1/api/bracket HTTP/1.1\r\nHost: [::1\r\n",
            "400",
            None,
        ),
        (
            "GET http://abs.example/t1/api/abs HTTP/1.1\r\nHost: lb.example\r\n",
            "200",
            Some("abs.example"),
        ),
    ];
    let mut report = String::new();
    for (req, want, member_host) in cases {
        let req = format!("{req}Connection: close\r\n\r\n");
        let path = req.split_whitespace().nth(1).unwrap();
        let path = path.trim_start_matches("http://abs.example");
        let mut got = Vec::new();
        for (who, addr) in [("httpd", httpd.addr), ("balancerd", ours.addr)] {
            let before = member.count();
            let (answer, _) = raw(addr, req.as_bytes(), Duration::from_millis(700)).await;
            // The status line's version too: an HTTP/1.0 request is answered `HTTP/1.1`.
            let status = format!("{} {}", answer.get(..8).unwrap_or(""), seen(&answer, &[]).0);
            let reached = member.count() > before;
            let host = reached.then(|| {
                let s = member.last();
                assert_eq!(s.target, path.replacen("/t1/api", "/api", 1), "{who}");
                s.headers
                    .get("host")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            });
            report.push_str(&format!("{who}: {req:?} -> {status} {host:?}\n"));
            got.push((status, host));
        }
        assert_eq!(got[0], got[1], "httpd and balancerd differ:\n{report}");
        assert_eq!(got[1].0, format!("HTTP/1.1 {want}"), "{report}");
        assert_eq!(got[1].1.as_deref(), *member_host, "{report}");
    }
}

/// The balancer-manager beside httpd's: the same update requests (and the same refused
/// ones) to both, and after each the same member and balancer state in the XML output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancer_manager_updates_as_httpd() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let routing = format!(
        "ServerName lb.example\n<Proxy balancer://t1rws>\nBalancerMember http://{a} route=A\nBalancerMember http://{b} route=B\nProxySet stickysession=ROUTEID\n</Proxy>\nProxyPass /balancer-manager !\nProxyPass /t1/api balancer://t1rws/api\n<Location /balancer-manager>\nSetHandler balancer-manager\nRequire ip 127.0.0.1\n</Location>\n",
        a = a.addr,
        b = b.addr
    );
    let httpd = Httpd::start(&routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    const REF: &str = "Referer: http://lb.example/balancer-manager\r\n";
    async fn ask(addr: std::net::SocketAddr, req: String) -> String {
        raw(addr, req.as_bytes(), Duration::from_millis(1500))
            .await
            .0
    }
    async fn nonce(addr: std::net::SocketAddr) -> String {
        let page = ask(
            addr,
            "GET /balancer-manager HTTP/1.1\r\nHost: lb.example\r\nConnection: close\r\n\r\n"
                .into(),
        )
        .await;
        let tag = "?b=t1rws&amp;nonce=";
        let at = page.find(tag).unwrap_or_else(|| panic!("{page}")) + tag.len();
        page[at..].split('"').next().unwrap().to_string()
    }
    /// The state the XML shows: per worker and for the balancer, the fields compared.
    async fn state(addr: std::net::SocketAddr) -> Vec<String> {
        let x = ask(
            addr,
            format!("GET /balancer-manager?xml=1 HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
        )
        .await;
        let mut out = Vec::new();
        for tag in [
            "status",
            "loadfactor",
            "lbset",
            "route",
            "redirect",
            "lbmethod",
            "timeout",
            "maxattempts",
            "stickysession",
            "nofailover",
        ] {
            let open = format!("<httpd:{tag}>");
            let vals: Vec<&str> = x
                .split(open.as_str())
                .skip(1)
                .map(|s| s.split('<').next().unwrap())
                .collect();
            out.push(format!("{tag}={vals:?}"));
        }
        out
    }
    let (hn, on) = (nonce(httpd.addr).await, nonce(ours.addr).await);
    let (wa, wb) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    assert_eq!(state(httpd.addr).await, state(ours.addr).await, "at start");
    // (form, extra header lines): taken or refused as httpd takes them.
    let cases: Vec<(String, &str)> = vec![
        (format!("b=t1rws&w={wa}&nonce=NONCE&w_status_N=1"), REF),
        (format!("b=t1rws&w={wb}&nonce=NONCE&w_status_D=1"), ""),
        (format!("b=t1rws&w={wb}&nonce=wrong&w_status_D=1"), REF),
        (
            format!("b=t1rws&w={wb}&nonce=NONCE&w_lf=2.5&w_ls=3&w_wr=B2&w_rr=A"),
            REF,
        ),
        (format!("b=t1rws&w={wb}&nonce=NONCE&w_lf=101&w_ls=100"), REF),
        (
            format!("b=t1rws&w={wa}&nonce=NONCE&w_status_N=0&w_status_I=1&w_status_H=1"),
            REF,
        ),
        (
            format!("b=t1rws&w={wa}&nonce=NONCE&w_status_I=0&w_status_H=0&w_status_R=1"),
            REF,
        ),
        (
            format!("b=t1rws&w={wa}&nonce=NONCE&w_status_R=0&w_status_S=1"),
            REF,
        ),
        (format!("b=t1rws&w={wa}&nonce=NONCE&w_status_S=0"), REF),
        (
            "b=t1rws&nonce=NONCE&b_lbm=bybusyness&b_tmo=7&b_max=2&b_sforce=1".into(),
            REF,
        ),
        ("b=t1rws&nonce=NONCE&b_ss=JSESSIONID|jsessionid".into(), REF),
        (
            "b=t1rws&nonce=NONCE&b_lbm=nosuch&b_tmo=7201&b_max=100".into(),
            REF,
        ),
        ("b=t1rws&nonce=NONCE&b_ss=-".into(), REF),
        (
            "b=t1rws&nonce=NONCE&b_sforce=0".into(),
            "Referer: http://evil.example/\r\n",
        ),
    ];
    for (form, extra) in &cases {
        let mut answers = Vec::new();
        for (addr, n) in [(httpd.addr, &hn), (ours.addr, &on)] {
            let form = form.replace("NONCE", n);
            let answer = ask(
                addr,
                format!(
                    "POST /balancer-manager HTTP/1.1\r\nHost: lb.example\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                    form.len()
                ),
            )
            .await;
            answers.push(seen(&answer, &[]).0);
        }
        assert_eq!(answers[0], answers[1], "{form}: the answer's status");
        assert_eq!(
            state(httpd.addr).await,
            state(ours.addr).await,
            "after {form} with {extra:?}\n{}",
            httpd.logs()
        );
    }
    // A GET query changes nothing in either.
    for (addr, n) in [(httpd.addr, &hn), (ours.addr, &on)] {
        ask(
            addr,
            format!("GET /balancer-manager?b=t1rws&w={wa}&nonce={n}&w_status_D=1 HTTP/1.1\r\nHost: lb.example\r\n{REF}Connection: close\r\n\r\n"),
        )
        .await;
    }
    assert_eq!(
        state(httpd.addr).await,
        state(ours.addr).await,
        "after a GET"
    );
}

/// The request limits beside httpd, at their defaults and set lower: a request line over
/// `LimitRequestLine` (414), a field over `LimitRequestFieldSize` (400), more fields than
/// `LimitRequestFields` (400, not 431), and a request just inside every limit (200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_as_httpd() {
    let member = Backend::start("m").await;
    let many = |n: usize| {
        let mut r = String::from("GET /t1/api/x HTTP/1.1\r\nHost: x\r\n");
        for i in 0..n {
            r.push_str(&format!("X-H{i}: v\r\n"));
        }
        r.push_str("Connection: close\r\n\r\n");
        r.into_bytes()
    };
    let long_line = format!(
        "GET /t1/api/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    )
    .into_bytes();
    let big_field = format!(
        "GET /t1/api/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(9000)
    )
    .into_bytes();
    // (The member, hyper, takes at most 100 fields: the proxies add three X-Forwarded-*.)
    for (limits, fields_ok, fields_over) in [("", 90, 120), ("LimitRequestFields 20\n", 17, 21)] {
        let routing = format!(
            "ServerName lb.example\n{limits}ProxyPass /t1/api http://{a}/api\n",
            a = member.addr
        );
        let (ok, over) = (many(fields_ok), many(fields_over));
        let cases: &[(&[u8], &[&str])] = &[
            (&long_line, &[]),
            (&big_field, &[]),
            (&over, &[]),
            (&ok, &[]),
        ];
        let statuses = same_answers(&routing, cases).await;
        assert_eq!(statuses, ["414", "400", "400", "200"], "{limits:?}");
    }
}

/// What `balancerd check` tells an admin about httpd, checked on a running httpd: a
/// balancer defined in two `<Proxy>` sections is one balancer with every member and the last
/// `stickysession`, a name over 63 characters is cut to 63, `timeout=500ms` is 500 seconds
/// (the balancer-manager's XML shows each), an `https://` member without `SSLProxyEngine On`
/// fails with 500, and a `ProxyPassReverseCookiePath` inside `<Proxy balancer://t1rcs>`
/// also rewrites the cookies of a balancer whose name it prefixes (httpd matches `<Proxy>`
/// by prefix), not those of any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_check_says_of_httpd_holds_on_a_running_httpd() {
    let long = "S".repeat(80);
    let merged = format!(
        "ServerName lb.example\n<Proxy balancer://b>\nBalancerMember http://127.0.0.1:9 route=A\nBalancerMember http://127.0.0.2:9\nProxySet stickysession=ROUTEID\n</Proxy>\n<Proxy balancer://b>\nBalancerMember http://127.0.0.3:9\nProxySet stickysession={long}\n</Proxy>\n<Proxy balancer://t>\nBalancerMember http://127.0.0.4:9 timeout=500ms\n</Proxy>\nProxyPass /balancer-manager !\n<Location /balancer-manager>\nSetHandler balancer-manager\n</Location>\nProxyPass /x balancer://b/x\nProxyPass /y balancer://t/y\n"
    );
    // balancerd's diagnostics on the same lines (the timeout is an error there, so the
    // check runs without that balancer).
    let d = tempfile::tempdir().unwrap();
    let without_t = merged
        .replace(
            "<Proxy balancer://t>\nBalancerMember http://127.0.0.4:9 timeout=500ms\n</Proxy>\n",
            "",
        )
        .replace("ProxyPass /y balancer://t/y\n", "");
    std::fs::write(d.path().join("a.conf"), &without_t).unwrap();
    let r = balancerd_in(d.path(), &["check", "--config", "a.conf"]);
    assert!(
        r.stderr.contains("balancer://b is defined again here")
            && r.stderr
                .contains("httpd merges both sections into one balancer")
            && r.stderr.contains("httpd silently truncates it to 63"),
        "{}",
        r.stderr
    );
    std::fs::write(
        d.path().join("t.conf"),
        "BalancerMember balancer://t http://h timeout=500ms\n",
    )
    .unwrap();
    let r = balancerd_in(d.path(), &["check", "--config", "t.conf"]);
    assert!(
        r.stderr.contains(
            "httpd reads timeout as whole seconds and ignores the unit, so this means 500 seconds"
        ),
        "{}",
        r.stderr
    );
    // httpd on the same lines.
    let httpd = Httpd::start(&merged);
    let xml = raw(
        httpd.addr,
        b"GET /balancer-manager?xml=1 HTTP/1.1\r\nHost: lb.example\r\nReferer: http://lb.example/balancer-manager\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await
    .0;
    let b = xml.split("balancer://t").next().unwrap();
    for m in ["127.0.0.1:9", "127.0.0.2:9", "127.0.0.3:9"] {
        assert!(
            b.contains(&format!("<httpd:name>http://{m}</httpd:name>")),
            "{xml}"
        );
    }
    assert!(
        b.contains(&format!(
            "<httpd:stickysession>{}</httpd:stickysession>",
            "S".repeat(63)
        )),
        "the last stickysession, cut to 63: {xml}"
    );
    let t = xml.split("balancer://t").nth(1).unwrap();
    assert!(t.contains("<httpd:timeout>500</httpd:timeout>"), "{xml}");

    // An https member without SSLProxyEngine: httpd answers 500.
    let member = Backend::start("m").await;
    let tls = Httpd::start(&format!(
        "LoadModule ssl_module {MODULES}/mod_ssl.so\nProxyPass /s https://{}/s\n",
        member.addr
    ));
    let (got, _) = raw(
        tls.addr,
        b"GET /s/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 500 "), "{got}");
    assert_eq!(member.count(), 0);

    // A cookie rule inside `<Proxy balancer://t1rcs>`: httpd applies it to that balancer
    // and, matching sections by prefix, to balancer://t1rcsx; not to balancer://t2rws.
    // balancerd applies it to balancer://t1rcs only, and `check` names balancer://t1rcsx.
    let rcs = Backend::start("rcs").await;
    let rcsx = Backend::start("rcsx").await;
    let rws = Backend::start("rws").await;
    for m in [&rcs, &rcsx, &rws] {
        m.add_header("Set-Cookie", "S=1; Path=/rcs");
    }
    let routing = format!(
        "<Proxy balancer://t1rcs>\nBalancerMember http://{}\nProxyPassReverseCookiePath /rcs /t1/rcs\n</Proxy>\n<Proxy balancer://t1rcsx>\nBalancerMember http://{}\n</Proxy>\n<Proxy balancer://t2rws>\nBalancerMember http://{}\n</Proxy>\nProxyPass /t1/rcs balancer://t1rcs/rcs\nProxyPass /t1/x balancer://t1rcsx/rcs\nProxyPass /t2/rws balancer://t2rws/rcs\n",
        rcs.addr, rcsx.addr, rws.addr
    );
    let cookies = Httpd::start(&routing);
    let ours = Proxy::start(&format!("Listen 127.0.0.1:{{PORT}}\n{routing}"), &[]);
    async fn cookie_path(addr: std::net::SocketAddr, path: &str) -> String {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (got, _) = raw(addr, req.as_bytes(), Duration::from_secs(2)).await;
        got.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("set-cookie: s=1; path=")
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{path}: {got}"))
    }
    let mut seen = Vec::new();
    for path in ["/t1/rcs/a", "/t1/x/a", "/t2/rws/a"] {
        seen.push((
            cookie_path(cookies.addr, path).await,
            cookie_path(ours.addr, path).await,
        ));
    }
    let want = [
        ("/t1/rcs", "/t1/rcs"),
        ("/t1/rcs", "/rcs"),
        ("/rcs", "/rcs"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .collect();
    assert_eq!(
        seen, want,
        "(httpd, balancerd) cookie paths for t1rcs, t1rcsx, t2rws"
    );
    std::fs::write(d.path().join("c.conf"), &routing).unwrap();
    let r = balancerd_in(d.path(), &["check", "--config", "c.conf"]);
    assert!(
        r.stderr.contains("httpd matches <Proxy> sections by prefix, so it also rewrites the cookies of balancer://t1rcsx; balancerd applies it only to balancer://t1rcs"),
        "{}",
        r.stderr
    );
}
