//! The plain server's request-head parser on arbitrary bytes: a head, a need for more, or a
//! refusal; never a panic. Split at every point the input gives (a head arriving in pieces).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize) % (data.len().max(1));
    let mut buf = bytes::BytesMut::from(&data[..split]);
    let _ = balancerd::h1::head::parse_request(&mut buf, 101);
    buf.extend_from_slice(&data[split..]);
    for _ in 0..8 {
        match balancerd::h1::head::parse_request(&mut buf, 101) {
            Ok(Some(_)) => continue,
            _ => break,
        }
    }
});
