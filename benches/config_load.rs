//! Loads and validates a generated 500-tenant config (500 tenant files, 5 balancers each),
//! the size of a large multi-tenant deployment. Target: under 200 ms.

use balancerd::config::{self, LoadOptions};
use criterion::{Criterion, criterion_group, criterion_main};

#[allow(dead_code)]
#[path = "common/tenants.rs"]
mod tenants;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = tenants::write_config(dir.path(), 500);
    let l = config::load(&main, &LoadOptions::default());
    let c0 = l.config.as_ref().expect("generated config is valid");
    assert_eq!(c0.balancers.len(), 2500);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics.first());
    let mut g = c.benchmark_group("config");
    g.sample_size(20);
    g.bench_function("load_500_tenants", |b| {
        b.iter(|| config::load(&main, &LoadOptions::default()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
