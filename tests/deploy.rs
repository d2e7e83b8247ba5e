//! The deployment files load: the Kubernetes ConfigMap's balancerd.conf and tenant file (as
//! the Pod mounts them, with a certificate made here) pass `balancerd check`, and the OCF
//! agent and keepalived scripts are executable. (kubernetes-validate and hadolint check the
//! manifests and the Dockerfile in `.ci/run`.)

mod support;
use support::*;

/// The `key: |` blocks of a ConfigMap's `data`, by key (two-space keys, four-space text).
fn configmap_data(yaml: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_data = false;
    for line in yaml.lines() {
        if line == "data:" {
            in_data = true;
            continue;
        }
        if !in_data {
            continue;
        }
        if let Some(key) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(": |")) {
            out.push((key.to_string(), String::new()));
        } else if let Some(text) = line.strip_prefix("    ") {
            let last = out.last_mut().expect("text before a key");
            last.1.push_str(text);
            last.1.push('\n');
        } else if line.trim().is_empty()
            && let Some(last) = out.last_mut()
        {
            last.1.push('\n');
        }
    }
    out
}

#[test]
fn the_kubernetes_configmap_loads() {
    let yaml = std::fs::read_to_string(root().join("deploy/k8s/configmap.yaml")).unwrap();
    let data = configmap_data(&yaml);
    assert_eq!(data.len(), 2, "{data:?}");
    let d = ConfDir::new();
    let g = balancerd_in(d.path(), &["gen-certs", "tls"]);
    assert_eq!(g.code, 0, "{}", g.stderr);
    let top = d.path().display().to_string();
    for (key, text) in &data {
        // The Pod's paths, moved into this folder.
        let text = text
            .replace(
                "/etc/balancerd/tls/tls.crt",
                &format!("{top}/tls/localhost.pem"),
            )
            .replace(
                "/etc/balancerd/tls/tls.key",
                &format!("{top}/tls/localhost.key"),
            )
            .replace("/etc/balancerd/conf.d", &format!("{top}/conf.d"))
            .replace("/run/balancerd", &top);
        let rel = if key == "balancerd.conf" {
            key.clone()
        } else {
            format!("conf.d/{key}")
        };
        d.write(&rel, &text);
    }
    let r = d.check("balancerd.conf");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("balancer://t1rws"), "{}", r.stdout);
    assert!(r.stdout.contains("0.0.0.0:8443 (https)"), "{}", r.stdout);
    assert!(r.stdout.contains("/ready -> ready"), "{}", r.stdout);
    assert!(r.stdout.contains("/live -> live"), "{}", r.stdout);
}

#[test]
fn the_agent_and_scripts_are_executable() {
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "deploy/ocf/balancerd",
        "deploy/keepalived/balancerd-ready.sh",
        "deploy/keepalived/balancerd-release.sh",
    ] {
        let mode = std::fs::metadata(root().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{f} is not executable");
    }
}

/// The CLI as packaged: `-t` checks like `apachectl -t`, `version`, the man page and the
/// bash completion come from the CLI definition, and tuning switches stay out of `--help`.
#[test]
fn the_cli_has_what_the_packages_install() {
    let r = balancerd(&["-t", "-f", "conf/balancerd.conf"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is valid"), "{}", r.stderr);
    let broken = ConfDir::new();
    broken.write("b.conf", "Bogus on\n");
    assert_eq!(balancerd_in(broken.path(), &["-t", "-f", "b.conf"]).code, 1);
    let v = balancerd(&["version"]);
    assert!(
        v.stdout
            .starts_with(&format!("balancerd {} (", env!("CARGO_PKG_VERSION"))),
        "{}",
        v.stdout
    );
    let man = balancerd(&["man"]);
    assert_eq!(man.code, 0);
    assert!(man.stdout.contains(".TH balancerd 1"), "{}", man.stdout);
    for section in ["EXIT STATUS", "CONFIG DIALECTS", "SIGUSR2"] {
        assert!(man.stdout.contains(section), "man page lacks {section}");
    }
    let comp = balancerd(&["completions", "bash"]);
    assert!(
        comp.stdout.contains("complete -F _balancerd"),
        "{}",
        comp.stdout
    );
    let help = balancerd(&["--help"]);
    for hidden in [
        "--no-nodelay",
        "--socket-buffer",
        "--congestion",
        "--listeners-per-addr",
    ] {
        assert!(!help.stdout.contains(hidden), "--help lists {hidden}");
    }
    assert!(help.stdout.contains("explain"), "{}", help.stdout);
}

/// The README and every page in docs/: each relative link names a file that exists, and each
/// `#anchor` a heading of that file (GitHub's slugs).
#[test]
fn every_link_into_the_docs_resolves() {
    let root = root();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let slug = |h: &str| -> String {
        h.trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect()
    };
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() {
                f.clone()
            } else {
                f.parent().unwrap().join(path)
            };
            assert!(
                file.exists(),
                "{}: link to {target}: {} does not exist",
                f.display(),
                file.display()
            );
            if !anchor.is_empty() {
                let t = std::fs::read_to_string(&file).unwrap();
                let found = t
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| slug(l.trim_start_matches('#')) == anchor);
                assert!(
                    found,
                    "{}: link to {target}: no heading #{anchor} in {}",
                    f.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links checked");
}
