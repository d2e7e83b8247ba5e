//! The TOML config front end on arbitrary text (one file): diagnostics, never a panic, and
//! every diagnostic that points into the file names a real line of it.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "config_file.rs"]
mod config_file;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    config_file::load_and_check("fuzz.toml", text);
});
