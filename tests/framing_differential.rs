//! Differential framing check: generated request heads, balancerd's framing verdict
//! (`h1::head::parse_request`: a length, chunked, or a 400) against an independent reading
//! of the same bytes: httparse's parse, then RFC 9112 §6.3's rules written out here from the
//! RFC's text. Where the RFC lets a server choose and balancerd takes the stricter choice,
//! the rule says so and cites the section.

use balancerd::h1::framing::BodyFraming;
use balancerd::h1::head::parse_request;
use proptest::prelude::*;

/// What the RFC says of a request's body framing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Length(u64),
    Chunked,
    /// The request must be refused (400, or close).
    Reject(&'static str),
}

/// RFC 9112 §6.3 (and §3.2 for `Host`) over httparse's reading of the head.
fn rfc_verdict(head: &[u8]) -> Option<Verdict> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Request::new(&mut headers);
    match r.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return None,
        // httparse refuses it: not a well-formed message at all (RFC 9112 §2.2, §5).
        Err(_) => return Some(Verdict::Reject("malformed")),
    }
    let http10 = r.version == Some(0);
    let mut cl: Vec<&[u8]> = Vec::new();
    let mut te: Vec<&[u8]> = Vec::new();
    let mut hosts = 0;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            cl.push(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te.push(h.value);
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    // §3.2: an HTTP/1.1 request without Host, or any request with more than one, is a 400.
    if (hosts == 0 && !http10) || hosts > 1 {
        return Some(Verdict::Reject("host"));
    }
    if !te.is_empty() {
        // §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
        if http10 {
            return Some(Verdict::Reject("te in 1.0"));
        }
        // §6.3 item 3: with Content-Length too, it "ought to be handled as an error"; a
        // server may instead let Transfer-Encoding win. balancerd refuses (smuggling).
        if !cl.is_empty() {
            return Some(Verdict::Reject("te and cl"));
        }
        // §6.3 item 4: chunked must be the final coding, else 400.
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
            .collect();
        if codings.last().map(String::as_str) != Some("chunked") {
            return Some(Verdict::Reject("chunked not final"));
        }
        // Other codings before chunked (`gzip, chunked`) are valid HTTP; a proxy that does
        // not decode them answers 501 (§6.1). balancerd answers 400 and decodes none: a
        // coding it cannot check is a framing it cannot vouch for. Stricter.
        if codings.len() > 1 {
            return Some(Verdict::Reject("other codings"));
        }
        return Some(Verdict::Chunked);
    }
    if !cl.is_empty() {
        // §6.3 item 5: a list of identical valid values may be taken as one value, or the
        // message rejected; balancerd rejects (several Content-Length lines or a list are
        // the first step of most smuggling attacks). Stricter.
        if cl.len() > 1 || cl[0].contains(&b',') {
            return Some(Verdict::Reject("several lengths"));
        }
        // §8.6: Content-Length = 1*DIGIT (surrounding whitespace is the field's, not the
        // value's).
        let v = cl[0].trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Some(Verdict::Reject("invalid length"));
        }
        return Some(match std::str::from_utf8(v).ok()?.parse::<u64>() {
            Ok(n) => Verdict::Length(n),
            // Too large to hold: §6.3 item 5 (an invalid value) for any real server.
            Err(_) => Verdict::Reject("length overflows"),
        });
    }
    // §6.3 item 6: a request without either has no body.
    Some(Verdict::Length(0))
}

fn ours(head: &[u8]) -> Option<Verdict> {
    let mut buf = bytes::BytesMut::from(head);
    match parse_request(&mut buf, 101) {
        Ok(Some(p)) => Some(match p.framing {
            BodyFraming::None => Verdict::Length(0),
            BodyFraming::Length(n) => Verdict::Length(n),
            BodyFraming::Chunked => Verdict::Chunked,
            BodyFraming::UntilClose => panic!("a request is never close-delimited"),
        }),
        Ok(None) => None,
        Err(_) => Some(Verdict::Reject("balancerd")),
    }
}

fn framing_field() -> impl Strategy<Value = String> {
    let cl_value = prop_oneof![
        Just("0".to_string()),
        Just("5".to_string()),
        Just("005".to_string()),
        Just(" 5 ".to_string()),
        Just("+5".to_string()),
        Just("-5".to_string()),
        Just("5, 5".to_string()),
        Just("5,6".to_string()),
        Just("0x5".to_string()),
        Just("".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
    ];
    let te_value = prop_oneof![
        Just("chunked".to_string()),
        Just("Chunked".to_string()),
        Just(" chunked ".to_string()),
        Just("gzip, chunked".to_string()),
        Just("chunked, gzip".to_string()),
        Just("chunked, chunked".to_string()),
        Just("identity".to_string()),
        Just("".to_string()),
        Just("chunked;q=1".to_string()),
    ];
    let cl_name = prop_oneof![
        Just("Content-Length"),
        Just("content-length"),
        Just("CONTENT-LENGTH")
    ];
    let te_name = prop_oneof![Just("Transfer-Encoding"), Just("transfer-encoding")];
    prop_oneof![
        (cl_name, cl_value).prop_map(|(n, v)| format!("{n}: {v}")),
        (te_name, te_value).prop_map(|(n, v)| format!("{n}: {v}")),
        Just("Host: a.example".to_string()),
        Just("Host: b.example:8080".to_string()),
        Just("X-Other: 1".to_string()),
        Just("Content-Length : 5".to_string()),
        Just(" Content-Length: 5".to_string()),
        Just("Transfer-Encoding:\tchunked".to_string()),
        Just("Content-Length: 5\r\n 6".to_string()),
    ]
}

fn request_head() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0")],
        prop::collection::vec(framing_field(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(m, v, fields, host_first)| {
            let mut s = format!("{m} /t1/api/x {v}\r\n");
            if host_first {
                s.push_str("Host: lb.example\r\n");
            }
            for f in fields {
                s.push_str(&f);
                s.push_str("\r\n");
            }
            s.push_str("\r\n");
            s.into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// balancerd's verdict is the RFC's (as httparse reads the bytes), with the stricter
    /// choices documented in `rfc_verdict`.
    #[test]
    fn framing_verdict_matches_rfc_9112(head in request_head()) {
        let rfc = rfc_verdict(&head);
        let got = ours(&head);
        match (&rfc, &got) {
            (Some(Verdict::Reject(_)), Some(Verdict::Reject(_))) => {}
            _ => prop_assert_eq!(rfc, got, "{}", String::from_utf8_lossy(&head)),
        }
    }
}

/// The cases the RFC names, one by one (the generator covers their combinations).
#[test]
fn the_rfc_cases() {
    let cases: &[(&str, Verdict)] = &[
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            Verdict::Length(5),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            Verdict::Chunked,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Verdict::Length(0)),
        ("GET / HTTP/1.0\r\n\r\n", Verdict::Length(0)),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Verdict::Reject("te and cl"),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Verdict::Reject("chunked not final"),
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Verdict::Reject("te in 1.0"),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            Verdict::Reject("several lengths"),
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            Verdict::Reject("host"),
        ),
    ];
    for (head, want) in cases {
        assert_eq!(rfc_verdict(head.as_bytes()).as_ref(), Some(want), "{head}");
        let got = ours(head.as_bytes());
        match want {
            Verdict::Reject(_) => {
                assert!(matches!(got, Some(Verdict::Reject(_))), "{head}: {got:?}")
            }
            w => assert_eq!(got.as_ref(), Some(w), "{head}"),
        }
    }
}
