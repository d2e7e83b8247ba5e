//! The `balancerd` binary: parses the command line and hands over to [`balancerd::cli`].

fn main() {
    std::process::exit(balancerd::cli::main());
}
