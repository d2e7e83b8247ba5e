//! Shared by the config fuzz targets: one file of arbitrary text loaded by the front end
//! its name's extension picks, checked for what every load must give.

/// Writes `text` to a file named `name` in a per-process temporary folder and loads it:
/// never a panic, and every diagnostic that points into the file names a real line of it.
/// A config that loads converts (`balancerd convert`) to both dialects, and each converted
/// file loads without an error to the same summary.
pub fn load_and_check(name: &str, text: &str) {
    let dir = std::env::temp_dir().join(format!("balancerd-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    if std::fs::write(&path, text).is_err() {
        return;
    }
    let opts = balancerd::config::LoadOptions::default();
    let loaded = balancerd::config::load(&path, &opts);
    let lines = text.split('\n').count() as u32;
    for d in &loaded.diagnostics {
        if let Some(o) = &d.origin
            && *o.file == *path.display().to_string()
        {
            assert!(o.line >= 1 && o.line <= lines.max(1), "{d:?}");
        }
    }
    let Some(c) = loaded.config else {
        return;
    };
    let summary = without_places(&balancerd::config::summary::text(&c));
    for (out, (converted, _)) in [
        ("converted.conf", balancerd::config::emit::httpd::emit(&c)),
        ("converted.toml", balancerd::config::emit::toml::emit(&c)),
    ] {
        let p = dir.join(out);
        if std::fs::write(&p, &converted).is_err() {
            return;
        }
        let again = balancerd::config::load(&p, &opts);
        let Some(c2) = again.config else {
            panic!(
                "{name} converted to {out} does not load:\n{:?}\n--- original\n{text}\n--- converted\n{converted}",
                again.diagnostics
            );
        };
        assert_eq!(
            summary,
            without_places(&balancerd::config::summary::text(&c2)),
            "{name} converted to {out}: the summary changed\n--- original\n{text}\n--- converted\n{converted}"
        );
    }
}

/// A summary without the trailing file:line:col of its lines.
fn without_places(s: &str) -> String {
    s.lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((head, last))
                if last.rsplitn(3, ':').count() == 3
                    && last
                        .rsplitn(3, ':')
                        .take(2)
                        .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())) =>
            {
                head.trim_end().to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
