//! `Header` / `RequestHeader` rules: parsing of the directive and of the value format
//! (`%{VAR}e`, `%{NAME}i`, `%D`, `%t`, `%%`), shared by both dialects.

use super::diag::{Origin, Severity};
use super::model::*;
use super::params::ParamIssue;

fn err(o: &Origin, msg: impl Into<String>) -> (Origin, ParamIssue) {
    (
        o.clone(),
        ParamIssue {
            severity: Severity::Error,
            message: msg.into(),
            hint: None,
        },
    )
}

/// Parses a value format such as `ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1`.
pub fn parse_format(raw: &str) -> Result<HeaderValueFormat, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.peek() {
                Some('n') => {
                    it.next();
                    lit.push('\n');
                }
                Some('t') => {
                    it.next();
                    lit.push('\t');
                }
                Some('r') => {
                    it.next();
                    lit.push('\r');
                }
                Some('\\') => {
                    it.next();
                    lit.push('\\');
                }
                _ => lit.push('\\'),
            },
            '%' => match it.next() {
                Some('%') => lit.push('%'),
                Some('{') => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in it.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("unterminated %{{ in '{raw}'"));
                    }
                    let kind = it.next();
                    if !lit.is_empty() {
                        parts.push(FormatPart::Literal(std::mem::take(&mut lit)));
                    }
                    match kind {
                        Some('e') => parts.push(FormatPart::Env(name)),
                        Some('i') => parts.push(FormatPart::RequestHeader(name)),
                        Some(k) => {
                            return Err(format!(
                                "%{{{name}}}{k} is not supported (balancerd has %{{VAR}}e and %{{Header}}i)"
                            ));
                        }
                        None => return Err(format!("%{{{name}}} needs a type letter (e or i)")),
                    }
                }
                Some('D') => {
                    if !lit.is_empty() {
                        parts.push(FormatPart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(FormatPart::Duration);
                }
                Some('t') => {
                    if !lit.is_empty() {
                        parts.push(FormatPart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(FormatPart::Time);
                }
                Some(k) => return Err(format!("unrecognized header format %{k}")),
                None => return Err("a header format may not end with '%'".into()),
            },
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(FormatPart::Literal(lit));
    }
    Ok(HeaderValueFormat {
        parts,
        raw: raw.to_string(),
    })
}

/// Parses `Header [always|onsuccess] ACTION NAME [VALUE] [REPL] [early|env=[!]VAR]`.
pub fn parse_header_directive(
    words: &[(String, Origin)],
    request: bool,
    o: &Origin,
) -> Result<HeaderRule, (Origin, ParamIssue)> {
    let dname = if request { "RequestHeader" } else { "Header" };
    let mut i = 0;
    let mut always = false;
    if !request && let Some((w, _)) = words.first() {
        if w.eq_ignore_ascii_case("always") {
            always = true;
            i = 1;
        } else if w.eq_ignore_ascii_case("onsuccess") {
            i = 1;
        }
    }
    let Some((act, act_o)) = words.get(i) else {
        return Err(err(o, format!("{dname} needs an action and a header name")));
    };
    let act_l = act.to_ascii_lowercase();
    let (needs_value, edit) = match act_l.as_str() {
        "set" | "setifempty" | "add" | "append" | "merge" => (true, false),
        "unset" => (false, false),
        "edit" | "edit*" => (true, true),
        "echo" | "note" => {
            return Err(err(act_o, format!("{dname} {act} is not supported")));
        }
        _ => {
            let mut e = err(act_o, format!("{dname}: unknown action '{act}'"));
            e.1.hint =
                Some("actions are set, setifempty, add, append, merge, unset, edit, edit*".into());
            return Err(e);
        }
    };
    i += 1;
    let Some((name, _)) = words.get(i) else {
        return Err(err(o, format!("{dname} {act} needs a header name")));
    };
    i += 1;
    let mut value = HeaderValueFormat::default();
    let mut action = match act_l.as_str() {
        "set" => HeaderAction::Set,
        "setifempty" => HeaderAction::SetIfEmpty,
        "add" => HeaderAction::Add,
        "append" => HeaderAction::Append,
        "merge" => HeaderAction::Merge,
        _ => HeaderAction::Unset,
    };
    if needs_value {
        let Some((v, vo)) = words.get(i) else {
            return Err(err(o, format!("{dname} {act} needs a value")));
        };
        i += 1;
        if edit {
            let regex = regex::Regex::new(v)
                .map_err(|e| err(vo, format!("{dname} edit regex does not compile: {e}")))?;
            let Some((r, ro)) = words.get(i) else {
                return Err(err(
                    o,
                    format!("{dname} {act} needs a regex and a replacement"),
                ));
            };
            i += 1;
            let replacement = parse_format(r).map_err(|m| err(ro, m))?;
            action = HeaderAction::Edit {
                regex,
                replacement,
                all: act_l == "edit*",
            };
        } else {
            value = parse_format(v).map_err(|m| err(vo, m))?;
        }
    }
    let mut condition = HeaderCondition::None;
    if let Some((c, co)) = words.get(i) {
        i += 1;
        if let Some(v) = c.strip_prefix("env=") {
            condition = match v.strip_prefix('!') {
                Some(n) => HeaderCondition::NotEnv(n.to_string()),
                None => HeaderCondition::Env(v.to_string()),
            };
        } else if c.eq_ignore_ascii_case("early") {
            condition = HeaderCondition::Early;
        } else if c.starts_with("expr=") {
            let mut e = err(co, format!("{dname} expr= conditions are not supported"));
            e.1.hint = Some("use env=VAR or env=!VAR".into());
            return Err(e);
        } else {
            let mut e = err(co, format!("{dname}: unexpected argument '{c}'"));
            if !needs_value {
                e.1.hint = Some(format!("{dname} unset takes only a header name"));
            } else {
                e.1.hint = Some("quote a value that contains spaces".into());
            }
            return Err(e);
        }
    }
    if let Some((extra, eo)) = words.get(i) {
        return Err(err(eo, format!("{dname}: too many arguments ('{extra}')")));
    }
    Ok(HeaderRule {
        always,
        action,
        name: name.clone(),
        value,
        condition,
        origin: o.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn o() -> Origin {
        let f: Arc<str> = Arc::from("t");
        Origin::new(&f, 1, 1)
    }

    #[test]
    fn format_parts() {
        let f = parse_format("ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1").unwrap();
        assert_eq!(
            f.parts,
            vec![
                FormatPart::Literal("ROUTEID=.".into()),
                FormatPart::Env("BALANCER_WORKER_ROUTE".into()),
                FormatPart::Literal("; path=/t1".into()),
            ]
        );
        assert!(parse_format("%{x}s").is_err());
        assert!(parse_format("100%").is_err());
        assert_eq!(
            parse_format("a%%b").unwrap().parts,
            vec![FormatPart::Literal("a%b".into())]
        );
    }

    #[test]
    fn vendor_header_line() {
        let w: Vec<(String, Origin)> = [
            "add",
            "Set-Cookie",
            "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/t1",
            "env=BALANCER_ROUTE_CHANGED",
        ]
        .iter()
        .map(|s| (s.to_string(), o()))
        .collect();
        let r = parse_header_directive(&w, false, &o()).unwrap();
        assert!(matches!(r.action, HeaderAction::Add));
        assert_eq!(
            r.condition,
            HeaderCondition::Env("BALANCER_ROUTE_CHANGED".into())
        );
    }
}
