//! Micro-benchmarks of the per-request work balancerd adds on top of moving bytes: route
//! matching, sticky-route extraction, member choice and header rewriting, on a generated
//! 500-tenant config (3,500 routes) and a browser-sized request. Run with
//! `cargo bench --bench hot_path`.

use balancerd::balancer::sticky;
use balancerd::config::model::StickySession;
use balancerd::config::{self, LoadOptions};
use balancerd::h1::fields::FieldsView;
use balancerd::h1::framing::BodyFraming;
use balancerd::h1::writer::HeadWriter;
use balancerd::proxy::forward_headers::{UpstreamHead, ViaAction, write_upstream_headers};
use balancerd::route::{self, Matched};
use balancerd::runtime::Snapshot;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use std::hint::black_box;

#[allow(dead_code)]
#[path = "common/tenants.rs"]
mod tenants;

/// A request as a WWE browser sends it to `/tN/api`.
fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "gir.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-US,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("content-type", "application/json"),
        ("x-csrf-header", "X-CSRF-TOKEN"),
        ("x-csrf-token", "0b9f5e1c-6f0c-4bd1-a3b0-4a6c9b4d7e21"),
        ("origin", "https://gir.example.com"),
        ("referer", "https://gir.example.com/ui/wwe/index.html"),
        (
            "cookie",
            "JSESSIONID=1x2y3z4w5v6u.node1; ROUTEID=.T250RWS2; WWE_LANG=en",
        ),
        ("connection", "keep-alive"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    h
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = tenants::write_config(dir.path(), 500);
    let loaded = config::load(&main, &LoadOptions::default());
    let cfg = loaded.config.expect("generated config is valid");
    let snap = Snapshot::build(cfg, None).expect("snapshot");
    let routes = &snap.main.routes;

    let mut g = c.benchmark_group("route");
    for path in [
        "/t1/api/v2/me",
        "/t250/api/v2/me",
        "/t500/recordings/2026/11/a.mp3",
        "/nowhere/x",
    ] {
        // What the request path does: the index by first segment.
        g.bench_with_input(BenchmarkId::new("indexed", path), path, |b, p| {
            b.iter(|| {
                let norm = route::normalize(black_box(p)).expect("path");
                matches!(
                    snap.main.route_index.find(routes, &norm),
                    Some(Matched::Balancer { .. })
                )
            })
        });
        // httpd's linear scan, for comparison.
        g.bench_with_input(BenchmarkId::new("linear", path), path, |b, p| {
            b.iter(|| {
                let norm = route::normalize(black_box(p)).expect("path");
                matches!(route::find(routes, &norm), Some(Matched::Balancer { .. }))
            })
        });
    }
    g.finish();

    let h = browser_headers();
    let b250 = snap
        .balancers
        .iter()
        .find(|b| &*b.full_name == "balancer://t250rws")
        .expect("t250rws");
    let s = b250.params.sticky.clone().expect("sticky");
    let mut g = c.benchmark_group("sticky");
    g.bench_function("cookie_route", |b| {
        b.iter(|| {
            let cookies = h.get_all("cookie").iter().filter_map(|v| v.to_str().ok());
            sticky::session_route(
                &s,
                Some(b'.'),
                false,
                black_box("/api/v2/me"),
                None,
                cookies,
            )
            .map(|r| r.route.len())
        })
    });
    g.bench_function("url_param_route", |b| {
        let js = StickySession {
            cookie: "JSESSIONID".into(),
            url_param: "jsessionid".into(),
        };
        b.iter(|| {
            sticky::session_route(
                &js,
                Some(b'.'),
                false,
                black_box("/rcs/api/v1/decrypt;jsessionid=abc123.RCS2"),
                Some("x=1"),
                std::iter::empty(),
            )
            .map(|r| r.route.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("balancer");
    g.bench_function("pick_sticky", |b| {
        b.iter(|| black_box(b250.pick(Some("T250RWS2"))))
    });
    g.bench_function("pick_byrequests", |b| b.iter(|| black_box(b250.pick(None))));
    g.finish();

    let member = &b250.members[1];
    let ip = HeaderValue::from_static("10.20.30.40");
    let lb = HeaderValue::from_static("lb1.example.com");
    let mut g = c.benchmark_group("headers");
    g.bench_function("member_request_head", |b| {
        b.iter(|| {
            let h = black_box(&h);
            let f = FieldsView::Map(h);
            let mut w = HeadWriter::new(&http::Method::GET, "/api/v2/me", HeadWriter::room_for(f));
            write_upstream_headers(
                f,
                &UpstreamHead {
                    host: member.host_header.as_ref().map(HeaderValue::as_bytes),
                    add_forwarded: true,
                    client_ip: ip.as_bytes(),
                    client_host: h.get("host").map(HeaderValue::as_bytes),
                    server_name: lb.as_bytes(),
                    close: false,
                    upgrade: None,
                    replace: None,
                    via: ViaAction::Pass,
                    underscores: false,
                },
                &mut w,
            );
            w.finish(BodyFraming::None)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
