//! Pacemaker's own agents against balancerd (Debian's resource-agents): the `apache` agent's
//! `monitor`, as the vendor's cluster runs it (`statusurl` on balancerd's server-status),
//! passes while balancerd serves and says "not running" after it stops; and the shipped
//! OCF agent `deploy/ocf/balancerd` passes `ocf-tester` (start, monitor, stop, reload, their
//! repeats and meta-data), refuses to start a broken config, and drains on stop.

mod support;
use std::process::Command;
use std::time::Duration;
use support::*;

const APACHE_AGENT: &str = "/usr/lib/ocf/resource.d/heartbeat/apache";

fn installed() {
    assert!(
        std::path::Path::new(APACHE_AGENT).exists()
            && std::path::Path::new("/usr/sbin/ocf-tester").exists(),
        "resource-agents is not installed (apt-get install resource-agents; .ci/run does)"
    );
}

fn config(dir: &std::path::Path, port: u16) -> String {
    format!(
        "Listen 127.0.0.1:{port}
ServerName lb.example
PidFile {dir}/balancerd.pid
ProxyPass /server-status !
<Location /server-status>
SetHandler server-status
Require ip 127.0.0.1
</Location>
",
        dir = dir.display()
    )
}

fn apache_monitor(conf: &std::path::Path, port: u16) -> (i32, String) {
    let out = Command::new(APACHE_AGENT)
        .arg("monitor")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESKEY_configfile", conf)
        .env(
            "OCF_RESKEY_statusurl",
            format!("http://127.0.0.1:{port}/server-status"),
        )
        .env("OCF_RESKEY_httpd", env!("CARGO_BIN_EXE_balancerd"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_apache_agents_monitor_passes_against_balancerd() {
    installed();
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proxy::start(
        &config(dir.path(), 0).replace("127.0.0.1:0", "127.0.0.1:{PORT}"),
        &[],
    );
    let conf = p.conf.path().join("balancerd.conf");
    let port = p.addr.port();
    let (rc, out) = apache_monitor(&conf, port);
    assert_eq!(rc, 0, "OCF_SUCCESS expected while balancerd serves: {out}");
    balancerd::app::send_signal(p.pid(), libc::SIGTERM).unwrap();
    let _ = p.child.wait();
    let (rc, out) = apache_monitor(&conf, port);
    assert_eq!(
        rc, 7,
        "OCF_NOT_RUNNING expected after balancerd stopped: {out}"
    );
}

fn agent() -> String {
    root().join("deploy/ocf/balancerd").display().to_string()
}

fn run_agent(action: &str, params: &[(&str, String)]) -> i32 {
    let mut c = Command::new(agent());
    c.arg(action).env("OCF_ROOT", "/usr/lib/ocf");
    for (k, v) in params {
        c.env(format!("OCF_RESKEY_{k}"), v);
    }
    c.status().unwrap().code().unwrap_or(-1)
}

#[test]
fn the_shipped_ocf_agent_passes_ocf_tester() {
    installed();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("balancerd.conf");
    std::fs::write(&conf, config(dir.path(), port)).unwrap();
    let bin = env!("CARGO_BIN_EXE_balancerd");
    let out = Command::new("/usr/sbin/ocf-tester")
        .args(["-n", "lb"])
        .arg("-o")
        .arg(format!("binary={bin}"))
        .arg("-o")
        .arg(format!("config={}", conf.display()))
        .arg("-o")
        .arg(format!("statusurl=http://127.0.0.1:{port}/server-status"))
        .arg(agent())
        .env("OCF_ROOT", "/usr/lib/ocf")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed all tests"), "{text}");

    // A broken config: start refuses with OCF_ERR_CONFIGURED (6) and starts nothing.
    let params = |conf: &std::path::Path| {
        vec![
            ("binary", bin.to_string()),
            ("config", conf.display().to_string()),
        ]
    };
    let broken = dir.path().join("broken.conf");
    std::fs::write(
        &broken,
        format!(
            "{}ProxyPass /x balancer://nowhere/ timeout=500ms\nBogus on\n",
            config(dir.path(), port)
        ),
    )
    .unwrap();
    assert_eq!(run_agent("start", &params(&broken)), 6);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Start, monitor, reload, stop by hand; after a binary upgrade (`balancerd upgrade`)
    // the agent follows the PidFile to the new process.
    assert_eq!(run_agent("start", &params(&conf)), 0);
    assert_eq!(run_agent("monitor", &params(&conf)), 0);
    assert_eq!(run_agent("reload", &params(&conf)), 0);
    assert_eq!(run_agent("monitor", &params(&conf)), 0);
    let pid_file = dir.path().join("balancerd.pid");
    let before = std::fs::read_to_string(&pid_file).unwrap();
    let up = balancerd(&["upgrade", "--config", conf.to_str().unwrap()]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_ne!(std::fs::read_to_string(&pid_file).unwrap(), before);
    assert_eq!(run_agent("monitor", &params(&conf)), 0);
    assert_eq!(run_agent("stop", &params(&conf)), 0);
    assert_eq!(run_agent("monitor", &params(&conf)), 7);
    assert!(
        wait_port_closed(port, Duration::from_secs(5)),
        "still listening after stop"
    );
}

fn wait_port_closed(port: u16, limit: Duration) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
