//! The whole plain HTTP/1.1 server (balancerd's own, as `serve` runs it) fed an arbitrary
//! byte stream on one client connection, written in pieces the input chooses, in front of
//! a member in this process. All three run on loopback sockets in one single-threaded
//! runtime made once.
//!
//! Invariants checked for every input:
//! * no panic anywhere (a panic in any task aborts the process: libFuzzer reports it);
//! * everything the client gets back is a sequence of well-formed HTTP/1.1 responses;
//! * one verdict per request: no more responses than request heads the input can hold;
//! * the member sees only well-formed requests with one framing (never `Content-Length`
//!   with `Transfer-Encoding`, never a coding but `chunked`) and exactly one `Host`;
//! * a request the member saw whole got the member's answer back: no rejected request's
//!   bytes are completed at the member.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    proxy: SocketAddr,
    /// Problems the member found (checked after each input).
    member_errors: Arc<Mutex<Vec<String>>>,
    /// Requests the member received whole and answered.
    member_answered: Arc<AtomicUsize>,
}

/// Reads one request (head and body as framed) from the member's side; `Ok(false)` at a
/// clean end of the connection.
async fn member_request(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Result<bool, String> {
    let (head_len, framing) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let mut cl = Vec::new();
                let mut te = Vec::new();
                let mut hosts = 0;
                for h in r.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        cl.push(String::from_utf8_lossy(h.value).to_string());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        te.push(String::from_utf8_lossy(h.value).to_string());
                    } else if h.name.eq_ignore_ascii_case("host") {
                        hosts += 1;
                    } else if h.name.contains('_') || h.name.eq_ignore_ascii_case("proxy") {
                        return Err(format!("field {} reached the member", h.name));
                    }
                }
                if hosts != 1 {
                    return Err(format!("{hosts} Host fields at the member"));
                }
                let framing = match (cl.as_slice(), te.as_slice()) {
                    ([], []) => Some(0u64),
                    ([n], []) => Some(n.parse::<u64>().map_err(|_| format!("Content-Length {n}"))?),
                    ([], [t]) if t.eq_ignore_ascii_case("chunked") => None,
                    _ => return Err(format!("framing at the member: CL {cl:?} TE {te:?}")),
                };
                break (n, framing);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("malformed head at the member: {e}")),
        }
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    buf.drain(..head_len);
    // The body: a length, or chunked (decoded loosely: balancerd writes it canonically).
    let need_more = |buf: &Vec<u8>, framing: Option<u64>| -> Option<usize> {
        match framing {
            Some(n) => (buf.len() as u64 >= n).then_some(n as usize),
            None => {
                let mut at = 0;
                loop {
                    let line_end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&buf[at..line_end]).ok()?,
                        16,
                    )
                    .ok()?;
                    at = line_end + 2;
                    if size == 0 {
                        return (buf.len() >= at + 2).then_some(at + 2);
                    }
                    if buf.len() < at + size + 2 {
                        return None;
                    }
                    at += size + 2;
                }
            }
        }
    };
    loop {
        if let Some(n) = need_more(buf, framing) {
            buf.drain(..n);
            return Ok(true);
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk).await {
            // The request never completed: balancerd gave up on it (and closed).
            Ok(0) | Err(_) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // A panic in any task is a crash.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
        // One thread runs the client, balancerd and the member (driven by `block_on` for
        // each input): no cross-thread wake-ups, ~10x the executions of a worker thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let member_errors = Arc::new(Mutex::new(Vec::new()));
        let member_answered = Arc::new(AtomicUsize::new(0));
        let (errs, answered) = (member_errors.clone(), member_answered.clone());
        let member = rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("member");
            let addr = l.local_addr().expect("member addr");
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let (errs, answered) = (errs.clone(), answered.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        loop {
                            match member_request(&mut s, &mut buf).await {
                                Ok(true) => {
                                    answered.fetch_add(1, SeqCst);
                                    let a = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Member: 1\r\n\r\nm";
                                    if s.write_all(a).await.is_err() {
                                        return;
                                    }
                                }
                                Ok(false) => return,
                                Err(e) => {
                                    errs.lock().unwrap().push(e);
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            addr
        });
        let dir = std::env::temp_dir().join(format!("balancerd-fuzz-h1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let conf = dir.join("fuzz.conf");
        std::fs::write(
            &conf,
            format!(
                "Timeout 2\nKeepAliveTimeout 1\nLimitRequestBody 100000\n\
                 <Proxy balancer://b>\nBalancerMember http://{member}\n</Proxy>\n\
                 ProxyPass /t1/api balancer://b/api\nProxyPass / http://{member}/\n"
            ),
        )
        .expect("config");
        let loaded = balancerd::config::load(&conf, &balancerd::config::LoadOptions::default());
        let config = loaded.config.expect("config is valid");
        let snap = balancerd::runtime::Snapshot::build(config, None).expect("snapshot");
        let shared: balancerd::runtime::Shared =
            Arc::new(arc_swap::ArcSwap::from_pointee(snap));
        let proxy = rt.block_on(async move {
            let listener = balancerd::app::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = listener.local_addr().expect("proxy addr");
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            std::mem::forget(stop_tx);
            tokio::spawn(balancerd::server::serve(listener, addr, shared, stop_rx));
            addr
        });
        World {
            rt,
            proxy,
            member_errors,
            member_answered,
        }
    })
}

/// Splits what the client got into responses; panics on anything else.
fn responses(mut got: &[u8]) -> (usize, usize) {
    let (mut n, mut from_member) = (0, 0);
    while !got.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        let head = match r.parse(got) {
            Ok(httparse::Status::Complete(h)) => h,
            other => panic!("not a response ({other:?}): {:?}", String::from_utf8_lossy(got)),
        };
        assert_eq!(r.version, Some(1), "{:?}", String::from_utf8_lossy(got));
        let code = r.code.unwrap_or(0);
        let mut len = None;
        let mut chunked = false;
        for h in r.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                assert!(len.is_none(), "two Content-Length");
                len = std::str::from_utf8(h.value).ok().and_then(|v| v.parse::<usize>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("x-member") {
                from_member += 1;
            }
        }
        assert!(!(chunked && len.is_some()), "two framings in a response");
        n += 1;
        got = &got[head..];
        if (100..200).contains(&code) {
            continue;
        }
        if chunked {
            // balancerd's own chunking of the member's 1-byte body.
            let end = got
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")
                .expect("chunked response ends");
            got = &got[end + 5..];
        } else if let Some(l) = len {
            assert!(got.len() >= l, "short body");
            got = &got[l..];
        } else {
            // Close-delimited: the rest.
            got = &[];
        }
    }
    (n, from_member)
}

fuzz_target!(|input: &[u8]| {
    let w = world();
    let Some((&n, data)) = input.split_first() else {
        return;
    };
    if data.len() > 16 * 1024 {
        return;
    }
    let cuts: Vec<usize> = data
        .iter()
        .take((n % 6) as usize)
        .scan(0usize, |at, b| {
            *at += *b as usize * 4 + 1;
            Some(*at)
        })
        .collect();
    let before = w.member_answered.load(SeqCst);
    let got = w.rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(w.proxy).await.expect("connect");
        s.set_nodelay(true).ok();
        let mut fed = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            let cut = cut.clamp(fed, data.len());
            if s.write_all(&data[fed..cut]).await.is_err() {
                break;
            }
            fed = cut;
            tokio::task::yield_now().await;
        }
        let _ = s.shutdown().await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        got
    });
    // Let the member finish what it was sent (its tasks run on this thread).
    w.rt.block_on(async {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    });
    let errors = std::mem::take(&mut *w.member_errors.lock().unwrap());
    assert!(errors.is_empty(), "{errors:?} for {:?}", String::from_utf8_lossy(data));
    let (count, from_member) = responses(&got);
    let heads = data.windows(2).filter(|w| w == b"\n\n" || w == b"\r\n").count() + 1;
    assert!(count <= heads, "{count} responses for {:?}", String::from_utf8_lossy(data));
    let answered = w.member_answered.load(SeqCst) - before;
    assert!(
        from_member <= answered,
        "{from_member} member answers relayed, {answered} given"
    );
});
