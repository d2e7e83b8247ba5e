//! The `balancerd` binary: parses the command line and hands over to [`balancerd::cli`].

/// jemalloc, chosen by measurement (benches/compare, issue 6): against glibc malloc it holds
/// an idle keep-alive connection in 15.8 KiB of RSS instead of 19.7 and a held long-poll in
/// 31 KiB instead of 42 (it keeps allocation metadata out of line, so hyper's mostly empty
/// 8 KiB I/O buffers stay mostly untouched), at slightly fewer instructions per request;
/// mimalloc held 29 and 67 KiB.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(balancerd::cli::main());
}
