//! Property test: no input, however broken, panics the config front end, and every
//! diagnostic that points into a file names a real line of it.

use balancerd::config::{self, LoadOptions};
use proptest::prelude::*;

fn load(name: &str, text: &str) -> config::Loaded {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    let l = config::load(&p, &LoadOptions::default());
    let lines = text.split('\n').count() as u32;
    for d in &l.diagnostics {
        if let Some(o) = &d.origin {
            assert!(o.line >= 1 && o.line <= lines.max(1), "{d:?} in {text:?}");
            assert!(o.col >= 1);
        }
    }
    l
}

/// Words that steer the generator into the parser's interesting corners.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<Proxy balancer://b>".to_string()),
        Just("</Proxy>".to_string()),
        Just("<Location /s>".to_string()),
        Just("</Location>".to_string()),
        Just("<VirtualHost *:80>".to_string()),
        Just("</VirtualHost>".to_string()),
        Just("<IfModule mod_x.c>".to_string()),
        Just("</IfModule>".to_string()),
        Just("<RequireAll>".to_string()),
        Just("</RequireAll>".to_string()),
        Just("BalancerMember".to_string()),
        Just("ProxySet".to_string()),
        Just("ProxyPass".to_string()),
        Just("ProxyPassMatch".to_string()),
        Just("ProxyPassReverse".to_string()),
        Just("Header".to_string()),
        Just("RequestHeader".to_string()),
        Just("Require".to_string()),
        Just("Allow from".to_string()),
        Just("Order".to_string()),
        Just("Include".to_string()),
        Just("Define".to_string()),
        Just("Listen".to_string()),
        Just("SSLProxyEngine".to_string()),
        Just("http://h:80/x".to_string()),
        Just("balancer://b/x".to_string()),
        Just("route=A".to_string()),
        Just("status=+H-D".to_string()),
        Just("stickysession=A|b".to_string()),
        Just("%{X}e".to_string()),
        Just("${X}".to_string()),
        Just("\"quoted word".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        load("a.conf", &text);
        load("a.toml", &text);
    }

    #[test]
    fn directive_soup_never_panics(words in prop::collection::vec(token(), 0..80)) {
        let text = words.join(" ");
        load("a.conf", &text);
        let lines = words.join("\n");
        load("b.conf", &lines);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.conf");
        std::fs::write(&p, &bytes).unwrap();
        let _ = config::load(&p, &LoadOptions::default());
    }
}
