//! Route matching, sticky-route extraction and member choice borrow from the request head
//! and allocate nothing per request: proven with a counting global allocator.

use balancerd::balancer::{Pick, sticky};
use balancerd::config::{self, LoadOptions};
use balancerd::route::{self, Matched};
use balancerd::runtime::Snapshot;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn hot_path_decisions_allocate_nothing() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let loaded = config::load(&root.join("conf/balancerd.conf"), &LoadOptions::default());
    let snap = Snapshot::build(loaded.config.expect("shipped config is valid"), None).unwrap();
    let host = snap.host_for(Some("localhost"));
    let paths = [
        "/t1/api/v2/me",
        "/t1/rcs/x;jsessionid=1.RCS2_Application_Name",
        "/t2/recordings/a.wav",
        "/t1/api/x",
    ];
    let cookies = [
        "a=b; ROUTEID=.T1RWS2",
        "JSESSIONID=77.RCS1_Application_Name",
    ];
    // Warm up (lazy statics, first-use tables).
    for p in paths {
        let _ = route::find(&host.routes, &route::normalize(p).unwrap());
    }
    let before = allocs();
    let mut picked = 0;
    for _ in 0..10_000 {
        for p in paths {
            let uri = route::normalize(p).unwrap();
            let Some(Matched::Balancer { balancer, rest, .. }) = route::find(&host.routes, &uri)
            else {
                panic!("{p} routes");
            };
            let b = &snap.balancers[balancer];
            let session = b.params.sticky.as_ref().and_then(|s| {
                sticky::session_route(
                    s,
                    b.params.separator(),
                    b.params.scolon_path_delim,
                    rest,
                    Some("a=1"),
                    cookies.iter().copied(),
                )
            });
            if let Pick::Member { index, .. } = b.pick(session.map(|s| s.route)) {
                picked += index + 1;
            }
        }
    }
    let used = allocs() - before;
    assert!(picked > 0);
    assert_eq!(
        used, 0,
        "{used} allocations in 40,000 route + sticky + pick decisions"
    );
}
