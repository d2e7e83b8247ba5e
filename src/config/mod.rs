//! The config front end: source text (httpd dialect or TOML) → one validated [`Config`].
//!
//! `load` is the single entry point; `balancerd check` and a reload both call it, so what
//! `check` accepts is exactly what a reload accepts. The dialect is chosen per file by its
//! name (`*.toml` is TOML, anything else is httpd), and either may include the other.
//!
//! Layer 3. Owns: the config model ([`model`]), both dialects, diagnostics, lints, the
//! compiled forms of what the config names (`ProxyHCExpr`, `LogFormat`), the watch list.
//! Knows nothing of runtime state: a [`Config`] is plain data.
//!
//! May import: `util`, `telemetry` (to compile `LogFormat`), `net` (to load certificates with
//! the same code the runtime uses).

pub mod builder;
pub mod diag;
pub mod emit;
pub mod hcexpr;
pub mod headers;
pub mod httpd;
pub mod lint;
pub mod model;
pub mod params;
pub mod rewrite;
pub mod summary;
pub mod toml;

use builder::ModelBuilder;
use diag::{Diagnostic, Diagnostics, Origin, Severity};
pub use model::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// httpd's limit on include nesting.
const MAX_INCLUDE_DEPTH: usize = 128;

/// What a load produced: the config when there was no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The model; `None` when any error was found.
    pub config: Option<Config>,
    /// Every diagnostic, in the order found, each with its source line.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// The worst severity among the diagnostics.
    pub fn worst(&self) -> Option<Severity> {
        self.diagnostics.iter().map(|d| d.severity).max()
    }
}

/// Options of a load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-D NAME` defines given on the command line.
    pub defines: Vec<String>,
}

/// State shared by both dialects while one config is read.
pub struct LoadCtx {
    /// The model under construction.
    pub builder: ModelBuilder,
    /// Everything found so far.
    pub diags: Diagnostics,
    /// `Define`d variables.
    pub defines: HashMap<String, String>,
    /// Access rules of non-balancer `<Proxy>` sections.
    pub proxy_access: Option<model::AccessRules>,
    /// `LogFormat` nicknames.
    pub log_formats: HashMap<String, std::sync::Arc<crate::telemetry::access_log::LogFormat>>,
    /// Modules `LoadModule` loaded so far, by base name (`proxy` for `proxy_module` and
    /// `mod_proxy.so`): `<IfModule>` reads them as httpd does.
    pub loaded_modules: std::collections::HashSet<String>,
    /// `LogFormat` nicknames whose format was refused: reported once, at the `LogFormat`,
    /// not again at each `CustomLog` naming them.
    pub rejected_log_formats: std::collections::HashSet<String>,
    include_stack: Vec<PathBuf>,
    texts: HashMap<Arc<str>, String>,
}

impl LoadCtx {
    fn new(opts: &LoadOptions) -> Self {
        let mut defines = HashMap::new();
        for d in &opts.defines {
            let (k, v) = d.split_once('=').unwrap_or((d, ""));
            defines.insert(k.to_string(), v.to_string());
        }
        LoadCtx {
            builder: ModelBuilder::default(),
            diags: Diagnostics::default(),
            defines,
            proxy_access: None,
            log_formats: HashMap::new(),
            loaded_modules: Default::default(),
            rejected_log_formats: Default::default(),
            include_stack: Vec::new(),
            texts: HashMap::new(),
        }
    }

    /// The folder relative includes and files resolve against: `ServerRoot` when set,
    /// else the folder of the file that names them.
    pub fn include_base(&self, file: &str) -> PathBuf {
        if let Some(root) = &self.builder.config.server.server_root {
            return root.clone();
        }
        Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Reads a file for inclusion: detects cycles and runaway nesting, records it as a
    /// source. Returns `None` (with a diagnostic) when it cannot be read.
    fn enter(&mut self, path: &Path, from: Option<&Origin>) -> Option<String> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let here = from.cloned().unwrap_or_else(|| {
            let f: Arc<str> = Arc::from(path.display().to_string());
            Origin::new(&f, 1, 1)
        });
        if self.include_stack.contains(&canon) {
            let chain: Vec<String> = self
                .include_stack
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            self.diags
                .error(
                    &here,
                    format!(
                        "include cycle: {} includes itself ({} → {})",
                        path.display(),
                        chain.join(" → "),
                        path.display()
                    ),
                )
                .hint("remove one of the Include lines");
            return None;
        }
        if self.include_stack.len() >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                &here,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
            );
            return None;
        }
        let text = match std::fs::read(path) {
            Ok(b) => match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => {
                    // Keep going with a lossy copy so later errors still have lines.
                    let s = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    self.diags.warning(
                        &here,
                        format!(
                            "{} is not valid UTF-8; invalid bytes were replaced",
                            path.display()
                        ),
                    );
                    s
                }
            },
            Err(e) => {
                let msg = if from.is_some() {
                    format!("cannot read included file {}: {e}", path.display())
                } else {
                    format!("cannot read {}: {e}", path.display())
                };
                self.diags
                    .push(Diagnostic::new(Severity::Error, from.cloned(), msg));
                return None;
            }
        };
        self.include_stack.push(canon);
        let key: Arc<str> = Arc::from(path.display().to_string());
        self.texts.insert(key, text.clone());
        self.builder.config.sources.push(path.to_path_buf());
        Some(text)
    }

    fn leave(&mut self) {
        self.include_stack.pop();
    }

    /// Loads a file of either dialect at the top level (or from a TOML include).
    pub fn load_path(&mut self, path: &Path, from: Option<&Origin>) {
        let Some(text) = self.enter(path, from) else {
            return;
        };
        if is_toml(path) {
            toml::load_text(self, path, &text);
        } else {
            let mut p = httpd::HttpdParser::new(self);
            p.parse_file(path, &text);
        }
        self.leave();
    }
}

