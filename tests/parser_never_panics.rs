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
        Just("RewriteEngine On".to_string()),
        Just("RewriteCond".to_string()),
        Just("RewriteRule".to_string()),
        Just("%{HTTP:X}".to_string()),
        Just("%{HTTP_HOST".to_string()),
        Just("$1".to_string()),
        Just("%1".to_string()),
        Just("[P,L,R=301,QSA,E=A:$1]".to_string()),
        Just("[NC,OR]".to_string()),
        Just("Redirect".to_string()),
        Just("RedirectMatch".to_string()),
        Just("ErrorDocument".to_string()),
        Just("SetEnv".to_string()),
        Just("proxy-nokeepalive".to_string()),
        Just("RequestReadTimeout".to_string()),
        Just("header=20-40,MinRate=500".to_string()),
        Just("body=0".to_string()),
        Just("SSLVerifyClient".to_string()),
        Just("<IfVersion >= 2.4>".to_string()),
        Just("</IfVersion>".to_string()),
        Just("<IfFile x>".to_string()),
        Just("</IfFile>".to_string()),
        Just("ProxyVia".to_string()),
        Just("ajp://h:8009".to_string()),
        Just("LoadModule".to_string()),
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

    /// The AJP13 reader takes whatever a member sends (bytes from the network) without
    /// panicking: a packet, a need for more bytes, or an error.
    #[test]
    fn ajp_packets_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), ab in any::<bool>()) {
        let mut buf = bytes::BytesMut::new();
        if ab {
            buf.extend_from_slice(b"AB");
        }
        buf.extend_from_slice(&bytes);
        for _ in 0..64 {
            match balancerd::upstream::ajp::take_packet(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.conf");
        std::fs::write(&p, &bytes).unwrap();
        let _ = config::load(&p, &LoadOptions::default());
    }
}
