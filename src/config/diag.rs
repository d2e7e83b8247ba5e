//! Diagnostics: every problem found in a config file, as a value that knows where it
//! came from (`file:line:col`), how bad it is, and what to do about it.
//!
//! Both dialects and the lints produce [`Diagnostic`]s; `balancerd check` and a reload
//! render them the same way, as text (with the source line and a caret) or as JSON.

use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// How bad a diagnostic is. Ordered so that `max()` gives the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Information an admin may want (a skipped httpd-only directive).
    Note,
    /// Accepted, but probably not what the admin meant, or httpd would differ.
    Warning,
    /// The config cannot be used.
    Error,
}

impl Severity {
    /// The word printed in `file:line:col: <word>: message`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A position in a config file; 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    /// The file as the admin named it (or as an `Include` resolved it).
    pub file: Arc<str>,
    /// 1-based line number (the first physical line of a continued line).
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl Origin {
    /// A position in `file`.
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Self {
        Origin {
            file: file.clone(),
            line,
            col,
        }
    }

    /// The same place with another column.
    pub fn at_col(&self, col: u32) -> Self {
        Origin {
            file: self.file.clone(),
            line: self.line,
            col,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One problem, with where it is and (where one helps) a hint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// Where it is; `None` for problems of the config as a whole.
    #[serde(flatten, serialize_with = "ser_origin")]
    pub origin: Option<Origin>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to write instead, when we know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The source line the origin points into, for the caret display.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
}

fn ser_origin<S: serde::Serializer>(o: &Option<Origin>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    if let Some(o) = o {
        m.serialize_entry("file", &*o.file)?;
        m.serialize_entry("line", &o.line)?;
        m.serialize_entry("col", &o.col)?;
    }
    m.end()
}

impl Diagnostic {
    /// A diagnostic at `origin`.
    pub fn new(severity: Severity, origin: Option<Origin>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            origin,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders as `file:line:col: severity: message`, the source line with a caret, and the hint.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.origin {
            Some(o) => {
                let _ = write!(out, "{o}: ");
            }
            None => out.push_str("balancerd: "),
        }
        let _ = writeln!(out, "{}: {}", self.severity.as_str(), self.message);
        if let (Some(o), Some(src)) = (&self.origin, &self.source_line) {
            let num = o.line.to_string();
            let pad = " ".repeat(num.len());
            let _ = writeln!(out, " {num} | {src}");
            // Keep tabs so the caret lines up under tab-indented source.
            let lead: String = src
                .chars()
                .take(o.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, " {pad} | {lead}^");
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "  = hint: {h}");
        }
        out
    }
}

/// The diagnostics gathered while loading one config.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a diagnostic and gives it back for a hint to be added.
    pub fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.items.push(d);
        let last = self.items.len() - 1;
        &mut self.items[last]
    }

    /// Records an error at `origin`.
    pub fn error(&mut self, origin: &Origin, msg: impl Into<String>) -> &mut Diagnostic {
        self.push(Diagnostic::new(Severity::Error, Some(origin.clone()), msg))
    }

    /// Records a warning at `origin`.
    pub fn warning(&mut self, origin: &Origin, msg: impl Into<String>) -> &mut Diagnostic {
        self.push(Diagnostic::new(
            Severity::Warning,
            Some(origin.clone()),
            msg,
        ))
    }

    /// Records a note at `origin`.
    pub fn note(&mut self, origin: &Origin, msg: impl Into<String>) -> &mut Diagnostic {
        self.push(Diagnostic::new(Severity::Note, Some(origin.clone()), msg))
    }

    /// True when any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The worst severity seen, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.items.iter().map(|d| d.severity).max()
    }

    /// All diagnostics, in the order found.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Takes the diagnostics out.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Count of diagnostics of one severity.
    pub fn count(&self, s: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == s).count()
    }
}

impl Diagnostic {
    /// Sets the hint in place (for use on the `&mut` that `Diagnostics::push` returns).
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the source line in place.
    pub fn source(&mut self, line: impl Into<String>) -> &mut Self {
        self.source_line = Some(line.into());
        self
    }
}

/// The closest of `candidates` to `word` (case-insensitive edit distance), if close enough
/// to be a plausible typo. Words longer than any name a config uses get no suggestion.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    const LONGEST: usize = 48;
    if word.len() > LONGEST {
        return None;
    }
    let w = word.as_bytes();
    // A plausible typo: a third of the word, at least 2 edits and at most 4.
    let limit = (w.len() / 3).clamp(2, 4);
    let wm = letters(w);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        // The distance is at least the difference in length: most candidates are
        // skipped without computing it (a config with many unknown words stays fast).
        let bound = best.map_or(limit, |(bd, _)| bd.saturating_sub(1).min(limit));
        if c.len().abs_diff(w.len()) > bound {
            continue;
        }
        // Each letter one word has and the other lacks costs an edit: a second cheap bound.
        let cm = letters(c.as_bytes());
        if (wm & !cm).count_ones().max((cm & !wm).count_ones()) as usize > bound {
            continue;
        }
        let d = edit_distance(w, c.as_bytes(), bound);
        if d <= bound && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// The set of ASCII letters and digits in `s` (case-folded), one bit each.
fn letters(s: &[u8]) -> u64 {
    s.iter().fold(0u64, |m, &b| match b.to_ascii_lowercase() {
        c @ b'a'..=b'z' => m | 1 << (c - b'a'),
        c @ b'0'..=b'9' => m | 1 << (26 + c - b'0'),
        _ => m | 1 << 63,
    })
}

/// Levenshtein distance over ASCII-case-folded bytes (both words are at most `LONGEST`
/// bytes: the rows live on the stack), giving up (returning `bound + 1`) once every
/// alignment costs more than `bound`.
fn edit_distance(a: &[u8], b: &[u8], bound: usize) -> usize {
    const ROW: usize = 64;
    if a.len() >= ROW || b.len() >= ROW {
        return bound + 1;
    }
    let mut prev = [0usize; ROW];
    let mut cur = [0usize; ROW];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = i;
        let ai = a[i - 1].to_ascii_lowercase();
        for j in 1..=b.len() {
            let cost = usize::from(ai != b[j - 1].to_ascii_lowercase());
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            row_min = row_min.min(cur[j]);
        }
        if row_min > bound {
            return bound + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos() {
        let c = ["ProxyPass", "ProxySet", "BalancerMember"];
        assert_eq!(closest("ProxyPas", c), Some("ProxyPass"));
        assert_eq!(closest("balancermembr", c), Some("BalancerMember"));
        assert_eq!(closest("Frobnicate", c), None);
    }

    #[test]
    fn render_has_caret_and_hint() {
        let f: Arc<str> = Arc::from("a.conf");
        let mut d = Diagnostic::new(Severity::Error, Some(Origin::new(&f, 3, 10)), "bad");
        d.source("ProxySet sticky session=ROUTEID")
            .hint("write stickysession=ROUTEID");
        let r = d.render();
        assert!(r.starts_with("a.conf:3:10: error: bad\n"));
        assert!(r.contains(" 3 | ProxySet sticky session=ROUTEID\n"));
        assert!(r.contains("   |          ^\n"));
        assert!(r.contains("= hint: write stickysession=ROUTEID"));
    }
}
