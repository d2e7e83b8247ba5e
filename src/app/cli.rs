//! The command line: `balancerd [run] --config PATH`, `balancerd check`, and friends.
//!
//! Exit codes: 0 valid, 1 config errors (or warnings with `--strict`), 2 usage errors.

use crate::config::{self, LoadOptions, diag::Severity};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "conf/balancerd.conf";

#[derive(Parser, Debug)]
#[command(
    name = "balancerd",
    version,
    about = "A native replacement for httpd's mod_proxy_balancer",
    long_about = "A reverse proxy and load balancer that reads httpd's mod_proxy_balancer configuration \
as it is (one tenant file up to a whole /etc/httpd tree) or its own TOML dialect, and routes as \
httpd routes: ProxyPass precedence, ROUTEID and JSESSIONID sticky sessions, hot standbys and \
spares, lbset tiers, the balancer-manager.",
    after_long_help = "CONFIG DIALECTS:\n  A file whose name ends in .toml is read as balancerd's TOML dialect; any other \
file is read as httpd's dialect, as httpd 2.4 reads it (Include, IncludeOptional, Define, \
<IfModule>, ${VAR}). Each may include files of the other.\n\n\
EXIT STATUS:\n  0  success (check: the config is valid)\n  1  the config has errors (or warnings, \
with check --strict), or the command failed\n  2  usage error\n\n\
SIGNALS:\n  SIGHUP reloads the config; SIGTERM and SIGINT drain and exit; SIGUSR2 upgrades the \
binary without dropping a connection."
)]
struct Cli {
    /// Config file (httpd dialect, or TOML when it ends in .toml).
    #[arg(long, short = 'f', global = true)]
    config: Option<PathBuf>,
    /// Define a variable for ${VAR} and <IfDefine> (like httpd -D).
    #[arg(short = 'D', global = true)]
    define: Vec<String>,
    /// Resolve a member host to another address: HOST[:PORT]=IP:PORT (like curl --resolve;
    /// for testing a config whose member hosts do not resolve here).
    #[arg(long = "map-host", global = true, value_name = "HOST[:PORT]=IP:PORT")]
    map_host: Vec<String>,
    /// Check the config and exit (like `apachectl -t`): the same as `balancerd check`.
    #[arg(short = 't')]
    test_config: bool,
    /// Worker threads (default: one per core). Tuning; see docs/performance.md.
    #[arg(long, global = true, hide = true)]
    threads: Option<usize>,
    /// Turn TCP_NODELAY off on client and member connections (measured worse; for
    /// re-measuring).
    #[arg(long, global = true, hide = true)]
    no_nodelay: bool,
    /// Fixed SO_SNDBUF/SO_RCVBUF in bytes for client and member connections (default: the
    /// kernel's autotuning).
    #[arg(long, global = true, value_name = "BYTES", hide = true)]
    socket_buffer: Option<usize>,
    /// TCP congestion control for client and member connections (e.g. `cubic`; default:
    /// the system's).
    #[arg(long, global = true, value_name = "ALGO", hide = true)]
    congestion: Option<String>,
    /// Listening sockets per address, sharing it with SO_REUSEPORT (default 1).
    #[arg(long, global = true, value_name = "N", hide = true)]
    listeners_per_addr: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load the config and serve it.
    Run,
    /// Serve the config with built-in demo members on loopback (default: the shipped config).
    Demo,
    /// Ask the running instance (found through its PidFile) to reload its config.
    Reload,
    /// Zero-downtime binary upgrade: the running instance starts the binary again and hands
    /// it its listening sockets; it then drains and exits (SIGUSR2 does the same).
    Upgrade,
    /// Write a development CA, a `localhost` server certificate and a client certificate.
    GenCerts {
        /// Folder to write them to.
        dir: PathBuf,
    },
    /// Print every httpd 2.4 directive with what balancerd does with it (Markdown).
    Directives,
    /// Print the version and the build's features.
    Version,
    /// Write the man page (roff) to standard output.
    #[command(hide = true)]
    Man,
    /// Write completions for a shell (bash, zsh, fish, …) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Change balancers and members of the running instance (its admin socket, beside the
    /// PidFile): `ctl status`, `ctl drain|enable|disable BALANCER MEMBER`,
    /// `ctl set BALANCER [MEMBER] factor=2 lbset=1 route=r status=+N-D lbmethod=bybusyness …`,
    /// `ctl release ADDRESS` (reset the client connections accepted on a leaving VIP).
    Ctl {
        /// The admin socket (default: the config's PidFile + `.ctl`). Repeat it to apply the
        /// same command to several instances (an HA pair), in order.
        #[arg(long)]
        socket: Vec<PathBuf>,
        /// Talk to the balancer-manager at this http:// URL instead of the admin socket
        /// (its access rules apply). Repeatable, as --socket.
        #[arg(long, conflicts_with = "socket")]
        url: Vec<String>,
        /// status | drain | enable | disable | set | release, and its arguments.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
    },
    /// Tell what the config does with one request: the rule that matches (file:line) or why
    /// none does, the balancer, the sticky route's origin, each member's eligibility, the
    /// member chosen, and the request head it would receive.
    Explain {
        /// The method (GET, POST, …).
        method: String,
        /// The request target: a path with its query, or an absolute URL (its authority is
        /// the Host).
        url: String,
        /// A request header field, `Name: value` (repeatable; `Cookie: ROUTEID=.r1`).
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The client's address, for access rules and X-Forwarded-For (default 127.0.0.1).
        #[arg(long, value_name = "IP[:PORT]")]
        client: Option<String>,
        /// As if the request came over TLS.
        #[arg(long)]
        tls: bool,
        /// Ask the running instance (its admin socket) for member states and counters.
        #[arg(long)]
        live: bool,
        /// The admin socket for --live (default: the config's PidFile + `.ctl`).
        #[arg(long, requires = "live")]
        socket: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write a config in the other dialect (or the same one, flattened): everything the
    /// validated model holds; what the target dialect has no form for is listed on stderr
    /// with its file:line.
    Convert {
        /// The config to convert (default: --config).
        file: Option<PathBuf>,
        /// The dialect to write (default: the other one).
        #[arg(long, value_enum)]
        to: Option<Dialect>,
        /// Write to this file instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Print the validated model as Rust's Debug form (for tests that compare two configs).
    #[command(hide = true)]
    DumpModel,
    /// Validate a config (a main file or one tenant file) and print a summary.
    Check {
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        strict: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// List every note (by default, notes that repeat are one line each, with a count).
        #[arg(long, short = 'v')]
        verbose: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Dialect {
    Toml,
    Httpd,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let opts = LoadOptions {
        defines: cli.define.clone(),
    };
    let mut map = std::collections::HashMap::new();
    for m in &cli.map_host {
        let Some((k, v)) = m.split_once('=') else {
            eprintln!("balancerd: --map-host {m}: expected HOST[:PORT]=IP:PORT");
            return 2;
        };
        let Ok(addr) = v.parse::<std::net::SocketAddr>() else {
            eprintln!("balancerd: --map-host {m}: '{v}' is not IP:PORT");
            return 2;
        };
        map.insert(k.to_ascii_lowercase(), addr);
    }
    crate::upstream::connect::set_host_map(map);
    crate::net::tuning::set(crate::net::tuning::SocketTuning {
        nodelay: !cli.no_nodelay,
        buffer: cli.socket_buffer.filter(|b| *b > 0),
        congestion: cli.congestion.clone(),
        listeners_per_addr: cli.listeners_per_addr.unwrap_or(1).clamp(1, 64),
    });
    if let Some(cc) = &cli.congestion
        && let Err(e) = crate::net::tuning::check_congestion(cc)
    {
        eprintln!("balancerd: --congestion {cc}: {e}");
        return 2;
    }
    let command = match (cli.test_config, cli.command) {
        (true, None) => Command::Check {
            strict: false,
            format: Format::Text,
            verbose: false,
        },
        (_, c) => c.unwrap_or(Command::Run),
    };
    match command {
        Command::Version => {
            println!(
                "balancerd {} ({} {}; TLS rustls with ring; allocator jemalloc; config dialects httpd 2.4 and TOML)",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            );
            0
        }
        Command::Man => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut out) {
                Ok(()) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&out);
                    0
                }
                Err(e) => {
                    eprintln!("balancerd man: {e}");
                    1
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "balancerd",
                &mut std::io::stdout(),
            );
            0
        }
        Command::Check {
            strict,
            format,
            verbose,
        } => check(&path, &opts, strict, format, verbose),
        Command::Directives => {
            print!("{}", crate::config::httpd::directives::markdown());
            0
        }
        Command::Explain {
            method,
            url,
            headers,
            client,
            tls,
            live,
            socket,
            format,
        } => crate::app::explain::run(
            &path,
            &opts,
            &crate::app::explain::ExplainArgs {
                method,
                url,
                headers,
                client,
                tls,
                live,
                socket,
                json: format == Format::Json,
            },
        ),
        Command::Convert { file, to, output } => convert(
            file.as_deref().unwrap_or(&path),
            &opts,
            to,
            output.as_deref(),
        ),
        Command::DumpModel => match crate::app::load_or_report(&path, &opts) {
            Some(mut c) => {
                c.sources.clear();
                c.watch_dirs.clear();
                c.include_patterns.clear();
                println!("{c:#?}");
                0
            }
            None => 1,
        },
        Command::Run => run(&path, &opts, false, cli.threads),
        Command::Demo => run(&path, &opts, true, cli.threads),
        Command::Reload => crate::app::signal_reload(&path, &opts),
        Command::Upgrade => crate::app::signal_upgrade(&path, &opts),
        Command::Ctl { socket, url, args } => ctl(&path, &opts, socket, url, &args),
        Command::GenCerts { dir } => match crate::net::tls::gen_certs(&dir) {
            Ok(files) => {
                for f in files {
                    println!("wrote {f}");
                }
                0
            }
            Err(e) => {
                eprintln!("balancerd gen-certs: {e}");
                1
            }
        },
    }
}

/// `balancerd ctl`: parses its arguments, finds the admin socket, and runs the command.
fn ctl(
    path: &Path,
    opts: &LoadOptions,
    sockets: Vec<PathBuf>,
    urls: Vec<String>,
    args: &[String],
) -> i32 {
    use crate::app::ctl::CtlCommand;
    let usage = "usage: balancerd ctl status | drain|enable|disable BALANCER MEMBER | set BALANCER [MEMBER] key=value… | release ADDRESS";
    let two = |f: fn(String, String) -> CtlCommand| match args {
        [_, b, m] => Some(f(b.clone(), m.clone())),
        _ => None,
    };
    let cmd = match args.first().map(String::as_str) {
        Some("status") if args.len() == 1 => Some(CtlCommand::Status),
        Some("release") if args.len() == 2 => Some(CtlCommand::Release(args[1].clone())),
        Some("drain") => two(CtlCommand::Drain),
        Some("enable") => two(CtlCommand::Enable),
        Some("disable") => two(CtlCommand::Disable),
        Some("set") if args.len() >= 3 => {
            let (member, kvs) = if args[2].contains('=') {
                (None, &args[2..])
            } else {
                (Some(args[2].clone()), &args[3..])
            };
            Some(CtlCommand::Set(args[1].clone(), member, kvs.to_vec()))
        }
        _ => None,
    };
    let Some(cmd) = cmd else {
        eprintln!("{usage}");
        return 2;
    };
    // Several instances: the same command to each, in order; the worst exit code.
    if !urls.is_empty() {
        return urls
            .iter()
            .map(|u| crate::app::ctl::run_url(u, &cmd))
            .max()
            .unwrap_or(0);
    }
    if !sockets.is_empty() {
        return sockets
            .iter()
            .map(|s| crate::app::ctl::run(s, &cmd))
            .max()
            .unwrap_or(0);
    }
    let Some(cfg) = crate::app::load_or_report(path, opts) else {
        return 1;
    };
    let Some(pid) = cfg.server.pid_file else {
        eprintln!(
            "balancerd ctl: {} sets no PidFile, so the admin socket cannot be found; give --socket",
            path.display()
        );
        return 1;
    };
    let socket = crate::app::ctl::socket_path(&pid);
    crate::app::ctl::run(&socket, &cmd)
}

/// `balancerd convert`: loads and validates `path`, writes it in the target dialect, and
/// lists on stderr what that dialect cannot say.
fn convert(path: &Path, opts: &LoadOptions, to: Option<Dialect>, output: Option<&Path>) -> i32 {
    let Some(c) = crate::app::load_or_report(path, opts) else {
        eprintln!(
            "balancerd convert: {}: the config has errors",
            path.display()
        );
        return 1;
    };
    let to = to.unwrap_or(if config::is_toml(path) {
        Dialect::Httpd
    } else {
        Dialect::Toml
    });
    let (text, losses) = match to {
        Dialect::Toml => config::emit::toml::emit(&c),
        Dialect::Httpd => config::emit::httpd::emit(&c),
    };
    for l in &losses {
        let at = l
            .origin
            .as_ref()
            .map_or_else(|| path.display().to_string(), |o| o.to_string());
        eprintln!("{at}: note: {}", l.what);
    }
    match output {
        Some(f) => {
            if let Err(e) = std::fs::write(f, &text) {
                eprintln!("balancerd convert: cannot write {}: {e}", f.display());
                return 1;
            }
        }
        None => print!("{text}"),
    }
    0
}

fn check(path: &Path, opts: &LoadOptions, strict: bool, format: Format, verbose: bool) -> i32 {
    let loaded = config::load(path, opts);
    let worst = loaded.worst();
    let failed = worst == Some(Severity::Error) || (strict && worst == Some(Severity::Warning));
    let count = |s| {
        loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == s)
            .count()
    };
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "config": path.display().to_string(),
                "valid": !failed,
                "errors": count(Severity::Error),
                "warnings": count(Severity::Warning),
                "notes": count(Severity::Note),
                "diagnostics": loaded.diagnostics,
                "summary": loaded.config.as_ref().map(config::summary::json),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            // Errors and warnings first, in the order found; then the notes, those that
            // repeat (a whole httpd tree skips the same directive dozens of times) folded into
            // one line with their count and first place, unless --verbose.
            let (problems, notes): (Vec<_>, Vec<_>) = loaded
                .diagnostics
                .iter()
                .partition(|d| d.severity != Severity::Note);
            for d in problems {
                eprint!("{}", d.render());
            }
            eprint!("{}", render_notes(&notes, verbose));
            if let Some(c) = &loaded.config
                && !failed
            {
                print!("{}", config::summary::text(c));
            }
            let verdict = if failed { "is NOT valid" } else { "is valid" };
            eprintln!(
                "{}: {verdict}: {} error(s), {} warning(s), {} note(s)",
                path.display(),
                count(Severity::Error),
                count(Severity::Warning),
                count(Severity::Note)
            );
        }
    }
    i32::from(failed)
}

