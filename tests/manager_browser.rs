//! The balancer-manager in a real browser: headless Chromium driven through chromedriver
//! (the W3C WebDriver protocol, spoken here over plain HTTP/1.1 with JSON). An admin opens
//! the page, sets a member to Drain by clicking, sees the new state, and traffic follows;
//! a page on another origin that posts the manager's form (even with the right nonce, and
//! from the same host, which httpd's `Referer` test lets through) changes nothing.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`. The screenshot the test
//! takes is written to `target/balancer-manager.png` (the README's is a copy).

mod support;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;
use support::*;

/// One WebDriver command: `method` on `path` with `body`; the answer's `value`.
fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then its body as framed.
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("chromedriver answers");
        assert!(n > 0, "chromedriver closed");
        out.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let done = |out: &[u8]| match length {
        Some(n) => out.len() >= head_end + n,
        None => out.ends_with(b"0\r\n\r\n"),
    };
    while !done(&out) {
        let n = s.read(&mut buf).expect("chromedriver answers");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let json_body = String::from_utf8_lossy(&out[head_end..]).into_owned();
    // A chunked answer: the JSON object is between the outer braces.
    let start = json_body.find('{').unwrap_or(0);
    let end = json_body.rfind('}').map_or(json_body.len(), |e| e + 1);
    let v: Value = serde_json::from_str(&json_body[start..end])
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {json_body}"));
    v["value"].clone()
}

struct Browser {
    driver: std::process::Child,
    port: u16,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let v = wd(
            port,
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,900"]
                }
            }}})),
        );
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver,
            port,
            session,
        }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        wd(
            self.port,
            method,
            &format!("/session/{}{what}", self.session),
            body,
        )
    }

    fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn click(&self, css: &str) {
        let e = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {e}\n{}", self.source()))
            .to_string();
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn screenshot(&self, to: &std::path::Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let data = base64_decode(b64.as_str().unwrap_or_default());
        let _ = std::fs::write(to, data);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = acc << 6 | c as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

const CONFIG: &str = "Listen 127.0.0.1:{PORT}
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

async fn xml_status(addr: std::net::SocketAddr) -> Vec<String> {
    let (x, _) = raw(
        addr,
        format!("GET /balancer-manager?xml=1 HTTP/1.1\r\nHost: {addr}\r\nReferer: http://{addr}/balancer-manager\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    x.split("<httpd:status>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_drains_a_member_by_clicking_and_a_cross_site_form_changes_nothing() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let p = Proxy::start(CONFIG, &[("a:1", a.addr), ("b:1", b.addr)]);
    let base = format!("http://{}", p.addr);
    let browser = tokio::task::spawn_blocking(Browser::start).await.unwrap();
    let browser = std::sync::Arc::new(browser);

    // Open the manager, follow member A's link, switch Drain on, submit.
    let br = browser.clone();
    let url = format!("{base}/balancer-manager");
    let page = tokio::task::spawn_blocking(move || {
        br.open(&url);
        let before = br.source();
        br.click("a[href*='w=http://a:1']");
        br.click("#w_status_N1");
        br.click("input[type=submit]");
        // The form's answer is a new page: wait for it to load.
        let mut after = br.source();
        for _ in 0..100 {
            if after.contains("Init Drn") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            after = br.source();
        }
        (before, after)
    })
    .await
    .unwrap();
    assert!(
        page.0.contains("LoadBalancer Status for"),
        "{:?}\n{}",
        page,
        p.log_text()
    );
    assert!(
        page.1.contains("Init Drn Ok"),
        "{}\n{}",
        page.1,
        p.log_text()
    );
    assert_eq!(xml_status(p.addr).await, ["Init Drn Ok ", "Init Ok "]);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("balancer-manager.png");
    let br = browser.clone();
    let to = shot.clone();
    tokio::task::spawn_blocking(move || br.screenshot(&to))
        .await
        .unwrap();
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false)
    );
    // Traffic follows: new clients avoid A, A's sticky clients stay.
    for _ in 0..6 {
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

    // An attacker's page on another port of the same host (another origin; httpd's Referer
    // test compares host names only and would take it), knowing even the nonce, posts the
    // form to disable B.
    let page = ask_page(p.addr).await;
    let tag = "?b=t1rws&amp;nonce=";
    let at = page.find(tag).unwrap() + tag.len();
    let nonce = page[at..].split('"').next().unwrap().to_string();
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let form = format!(
        "<html><body><form method='POST' action='{base}/balancer-manager'>\
<input name='b' value='t1rws'><input name='w' value='http://b:1'>\
<input name='nonce' value='{nonce}'><input name='w_status_D' value='1'></form>\
<script>document.forms[0].submit()</script></body></html>"
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = evil.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                        form.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let br = browser.clone();
    let after = tokio::task::spawn_blocking(move || {
        br.open(&format!("http://{evil_addr}/"));
        // The page posts its form at once; wait for the manager's answer to load.
        let mut after = br.source();
        for _ in 0..100 {
            if after.contains("Load Balancer Manager") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            after = br.source();
        }
        after
    })
    .await
    .unwrap();
    // The browser did post (it shows the manager's answer), and nothing changed.
    assert!(after.contains("Load Balancer Manager"), "{after}");
    assert_eq!(xml_status(p.addr).await, ["Init Drn Ok ", "Init Ok "]);
    assert!(
        p.log_text()
            .contains("ignoring params in balancer-manager cross-site access")
    );
}

async fn ask_page(addr: std::net::SocketAddr) -> String {
    raw(
        addr,
        format!("GET /balancer-manager HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(5),
    )
    .await
    .0
}
