//! A member's response head and body decoders on arbitrary bytes (chunked, length and
//! close-delimited bodies): never a panic, whatever the member sends.
#![no_main]
use balancerd::h1::body::{BodyDecoder, Step};
use balancerd::h1::framing::BodyFraming;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    let framing = match balancerd::h1::head::parse_response(&mut buf, false) {
        Ok(Some(h)) => h.framing,
        _ => match data.first().map(|b| b % 3) {
            Some(0) => BodyFraming::Chunked,
            Some(1) => BodyFraming::Length(data.len() as u64 / 2),
            _ => BodyFraming::UntilClose,
        },
    };
    let mut d = BodyDecoder::new(framing);
    for _ in 0..10_000 {
        match d.decode(&mut buf) {
            Ok(Step::Data(_)) => {}
            Ok(Step::End) | Ok(Step::NeedMore) | Err(_) => break,
        }
    }
});
