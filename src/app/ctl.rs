//! `balancerd ctl`: runtime administration from scripts (Pacemaker, Ansible, cron) through
//! the running instance's admin socket, a Unix socket beside its `PidFile`
//! (`<PidFile>.ctl`, mode 0600: whoever may signal the process may change it).
//!
//! The protocol is one JSON request line and one JSON answer line per connection:
//!
//! ```text
//!   {"cmd":"status"}
//!   {"cmd":"update","balancer":"t1rws","member":"http://rws1:8080","params":{"w_status_N":"1"}}
//!   → {"ok":true,"state":{…}}            or {"ok":false,"error":"…"}
//! ```
//!
//! `params` are httpd's balancer-manager parameters, applied exactly as the manager's form
//! applies them (`admin::manager::update`), so a change is the same whichever way it came.
//!
//! May import: every layer.

use crate::runtime::Shared;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The admin socket of an instance whose `PidFile` is `pid_file`.
pub fn socket_path(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".ctl");
    PathBuf::from(s)
}

/// Serves the admin socket at `path` until the process ends.
pub async fn serve(path: PathBuf, shared: Shared) {
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot open the admin socket {}: {e}", path.display());
            return;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    tracing::info!("admin socket {}", path.display());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            let mut rd = BufReader::new(rd.take(64 * 1024));
            if rd.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = answer(&line, &shared);
            let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// The answer to one request line.
fn answer(line: &str, shared: &Shared) -> serde_json::Value {
    let fail = |e: String| serde_json::json!({ "ok": false, "error": e });
    let req: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return fail(format!("not a JSON request: {e}")),
    };
    let snap = shared.load_full();
    match req["cmd"].as_str() {
        Some("status") => {
            serde_json::json!({ "ok": true, "state": crate::admin::manager::json(&snap) })
        }
        Some("update") => {
            let Some(balancer) = req["balancer"].as_str() else {
                return fail("update needs a balancer".into());
            };
            let member = req["member"].as_str();
            let params: Vec<(String, String)> = req["params"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            match crate::admin::manager::update(&snap, balancer, member, &params, "admin socket") {
                Ok(changed) => {
                    let now = shared.load_full();
                    serde_json::json!({
                        "ok": true,
                        "changed": changed,
                        "state": crate::admin::manager::json(&now),
                    })
                }
                Err(e) => fail(e),
            }
        }
        Some("release") => {
            let Some(ip) = req["address"]
                .as_str()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            else {
                return fail("release needs an IP address".into());
            };
            let n = crate::server::release::release(ip);
            serde_json::json!({ "ok": true, "released": n, "address": ip.to_string() })
        }
        _ => fail("cmd must be status, update or release".into()),
    }
}

/// What `balancerd ctl` was asked on the command line.
pub enum CtlCommand {
    Status,
    Drain(String, String),
    Enable(String, String),
    Disable(String, String),
    /// Balancer, optional member, `key=value` settings.
    Set(String, Option<String>, Vec<String>),
    /// Reset every client connection accepted on this local address (a VIP leaving).
    Release(String),
}

/// The manager parameters a `ctl set` setting stands for.
fn setting(kv: &str) -> Result<Vec<(String, String)>, String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("'{kv}' is not key=value"))?;
    let one = |p: &str| Ok(vec![(p.to_string(), v.to_string())]);
    match k {
        "factor" | "loadfactor" => one("w_lf"),
        "lbset" => one("w_ls"),
        "route" => one("w_wr"),
        "redirect" => one("w_rr"),
        "lbmethod" => one("b_lbm"),
        "timeout" => one("b_tmo"),
        "maxattempts" => one("b_max"),
        "stickysession" => one("b_ss"),
        "nofailover" => Ok(vec![(
            "b_sforce".into(),
            if matches!(v, "on" | "On" | "1" | "true") {
                "1"
            } else {
                "0"
            }
            .into(),
        )]),
        "status" => {
            // status=+N-D: flags on and off, httpd's letters.
            let mut out = Vec::new();
            let mut on = true;
            for c in v.chars() {
                match c {
                    '+' => on = true,
                    '-' => on = false,
                    'I' | 'N' | 'D' | 'H' | 'R' | 'S' | 'C' => {
                        out.push((format!("w_status_{c}"), if on { "1" } else { "0" }.into()))
                    }
                    _ => return Err(format!("status flag '{c}' is not one of I N D H R S C")),
                }
            }
            Ok(out)
        }
        _ => Err(format!(
            "unknown setting '{k}' (factor, lbset, route, redirect, status, lbmethod, timeout, maxattempts, stickysession, nofailover)"
        )),
    }
}

/// The request line for a command.
fn request(cmd: &CtlCommand) -> Result<serde_json::Value, String> {
    let update = |b: &str, m: Option<&str>, params: Vec<(String, String)>| {
        let params: serde_json::Map<String, serde_json::Value> = params
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        serde_json::json!({ "cmd": "update", "balancer": b, "member": m, "params": params })
    };
    let flags = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    Ok(match cmd {
        CtlCommand::Status => serde_json::json!({ "cmd": "status" }),
        CtlCommand::Release(a) => {
            a.parse::<std::net::IpAddr>()
                .map_err(|_| format!("'{a}' is not an IP address"))?;
            serde_json::json!({ "cmd": "release", "address": a })
        }
        CtlCommand::Drain(b, m) => update(b, Some(m), flags(&[("w_status_N", "1")])),
        CtlCommand::Disable(b, m) => update(b, Some(m), flags(&[("w_status_D", "1")])),
        CtlCommand::Enable(b, m) => update(
            b,
            Some(m),
            flags(&[
                ("w_status_D", "0"),
                ("w_status_N", "0"),
                ("w_status_S", "0"),
            ]),
        ),
        CtlCommand::Set(b, m, kvs) => {
            let mut params = Vec::new();
            for kv in kvs {
                params.extend(setting(kv)?);
            }
            update(b, m.as_deref(), params)
        }
    })
}

