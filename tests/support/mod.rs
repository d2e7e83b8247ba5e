//! Test support: run the real `balancerd` binary, write real config files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of the binary printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `file:line:col: severity: message` heads of every diagnostic, in order.
    pub fn heads(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| {
                l.contains(": error: ") || l.contains(": warning: ") || l.contains(": note: ")
            })
            .map(str::to_string)
            .collect()
    }
}

/// The crate root (tests run from here so paths print the same everywhere).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `balancerd ARGS` from the crate root.
pub fn balancerd(args: &[&str]) -> Run {
    balancerd_in(&root(), args)
}

/// Runs `balancerd ARGS` from `dir`.
pub fn balancerd_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_balancerd"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run balancerd");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary folder of config files.
pub struct ConfDir {
    pub dir: tempfile::TempDir,
}

impl ConfDir {
    pub fn new() -> Self {
        ConfDir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `rel` with `text` and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `balancerd check --config REL` inside the folder.
    pub fn check(&self, rel: &str) -> Run {
        balancerd_in(self.path(), &["check", "--config", rel])
    }
}
