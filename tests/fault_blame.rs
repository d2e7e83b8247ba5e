//! The right party blamed: a failure of the client's request body is the client's fault.
//! balancerd answers it 400 (malformed) or 408 (stalled), closes the member connection (its
//! request is incomplete), leaves the member unmarked and logs the kind of the failure
//! (`%{BALANCERD_ERROR}e`). A member that fails is still answered and logged as the member's.
//! Raw bytes on real sockets, through a real balancer of real backends.

mod support;
use std::time::Duration;
use support::*;
use tokio::io::AsyncReadExt;

fn config(log: &std::path::Path) -> String {
    format!(
        "Listen 127.0.0.1:{{PORT}}
Timeout 1
ProxyTimeout 30
LogFormat \"%>s err=%{{BALANCERD_ERROR}}e member=%{{BALANCER_WORKER_ROUTE}}e\" blame
CustomLog {} blame
<Proxy balancer://up>
BalancerMember http://a:1 route=A
BalancerMember http://b:1 route=B
</Proxy>
ProxyPass /up balancer://up/up
<Location /server-status>
SetHandler server-status
Require ip 127.0.0.1
</Location>
",
        log.display()
    )
}

/// Sends `bytes` and reads the whole answer until the proxy closes (a read may wait 6 s).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    raw(addr, bytes, Duration::from_secs(6)).await.0
}

/// The process log without terminal colours.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every member in `/server-status?auto` is `Ok` with 0 errors.
async fn assert_members_clean(addr: std::net::SocketAddr) {
    let st = get(addr, "/server-status?auto", &[]).await.text();
    let lines: Vec<&str> = st
        .lines()
        .filter(|l| l.contains("Worker[") && (l.contains("]Status: ") || l.contains("]Errors: ")))
        .collect();
    assert!(!lines.is_empty(), "{st}");
    for l in lines {
        assert!(
            l.ends_with(": Ok") || l.ends_with(": Init Ok") || l.ends_with(": 0"),
            "{l}\n{st}"
        );
    }
}

/// The access log once it holds `n` lines starting with `prefix` (a thread of its own writes
/// it), or as it is after 5 s.
async fn log_with(log: &std::path::Path, prefix: &str, n: usize) -> String {
    let t0 = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().filter(|l| l.starts_with(prefix)).count() >= n
            || t0.elapsed() > Duration::from_secs(5)
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_are_the_clients_fault() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = Proxy::start(&config(&log), &[("a:1", a.addr), ("b:1", b.addr)]);
    let bad_sizes: &[&[u8]] = &[
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
    ];
    for body in bad_sizes {
        let mut req =
            b"POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let got = exchange(p.addr, &req).await;
        assert!(
            got.starts_with("HTTP/1.1 400 "),
            "{:?}: {got}\n{}",
            String::from_utf8_lossy(body),
            p.log_text()
        );
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{got}"
        );
    }
    // Every member is still usable and has no error recorded.
    assert_members_clean(p.addr).await;
    for _ in 0..4 {
        assert_eq!(get(p.addr, "/up/ok", &[]).await.status, 200);
    }
    // The log names the client's fault for each of them.
    let text = log_with(&log, "400 err=client-body-invalid", bad_sizes.len()).await;
    let blamed = text
        .lines()
        .filter(|l| l.starts_with("400 err=client-body-invalid"))
        .count();
    assert_eq!(blamed, bad_sizes.len(), "{text}");
    assert!(
        !p.log_text().contains("error reading from the member"),
        "{}",
        p.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_408_and_the_member_stays_clean() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let p = Proxy::start(&config(&log), &[("a:1", a.addr), ("b:1", b.addr)]);
    let cases: &[&[u8]] = &[
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part",
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000005\r\nabc",
    ];
    for req in cases {
        let t0 = std::time::Instant::now();
        let got = exchange(p.addr, req).await;
        assert!(got.starts_with("HTTP/1.1 408 "), "{got}\n{}", p.log_text());
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    }
    assert_members_clean(p.addr).await;
    let text = log_with(&log, "408 err=client-body-timeout", cases.len()).await;
    let blamed = text
        .lines()
        .filter(|l| l.starts_with("408 err=client-body-timeout"))
        .count();
    assert_eq!(blamed, cases.len(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_closes_is_still_the_members_fault() {
    // A member that accepts, reads the request and closes without answering.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(&log).replace("BalancerMember http://b:1 route=B\n", "");
    let p = Proxy::start(&cfg, &[("a:1", addr)]);
    let got = exchange(p.addr, b"GET /up/x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 502 "), "{got}");
    let text = log_with(&log, "502 err=member-closed member=A", 1).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("502 err=member-closed member=A")),
        "{text}"
    );
    let plain = strip_ansi(&p.log_text());
    assert!(
        plain
            .lines()
            .any(|l| l.contains("error reading from the member") && l.contains("fault=\"member\"")),
        "{plain}"
    );
}