/// Runs `balancerd ctl` against the balancer-manager at `url` (`http://host:port/path`)
/// instead of the admin socket: the state as JSON (`Accept: application/json`), and an
/// update as the manager's own form posts it (the balancer's nonce, a `Referer` naming the
/// manager), so the instance's access rules for the manager apply.
pub fn run_url(url: &str, cmd: &CtlCommand) -> i32 {
    let req = match request(cmd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("balancerd ctl: {e}");
            return 2;
        }
    };
    if let CtlCommand::Release(_) = cmd {
        eprintln!(
            "balancerd ctl: release goes through the admin socket (--socket), not the manager"
        );
        return 2;
    }
    match manager_call(url, &req) {
        Ok(state) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&state).unwrap_or_default()
            );
            0
        }
        Err(e) => {
            eprintln!("balancerd ctl: {e}");
            1
        }
    }
}

/// One HTTP/1.1 exchange with the manager (plain HTTP; `Connection: close`): the status and
/// the body.
fn http(url: &str, method: &str, body: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be an http:// URL (use the admin socket for anything else)")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut s = std::net::TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nReferer: {url}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("no answer from the manager")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Runs one request line's command against the manager at `url`.
fn manager_call(url: &str, req: &serde_json::Value) -> Result<serde_json::Value, String> {
    let state = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body)
            .map_err(|_| "the manager did not answer JSON (is --url its address?)".to_string())
    };
    let (code, body) = http(url, "GET", "")?;
    if code != 200 {
        return Err(format!("the manager answered {code}"));
    }
    let now = state(&body)?;
    if req["cmd"] == "status" {
        return Ok(now);
    }
    let balancer = req["balancer"].as_str().unwrap_or_default();
    let nonce = now["balancers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| {
            b["name"]
                .as_str()
                .is_some_and(|n| n == balancer || n.strip_prefix("balancer://") == Some(balancer))
        })
        .and_then(|b| b["nonce"].as_str())
        .ok_or_else(|| format!("no balancer {balancer}"))?
        .to_string();
    let enc = crate::admin::manager::escape_uri;
    let mut form = format!(
        "b={}&nonce={}",
        enc(balancer.strip_prefix("balancer://").unwrap_or(balancer)),
        enc(&nonce)
    );
    if let Some(m) = req["member"].as_str() {
        // The manager names members by URL; a route names one too.
        let url_of = now["balancers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| b["members"].as_array().into_iter().flatten())
            .find(|x| x["url"] == m || x["route"] == m)
            .and_then(|x| x["url"].as_str())
            .ok_or_else(|| format!("no member {m} in {balancer}"))?;
        form.push_str(&format!("&w={}", enc(url_of)));
    }
    for (k, v) in req["params"].as_object().into_iter().flatten() {
        form.push_str(&format!(
            "&{}={}",
            enc(k),
            enc(v.as_str().unwrap_or_default())
        ));
    }
    let (code, body) = http(url, "POST", &form)?;
    if code != 200 {
        return Err(format!(
            "the manager refused the change ({code}): {}",
            body.trim()
        ));
    }
    state(&body)
}

/// Runs `balancerd ctl`: sends the command to the instance's admin socket (`socket`, or
/// the one beside the config's `PidFile`) and prints the answer. Returns the exit code.
pub fn run(socket: &Path, cmd: &CtlCommand) -> i32 {
    let req = match request(cmd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("balancerd ctl: {e}");
            return 2;
        }
    };
    let answer = ask(socket, &req);
    match answer {
        Ok(v) if v["ok"] == serde_json::Value::Bool(true) && v.get("released").is_some() => {
            eprintln!(
                "released {}: {} client connection(s) reset",
                v["address"].as_str().unwrap_or(""),
                v["released"]
            );
            0
        }
        Ok(v) if v["ok"] == serde_json::Value::Bool(true) => {
            if let Some(changed) = v["changed"].as_array() {
                if changed.is_empty() {
                    eprintln!("balancerd ctl: nothing changed");
                }
                for c in changed {
                    eprintln!("changed: {}", c.as_str().unwrap_or_default());
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&v["state"]).unwrap_or_default()
            );
            0
        }
        Ok(v) => {
            eprintln!(
                "balancerd ctl: {}",
                v["error"].as_str().unwrap_or("refused")
            );
            1
        }
        Err(e) => {
            eprintln!("balancerd ctl: {e}");
            1
        }
    }
}

/// One request line to the admin socket and its answer (also `balancerd explain --live`).
pub fn ask(socket: &Path, req: &serde_json::Value) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
        s.write_all(format!("{req}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<serde_json::Value>(&line).map_err(|e| e.to_string())
    })
}
