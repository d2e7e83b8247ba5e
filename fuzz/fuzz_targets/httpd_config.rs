//! The httpd-dialect config front end on arbitrary text (one file): diagnostics, never a
//! panic, and every diagnostic that points into the file names a real line of it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `Include` with a path that leaves the temporary folder globs the machine's file
    // system (`/proc/*` alone costs milliseconds): the include code is fuzzed with paths
    // inside it only.
    if text.to_ascii_lowercase().contains("include") && text.contains('/') {
        return;
    }
    let dir = std::env::temp_dir().join(format!("balancerd-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("fuzz.conf");
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
});