/// A client's fault never marks a member: 1,000 malformed and stalled requests through a
/// balancer of three members, 50 at a time; afterwards every member is `Ok` with 0 errors
/// in `/server-status` and each one serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_requests_mark_no_member() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let c = Backend::start("C").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let cfg = config(&log).replace(
        "BalancerMember http://b:1 route=B\n",
        "BalancerMember http://b:1 route=B\nBalancerMember http://c:1 route=C\n",
    );
    let p = Proxy::start(&cfg, &[("a:1", a.addr), ("b:1", b.addr), ("c:1", c.addr)]);
    let chunked = "POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let kinds: Vec<Vec<u8>> = vec![
        // Malformed chunked bodies (the head went to a member first).
        format!("{chunked} 5\r\nhello\r\n0\r\n\r\n").into_bytes(),
        format!("{chunked}0x5\r\nhello\r\n0\r\n\r\n").into_bytes(),
        format!("{chunked}-5\r\nhello\r\n0\r\n\r\n").into_bytes(),
        format!("{chunked}fffffffffffffffff\r\nhello\r\n0\r\n\r\n").into_bytes(),
        format!("{chunked}5\r\nhelloXX\r\n0\r\n\r\n").into_bytes(),
        format!("{chunked}5\r\nhello\n0\r\n\r\n").into_bytes(),
        // Malformed heads (refused before any member is chosen).
        b"POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello".to_vec(),
        b"GET /up/x HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(),
        b"GET /up/x HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /up/%2e%2e/%2e%2e/etc HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /up/x HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_vec(),
        // Stalled bodies (the member waits; Timeout 1 cuts the client).
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part".to_vec(),
        format!("{chunked}5\r\nhello\r\n").into_bytes(),
        // A client that leaves half-way through its body.
        b"PUT /up/f HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc".to_vec(),
    ];
    let kinds = std::sync::Arc::new(kinds);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for i in 0..1000usize {
        let kinds = kinds.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            let k = i % kinds.len();
            let req = &kinds[k];
            let got = if k == kinds.len() - 1 {
                // Sends part of the body and closes.
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                use tokio::io::AsyncWriteExt;
                s.write_all(req).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(s);
                String::from("HTTP/1.1 closed")
            } else {
                exchange(addr, req).await
            };
            drop(permit);
            (k, got)
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        let (k, got) = t.await.unwrap();
        let status = got.split_whitespace().nth(1).unwrap_or("none").to_string();
        assert!(
            matches!(status.as_str(), "400" | "404" | "408" | "closed"),
            "kind {k}: {got}"
        );
        *by_status.entry(status).or_insert(0) += 1;
    }
    eprintln!("answers: {by_status:?}");
    assert_members_clean(p.addr).await;
    // Each member still serves: the balancer spreads six requests over all three.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let g = get(p.addr, "/up/ok", &[]).await;
        assert_eq!(g.status, 200);
        served.insert(g.text());
    }
    assert_eq!(served.len(), 3, "{served:?}");
    assert_members_clean(p.addr).await;
}
