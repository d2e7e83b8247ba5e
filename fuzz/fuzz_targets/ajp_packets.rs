//! The AJP13 reader on whatever an `ajp://` member sends: a packet, a need for more bytes,
//! or an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    for _ in 0..1000 {
        match balancerd::upstream::ajp::take_packet(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