impl httpd::HttpdParser<'_> {
    /// Loads an included file in the current section context (httpd includes splice).
    pub(crate) fn load_included(&mut self, path: &Path, from: &Origin) {
        let ctx = self.ctx_mut();
        let Some(text) = ctx.enter(path, Some(from)) else {
            return;
        };
        if is_toml(path) {
            toml::load_text(self.ctx_mut(), path, &text);
        } else {
            self.include_text(path, &text);
        }
        self.ctx_mut().leave();
    }
}

/// True when the file is in the TOML dialect.
pub fn is_toml(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// True when an include path has wildcards.
pub fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// The folder to watch for a wildcard or folder include.
pub fn wildcard_dir(full: &Path) -> PathBuf {
    if full.is_dir() {
        return full.to_path_buf();
    }
    let mut dir = PathBuf::new();
    for c in full.components() {
        let s = c.as_os_str().to_string_lossy();
        if has_wildcard(&s) {
            break;
        }
        dir.push(c);
    }
    if dir == full {
        full.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

/// Resolves an `Include` argument: a file, a folder (every file under it, recursively,
/// sorted), or a wildcard (sorted; `*` does not match a leading dot).
pub fn resolve_include(full: &Path) -> Result<Vec<PathBuf>, String> {
    let s = full.display().to_string();
    if !has_wildcard(&s) {
        if full.is_dir() {
            let mut out = Vec::new();
            walk_dir(full, &mut out).map_err(|e| format!("cannot read folder: {e}"))?;
            out.sort();
            return Ok(out);
        }
        if !full.exists() {
            return Err("no such file".into());
        }
        return Ok(vec![full.to_path_buf()]);
    }
    let dir = wildcard_dir(full);
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        return Err(format!("the folder {} does not exist", dir.display()));
    }
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(&s, opts).map_err(|e| format!("bad wildcard: {e}"))?;
    let mut out: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(out)
}

fn walk_dir(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(d)? {
        let p = e?.path();
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads and validates a config. This is what `check` and every reload run.
pub fn load(path: &Path, opts: &LoadOptions) -> Loaded {
    let mut ctx = LoadCtx::new(opts);
    ctx.load_path(path, None);
    if !ctx.loaded_modules.is_empty() && !ctx.loaded_modules.contains("reqtimeout") {
        // A tree that loads its modules but not mod_reqtimeout has no read deadlines but
        // `Timeout`, as httpd without the module.
        let s = &mut ctx.builder.config.server;
        s.header_read_timeout = None;
        s.body_read_timeout = None;
    }
    let main_file: Arc<str> = Arc::from(path.display().to_string());
    let LoadCtx {
        builder,
        mut diags,
        proxy_access,
        texts,
        ..
    } = ctx;
    let read_ok = !builder.config.sources.is_empty();
    let mut config = builder.finish(&mut diags, &main_file, read_ok);
    config.proxy_access = proxy_access;
    let mut diagnostics = diags.into_vec();
    for d in &mut diagnostics {
        if d.source_line.is_none()
            && let Some(o) = &d.origin
            && let Some(t) = texts.get(&o.file)
            && let Some(l) = t.split('\n').nth(o.line.saturating_sub(1) as usize)
        {
            d.source_line = Some(l.trim_end_matches('\r').to_string());
        }
    }
    let has_err = diagnostics.iter().any(|d| d.severity == Severity::Error);
    Loaded {
        config: if has_err { None } else { Some(config) },
        diagnostics,
    }
}
