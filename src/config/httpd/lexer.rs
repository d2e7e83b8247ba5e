//! The httpd config lexer: physical lines → logical lines → words, exactly as httpd 2.4
//! reads them (httpd-semantics §1): trimmed lines, `#` comments only at the start,
//! backslash-newline continuation, quoted words, `${VAR}` substitution.

/// One logical line (after joining continuations), with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    /// 1-based number of the first physical line.
    pub line: u32,
    /// The text, trimmed, with continuations joined.
    pub text: String,
    /// Characters of leading whitespace trimmed from the first physical line.
    pub indent: u32,
}

/// Splits a file into logical lines, dropping blank lines and comments.
pub fn logical_lines(src: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut lines = src.split('\n').enumerate().peekable();
    while let Some((i, first)) = lines.next() {
        let mut text = String::new();
        let mut cur = first.strip_suffix('\r').unwrap_or(first);
        loop {
            if let Some(stripped) = cur.strip_suffix('\\') {
                text.push_str(stripped);
                match lines.next() {
                    Some((_, next)) => cur = next.strip_suffix('\r').unwrap_or(next),
                    None => break,
                }
            } else {
                text.push_str(cur);
                break;
            }
        }
        let trimmed_start = text.trim_start();
        let indent = (text.chars().count() - trimmed_start.chars().count()) as u32;
        let t = trimmed_start.trim_end();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(LogicalLine {
            line: i as u32 + 1,
            text: t.to_string(),
            indent,
        });
    }
    out
}

/// One word of a line, with its 0-based character offset in the line text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word, quotes removed and escapes resolved.
    pub text: String,
    /// 0-based character offset of the word's first character in the line.
    pub offset: u32,
    /// True when the word was quoted.
    pub quoted: bool,
}

/// Splits a line into words as `ap_getword_conf` does: whitespace separates; a word that
/// starts with `"` or `'` runs to the matching quote, inside which a backslash escapes only
/// that quote or a backslash; a quote in the middle of a word is literal.
pub fn split_words(line: &str) -> Vec<Word> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let c = chars[i];
        let mut w = String::new();
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\'
                    && i + 1 < chars.len()
                    && (chars[i + 1] == c || chars[i + 1] == '\\')
                {
                    i += 1;
                }
                w.push(chars[i]);
                i += 1;
            }
            i += 1; // closing quote (or end of line)
            out.push(Word {
                text: w,
                offset: start as u32,
                quoted: true,
            });
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                w.push(chars[i]);
                i += 1;
            }
            out.push(Word {
                text: w,
                offset: start as u32,
                quoted: false,
            });
        }
    }
    out
}

/// Substitutes `${VAR}` with `lookup(VAR)`; unknown names are left as written and
/// reported through `missing`.
pub fn substitute(
    line: &str,
    lookup: impl Fn(&str) -> Option<String>,
    mut missing: impl FnMut(&str),
) -> String {
    if !line.contains("${") {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        missing(name);
                        out.push_str(&rest[pos..pos + 2 + end + 1]);
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[pos..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_and_comments() {
        let src = "# c\n  ProxyPass /a \\\n   balancer://b/a\n\n\tListen 80  \r\nX \\ \nY\n";
        let l = logical_lines(src);
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].text, "ProxyPass /a    balancer://b/a");
        assert_eq!(l[0].line, 2);
        assert_eq!(l[0].indent, 2);
        assert_eq!(l[1].text, "Listen 80");
        assert_eq!(l[1].line, 5);
        // A space after the backslash breaks continuation.
        assert_eq!(l[2].text, "X \\");
        assert_eq!(l[3].text, "Y");
    }

    #[test]
    fn quoting() {
        let w = split_words(r#"Header add Set-Cookie "ROUTEID=.%{X}e; path=/t1" env=A"#);
        let t: Vec<_> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            t,
            [
                "Header",
                "add",
                "Set-Cookie",
                "ROUTEID=.%{X}e; path=/t1",
                "env=A"
            ]
        );
        assert!(w[3].quoted);
        assert_eq!(w[3].offset, 22);
        let w = split_words(r#"x route="a b" "q\"q\\" 'z'"#);
        let t: Vec<_> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(t, ["x", "route=\"a", "b\"", "q\"q\\", "z"]);
    }

    #[test]
    fn substitution() {
        let mut miss = Vec::new();
        let s = substitute(
            "a ${X} ${NOPE} ${",
            |n| (n == "X").then(|| "1".to_string()),
            |m| miss.push(m.to_string()),
        );
        assert_eq!(s, "a 1 ${NOPE} ${");
        assert_eq!(miss, ["NOPE"]);
    }
}