/// The notes of a `check`: each in full, or (without `verbose`) a note whose message repeats
/// as one line: its first place, the message, and how many times it came.
fn render_notes(notes: &[&config::diag::Diagnostic], verbose: bool) -> String {
    if verbose {
        return notes.iter().map(|d| d.render()).collect();
    }
    let mut order: Vec<&str> = Vec::new();
    let mut groups: std::collections::HashMap<&str, Vec<&config::diag::Diagnostic>> =
        std::collections::HashMap::new();
    for d in notes {
        let e = groups.entry(d.message.as_str()).or_default();
        if e.is_empty() {
            order.push(d.message.as_str());
        }
        e.push(d);
    }
    let mut out = String::new();
    for m in order {
        let g = &groups[m];
        if g.len() == 1 {
            out.push_str(&g[0].render());
        } else {
            let at = g[0]
                .origin
                .as_ref()
                .map_or_else(|| "balancerd".to_string(), |o| o.to_string());
            out.push_str(&format!(
                "{at}: note: {m} ({} times; --verbose lists each)\n",
                g.len()
            ));
        }
    }
    out
}

fn run(path: &Path, opts: &LoadOptions, demo: bool, threads: Option<usize>) -> i32 {
    let Some(cfg) = crate::app::load_or_report(path, opts) else {
        eprintln!(
            "balancerd: {}: not started because of the errors above",
            path.display()
        );
        return 1;
    };
    let level = match cfg
        .server
        .log_level
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("debug") | Some("trace1") | Some("trace2") => "debug",
        Some("warn") => "warn",
        Some("error") | Some("crit") | Some("alert") | Some("emerg") => "error",
        _ => "info",
    };
    crate::app::init_tracing(level);
    let rt = match crate::app::runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("balancerd: cannot start the runtime: {e}");
            return 1;
        }
    };
    let path = path.to_path_buf();
    let opts = opts.clone();
    rt.block_on(async move {
        if demo {
            crate::app::demo::run(cfg, path, opts).await
        } else {
            crate::app::serve(cfg, path, opts).await
        }
    })
}
