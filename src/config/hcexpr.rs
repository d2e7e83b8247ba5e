//! `ProxyHCExpr` expressions, compiled once when the config is read: the subset of httpd's
//! `ap_expr` that health checks use on the response status,
//! `%{REQUEST_STATUS} =~ /regex/`, `%{REQUEST_STATUS} -lt 400` (and `-le -gt -ge -eq -ne`,
//! `< <= > >= == !=`), optionally negated with `!`, optionally in braces. Anything else is a
//! config error at the directive's line (httpd would also refuse what it cannot parse;
//! balancerd refuses what it does not evaluate, rather than failing every probe).

use std::fmt;

/// A compiled health-check expression.
#[derive(Clone)]
pub struct HcExpr {
    source: String,
    negate: bool,
    test: Test,
}

#[derive(Clone)]
enum Test {
    Matches(regex::Regex),
    Compare(Op, u16),
}

#[derive(Clone, Copy)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl HcExpr {
    /// Compiles `text` (what follows the name in `ProxyHCExpr name {expr}`).
    pub fn parse(text: &str) -> Result<HcExpr, String> {
        let e = text.trim();
        let e = match e.strip_prefix('{') {
            Some(r) => r
                .strip_suffix('}')
                .ok_or("the expression opens '{' but does not close it")?,
            None => e,
        }
        .trim();
        let (negate, e) = match e.strip_prefix('!') {
            Some(r) => {
                let r = r.trim();
                let r = match r.strip_prefix('(') {
                    Some(inner) => inner
                        .strip_suffix(')')
                        .ok_or("the negated expression opens '(' but does not close it")?,
                    None => r,
                };
                (true, r.trim())
            }
            None => (false, e),
        };
        let rest = e.strip_prefix("%{REQUEST_STATUS}").ok_or_else(|| {
            format!(
                "unsupported health-check expression '{e}': balancerd evaluates %{{REQUEST_STATUS}} =~ /regex/ and %{{REQUEST_STATUS}} -lt|-le|-gt|-ge|-eq|-ne N"
            )
        })?;
        let rest = rest.trim();
        let test = if let Some(re) = rest.strip_prefix("=~") {
            let re = re.trim();
            let re = re
                .strip_prefix('/')
                .and_then(|r| r.strip_suffix('/'))
                .ok_or_else(|| format!("the regex '{re}' must be written /…/"))?;
            Test::Matches(regex::Regex::new(re).map_err(|e| {
                // The regex crate's message draws a caret over several lines: keep its verdict.
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("").trim();
                format!("bad regex /{re}/: {}", last.trim_start_matches("error: "))
            })?)
        } else {
            let mut it = rest.split_whitespace();
            let op = match it.next() {
                Some("-lt" | "<") => Op::Lt,
                Some("-le" | "<=") => Op::Le,
                Some("-gt" | ">") => Op::Gt,
                Some("-ge" | ">=") => Op::Ge,
                Some("-eq" | "==") => Op::Eq,
                Some("-ne" | "!=") => Op::Ne,
                other => {
                    return Err(format!(
                        "unsupported operator '{}' after %{{REQUEST_STATUS}} (=~ -lt -le -gt -ge -eq -ne)",
                        other.unwrap_or("")
                    ));
                }
            };
            let n = it
                .next()
                .and_then(|n| n.parse::<u16>().ok())
                .ok_or("a status number must follow the operator")?;
            if let Some(extra) = it.next() {
                return Err(format!("unexpected '{extra}' after the comparison"));
            }
            Test::Compare(op, n)
        };
        Ok(HcExpr {
            source: text.trim().to_string(),
            negate,
            test,
        })
    }

    /// True when a probe answered with `status` passes.
    pub fn passes(&self, status: u16) -> bool {
        let r = match &self.test {
            Test::Matches(re) => re.is_match(itoa_status(status).as_str()),
            Test::Compare(op, n) => match op {
                Op::Lt => status < *n,
                Op::Le => status <= *n,
                Op::Gt => status > *n,
                Op::Ge => status >= *n,
                Op::Eq => status == *n,
                Op::Ne => status != *n,
            },
        };
        r != self.negate
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn itoa_status(s: u16) -> String {
    s.to_string()
}

/// httpd's default when a member has no `hcexpr`: 2xx and 3xx pass.
pub fn default_passes(status: u16) -> bool {
    (200..400).contains(&status)
}

impl fmt::Debug for HcExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HcExpr({})", self.source)
    }
}

impl PartialEq for HcExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for HcExpr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_forms_compile_and_evaluate() {
        let e = HcExpr::parse("{%{REQUEST_STATUS} =~ /^[23]/}").unwrap();
        assert!(e.passes(200) && e.passes(302) && !e.passes(404));
        let e = HcExpr::parse("%{REQUEST_STATUS} -lt 400").unwrap();
        assert!(e.passes(399) && !e.passes(400));
        let e = HcExpr::parse("{!(%{REQUEST_STATUS} =~ /^5/)}").unwrap();
        assert!(e.passes(404) && !e.passes(503));
        let e = HcExpr::parse("%{REQUEST_STATUS} != 503").unwrap();
        assert!(e.passes(200) && !e.passes(503));
        assert!(default_passes(204) && !default_passes(500));
        // The cases the health checker's own test had before the expressions were compiled.
        assert!(default_passes(200) && default_passes(302) && !default_passes(500));
        let e = HcExpr::parse("{%{REQUEST_STATUS} =~ /^[234]/}").unwrap();
        assert!(e.passes(404) && !e.passes(500));
        assert!(
            !HcExpr::parse("!(%{REQUEST_STATUS} =~ /^5/)")
                .unwrap()
                .passes(503)
        );
    }

    #[test]
    fn what_is_not_evaluated_is_refused_with_a_reason() {
        for bad in [
            "{%{REQUEST_STATUS} =~ /[/}",
            "%{REQUEST_STATUS} -foo 3",
            "%{REQUEST_STATUS} -lt",
            "%{REQUEST_STATUS} -lt abc",
            "{hc('body') =~ /OK/}",
            "{%{REQUEST_STATUS} =~ /^2/",
            "%{REQUEST_STATUS} =~ ^2",
        ] {
            assert!(HcExpr::parse(bad).is_err(), "{bad}");
        }
    }
}
