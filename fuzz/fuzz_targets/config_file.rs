//! Shared by the config fuzz targets: one file of arbitrary text loaded by the front end
//! its name's extension picks, checked for what every load must give.

/// Writes `text` to a file named `name` in a per-process temporary folder and loads it:
/// never a panic, and every diagnostic that points into the file names a real line of it.
pub fn load_and_check(name: &str, text: &str) {
    let dir = std::env::temp_dir().join(format!("balancerd-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    if std::fs::write(&path, text).is_err() {
        return;
    }
    let loaded = balancerd::config::load(&path, &balancerd::config::LoadOptions::default());
    let lines = text.split('\n').count() as u32;
    for d in &loaded.diagnostics {
        if let Some(o) = &d.origin
            && *o.file == *path.display().to_string()
        {
            assert!(o.line >= 1 && o.line <= lines.max(1), "{d:?}");
        }
    }
}
