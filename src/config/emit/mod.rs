//! Writing a validated [`Config`](super::model::Config) back out as text: the httpd dialect
//! ([`httpd`]) and the TOML dialect ([`toml`]), for `balancerd convert`. Both write what the
//! model holds; what a dialect cannot say is a [`Loss`] with the origin of what was lost, and
//! `convert` lists them.
//!
//! May import: `util`, `telemetry` and the rest of `config`.

pub mod httpd;
pub mod toml;

use super::diag::Origin;
use std::time::Duration;

/// Something the target dialect cannot express, and where it was written.
#[derive(Debug, Clone)]
pub struct Loss {
    /// Where the lost setting was declared (`None`: a server-wide default).
    pub origin: Option<Origin>,
    /// What was lost, and what the output says instead.
    pub what: String,
}

/// One word of an httpd directive, quoted when it would not read back as one word.
pub fn httpd_word(w: &str) -> String {
    let plain = !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c == '#');
    if plain {
        return w.to_string();
    }
    let mut s = String::with_capacity(w.len() + 2);
    s.push('"');
    for c in w.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// A duration as httpd's `ap_timeout_parameter_parse` reads it: seconds when whole, else
/// milliseconds.
pub fn httpd_timeout(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A duration as the TOML dialect reads it.
pub fn toml_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A file path as the output names it: absolute, so it means the same file wherever the
/// converted config is put.
pub fn path_text(p: &std::path::Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// A load factor (×100) as httpd writes it (`1`, `2.5`).
pub fn loadfactor(x: u32) -> String {
    if x.is_multiple_of(100) {
        (x / 100).to_string()
    } else {
        format!("{}.{:02}", x / 100, x % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(httpd_word("ROUTEID"), "ROUTEID");
        assert_eq!(httpd_word("a b"), "\"a b\"");
        assert_eq!(httpd_word(""), "\"\"");
        assert_eq!(httpd_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(httpd_timeout(Duration::from_millis(1500)), "1500ms");
        assert_eq!(httpd_timeout(Duration::from_secs(3)), "3");
        assert_eq!(loadfactor(250), "2.5");
    }
}
