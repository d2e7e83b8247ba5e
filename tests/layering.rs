//! The layering rule of `src/lib.rs`, enforced: every `crate::` (and crate-reaching `super::`)
//! path in `src/` may name only its own top-level module or one listed before it in
//! [`LAYERS`]. A path that breaks the rule fails the test with its file and line; so does a
//! cycle between top-level modules and a top-level module the list does not place.
//!
//! Paths are read from the code only: comments, doc comments (intra-doc links) and string
//! literals are skipped, `use crate::{a::x, b::y}` groups are split, and `super::` chains
//! that climb to the crate root count as `crate::`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. Keep in step with the table in `src/lib.rs`.
const LAYERS: &[&str] = &[
    "util",
    "telemetry",
    "net",
    "config",
    "h1",
    "route",
    "upstream",
    "balancer",
    "runtime",
    "admin",
    "proxy",
    "server",
    "app",
];

/// One `crate::` reference: where it is and which top-level module it names.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    line: usize,
    target: String,
}

/// The code of a Rust file with comments, strings and char literals blanked out (newlines
/// kept, so line numbers stay right).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
            && !ident_byte(prev(b, i))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            j = (j + close.len()).min(b.len());
            for &x in &b[i..j] {
                blank(&mut out, x);
            }
            i = j;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match end {
                Some(e) => {
                    for &x in &b[i..=e] {
                        blank(&mut out, x);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn prev(b: &[u8], i: usize) -> u8 {
    if i == 0 { b' ' } else { b[i - 1] }
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(s: &[u8], mut i: usize) -> (String, usize) {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < s.len() && ident_byte(s[i]) {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The first path segment of each item of a `{…}` group starting at `s[i] == '{'`.
fn group_heads(s: &[u8], i: usize) -> Vec<(usize, String)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect = true;
    let mut j = i;
    while j < s.len() {
        match s[j] {
            b'{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
                j += 1;
            }
            b'}' => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => {
                expect = true;
                j += 1;
            }
            c if depth == 1 && expect && ident_byte(c) => {
                let (id, e) = ident_at(s, j);
                heads.push((j, id));
                expect = false;
                j = e;
            }
            c if c.is_ascii_whitespace() => j += 1,
            _ => {
                if depth == 1 {
                    expect = false;
                }
                j += 1;
            }
        }
    }
    heads
}

/// Every top-level module a file's code names through `crate::` or a `super::` chain that
/// climbs to the crate root. `depth` is the file's module depth (`src/a/mod.rs` is 1,
/// `src/a/b.rs` is 2).
fn references(src: &str, depth: usize) -> Vec<Reference> {
    let code = code_only(src);
    let s = code.as_bytes();
    let line_of = |pos: usize| s[..pos].iter().filter(|&&c| c == b'\n').count() + 1;
    let mut out = Vec::new();
    let mut push = |pos: usize, target: String| {
        if !target.is_empty() && target != "self" && target != "super" {
            out.push(Reference {
                line: line_of(pos),
                target,
            });
        }
    };
    let mut i = 0;
    while i < s.len() {
        let at_word = !ident_byte(prev(s, i));
        if at_word && s[i..].starts_with(b"crate") && !ident_byte(*s.get(i + 5).unwrap_or(&b' ')) {
            let j = skip_ws(s, i + 5);
            if s[j..].starts_with(b"::") {
                let k = skip_ws(s, j + 2);
                if s.get(k) == Some(&b'{') {
                    for (p, id) in group_heads(s, k) {
                        push(p, id);
                    }
                } else {
                    let (id, _) = ident_at(s, k);
                    push(k, id);
                }
            }
            i += 5;
        } else if at_word && s[i..].starts_with(b"super::") {
            let mut n = 0;
            let mut j = i;
            while s[j..].starts_with(b"super::") {
                n += 1;
                j = skip_ws(s, j + 7);
            }
            if n >= depth && depth > 0 {
                if s.get(j) == Some(&b'{') {
                    for (p, id) in group_heads(s, j) {
                        push(p, id);
                    }
                } else {
                    let (id, _) = ident_at(s, j);
                    push(j, id);
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// (top-level module, module depth) of a file under `src/`; `None` for the crate roots.
fn module_of(rel: &Path) -> Option<(String, usize)> {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.len() == 1 {
        let stem = parts[0].trim_end_matches(".rs");
        if stem == "lib" || stem == "main" {
            return None;
        }
        return Some((stem.to_string(), 1));
    }
    let depth = if parts.last().is_some_and(|f| f == "mod.rs") {
        parts.len() - 1
    } else {
        parts.len()
    };
    Some((parts[0].clone(), depth))
}

/// Checks a set of files (path relative to `src/`, text) against [`LAYERS`]; returns one
/// message per problem.
fn check(files: &[(PathBuf, String)]) -> Vec<String> {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let Some((top, depth)) = module_of(rel) else {
            continue;
        };
        let Some(from) = rank(&top) else {
            problems.push(format!(
                "src/{}: top-level module `{top}` has no place in LAYERS (tests/layering.rs and src/lib.rs)",
                rel.display()
            ));
            continue;
        };
        for r in references(text, depth) {
            if r.target == top {
                continue;
            }
            match rank(&r.target) {
                Some(to) if to > from => problems.push(format!(
                    "src/{}:{}: `{top}` (layer {from}) imports `crate::{}` (layer {to}), a layer above it",
                    rel.display(),
                    r.line,
                    r.target
                )),
                Some(_) => {
                    edges.entry(top.clone()).or_default().insert(r.target.clone());
                }
                None => {}
            }
        }
    }
    // With every edge pointing down the list no cycle can remain; look for one anyway, so
    // that a change to the rule above cannot let one through unseen.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(p) = stack.iter().position(|s| s == n) {
            found.push(format!("import cycle: {} -> {n}", stack[p..].join(" -> ")));
            return;
        }
        if !done.insert(n.to_string()) {
            return;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, stack, done, found);
        }
        stack.pop();
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done, &mut problems);
    }
    problems
}

fn crate_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            (p.strip_prefix(&root).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let problems = check(&crate_files());
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layer_list_matches_lib_rs() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert_eq!(
        declared, LAYERS,
        "src/lib.rs declares its modules in layer order"
    );
}

#[test]
fn a_back_edge_is_named_with_file_and_line() {
    let files = vec![
        (PathBuf::from("util/clock.rs"), "//! x\n\nuse std::sync::Arc;\nuse crate::app::cli;\n".to_string()),
        (
            PathBuf::from("net/tls.rs"),
            "use crate::{\n    util::clock,\n    runtime::Shared,\n};\n// crate::proxy in a comment\nconst S: &str = \"crate::server\";\n"
                .to_string(),
        ),
        (PathBuf::from("h1/fields.rs"), "fn f() { super::super::upstream::x(); super::chunked::y(); }\n".to_string()),
        (PathBuf::from("route.rs"), "fn f<'a>(c: char) -> bool { c == '\"' && crate::h1::ok() }\n".to_string()),
    ];
    let p = check(&files);
    assert_eq!(
        p,
        vec![
            "src/util/clock.rs:4: `util` (layer 0) imports `crate::app` (layer 12), a layer above it",
            "src/net/tls.rs:3: `net` (layer 2) imports `crate::runtime` (layer 8), a layer above it",
            "src/h1/fields.rs:1: `h1` (layer 4) imports `crate::upstream` (layer 6), a layer above it",
        ]
    );
}

#[test]
fn an_unplaced_module_is_named() {
    let files = vec![(
        PathBuf::from("extra/mod.rs"),
        "use crate::util::clock;\n".to_string(),
    )];
    let p = check(&files);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("`extra` has no place in LAYERS"), "{p:?}");
}
