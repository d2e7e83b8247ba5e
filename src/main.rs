//! The `balancerd` binary: parses the command line and hands over to [`balancerd::app::cli`].

/// jemalloc, chosen by measurement (benches/compare, issue 6): against glibc malloc it holds
/// an idle keep-alive connection in 15.8 KiB of RSS instead of 19.7 and a held long-poll in
/// 31 KiB instead of 42 (it keeps allocation metadata out of line, so hyper's mostly empty
/// 8 KiB I/O buffers stay mostly untouched), at slightly fewer instructions per request;
/// mimalloc held 29 and 67 KiB.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (read at start-up; `_RJEM_MALLOC_CONF` in the environment
/// still overrides them), chosen by measurement:
/// - `slab_sizes:4097-16384:16`: 64 KiB slabs for the 8 KiB class. hyper reserves a fresh
///   8 KiB read buffer per request while the previous head is alive, and with one-region slabs
///   every one of those was a page-allocator round trip;
/// - `tcache_gc_incr_bytes:1073741824`: the thread cache is not garbage-collected every few
///   MB of allocation (that flushed the same buffers back to their slabs, only for the next
///   requests to fetch them again).
///
/// Callgrind, small proxied GET: 31.5k → 29.7k instructions per request. RSS per held
/// long-poll 13.8 → 13.0 KiB, per idle connection 11.4 → 10.8 KiB. 100 MB transfers
/// unchanged.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 57] = b"slab_sizes:4097-16384:16,tcache_gc_incr_bytes:1073741824\0";

fn main() {
    std::process::exit(balancerd::app::cli::main());
}
