//! What a TLS client connection costs balancerd in memory, part by part, with balancerd's own
//! front TLS config (`net::tls::server_config`, an ECDSA P-256 certificate from `gen-certs`,
//! TLS 1.3, session tickets).
//!
//! A counting global allocator keeps the live heap bytes of the calls made on the server's
//! side only; the client's side and the transport (byte vectors moved between the two) are
//! not counted. The server's state is then measured at the moments that matter for a held
//! connection: after the handshake, and idle while waiting for the next request (as a held
//! long-poll's client connection is). The benchmark's `longpoll-tls` workload measures the
//! same end to end (RSS per held connection, against HAProxy and nginx).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if counted() {
            LIVE.fetch_add(l.size() as i64, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if counted() {
            LIVE.fetch_sub(l.size() as i64, Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, n) };
        if counted() {
            LIVE.fetch_add(n as i64 - l.size() as i64, Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` with its allocations counted.
fn on_server<T>(f: impl FnOnce() -> T) -> T {
    COUNTED.with(|c| c.set(true));
    let r = f();
    COUNTED.with(|c| c.set(false));
    r
}

/// A reader with nothing to give yet (a socket that would block).
struct WouldBlock;
impl Read for WouldBlock {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

/// Moves what `from` has to send into `to` (the server's side counted).
fn client_to_server(c: &mut rustls::ClientConnection, s: &mut rustls::ServerConnection) {
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    let mut rd = &wire[..];
    on_server(|| {
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
    });
}

fn server_to_client(s: &mut rustls::ServerConnection, c: &mut rustls::ClientConnection) {
    // Room made outside the count: the transport's bytes are not the server's state.
    let mut wire = Vec::with_capacity(64 * 1024);
    on_server(|| {
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
    });
    let mut rd = &wire[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
}

#[test]
fn a_held_tls_connection_costs_what_rustls_keeps_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    balancerd::net::tls::gen_certs(dir.path()).unwrap();
    let key = balancerd::net::tls::certified_key(
        &dir.path().join("localhost.pem"),
        Some(&dir.path().join("localhost.key")),
        None,
    )
    .unwrap();
    let server_cfg = balancerd::net::tls::server_config(&[balancerd::net::tls::FrontEntry {
        names: vec!["localhost".into()],
        key,
        protocols: None,
        client_auth: None,
    }])
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in
            rustls::pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.pem")).unwrap()
        {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let client_cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    let mut client =
        rustls::ClientConnection::new(client_cfg, "localhost".try_into().unwrap()).unwrap();
    let base = LIVE.load(Relaxed);
    // (The config outlives the connection, as the snapshot's does: the connection drops its
    // references when the handshake ends.)
    let mut server =
        on_server(|| Box::new(rustls::ServerConnection::new(server_cfg.clone()).unwrap()));
    let fresh = LIVE.load(Relaxed) - base;
    while client.is_handshaking() || server.is_handshaking() {
        client_to_server(&mut client, &mut server);
        server_to_client(&mut server, &mut client);
    }
    let after_handshake = LIVE.load(Relaxed) - base;
    // One request and its answer, as a long-poll's first exchange.
    client
        .writer()
        .write_all(b"GET /t1/lp/cometd/poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    client_to_server(&mut client, &mut server);
    let mut got = Vec::with_capacity(512);
    on_server(|| {
        let mut buf = [0u8; 512];
        let n = server.reader().read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        server
            .writer()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
    });
    assert!(got.starts_with(b"GET /t1/lp/"));
    server_to_client(&mut server, &mut client);
    // Waiting for the next request: the server tries the socket and it would block.
    on_server(|| {
        let _ = server.read_tls(&mut WouldBlock);
    });
    let inline = std::mem::size_of::<rustls::ServerConnection>() as i64;
    // The boxed struct was counted with the heap; keep the two apart.
    let (fresh, after_handshake) = (fresh - inline, after_handshake - inline);
    let idle = LIVE.load(Relaxed) - base - inline;
    let stream =
        std::mem::size_of::<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>() as i64;
    eprintln!(
        "rustls server connection: struct {inline} B (balancerd boxes it in a TlsStream of \
         {stream} B); heap: new {fresh} B, after the handshake {after_handshake} B, idle \
         between requests {idle} B"
    );
    // Measured (rustls 0.23, ring, TLS_AES_256_GCM_SHA384): 6,281 heap bytes when idle: the
    // 4,096-byte read buffer the deframer allocates before its first socket read and keeps
    // (it shrinks back to 4 KiB, never to nothing: only rustls's unbuffered API would let the
    // caller own it), the two record keys (560 each: AES-256 key schedule and GHASH table),
    // the traffic state (224), the connection core (640), two queues (96 each) and the SNI
    // name. Nothing of the handshake (transcript, certificate, key shares) stays.
    assert!(
        idle <= 4096 + 2560,
        "an idle TLS connection keeps {idle} heap bytes in rustls"
    );
    assert!(
        after_handshake < 4096 + 2560 && fresh < 2560,
        "the handshake's transient state was released: new {fresh}, after {after_handshake}"
    );
    drop(server);
}
