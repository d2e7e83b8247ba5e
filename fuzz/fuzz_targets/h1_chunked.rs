//! The chunked decoder (request bodies from clients, response bodies from members) on
//! arbitrary bytes, split at points the input chooses: never a panic; never more data out
//! than bytes in; and the same data and the same verdict however the bytes were split
//! (a body arriving in pieces decodes as it does whole).
#![no_main]
use balancerd::h1::body::{BodyDecoder, Step};
use balancerd::h1::framing::BodyFraming;
use libfuzzer_sys::fuzz_target;

/// Decodes `data` fed in the pieces `cuts` marks; returns the data and how it ended.
fn decode(data: &[u8], cuts: &[usize]) -> (Vec<u8>, &'static str) {
    let mut d = BodyDecoder::new(BodyFraming::Chunked);
    let mut buf = bytes::BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..cut]);
        fed = cut;
        loop {
            match d.decode(&mut buf) {
                Ok(Step::Data(b)) => out.extend_from_slice(&b),
                Ok(Step::End) => return (out, "end"),
                Ok(Step::NeedMore) => break,
                Err(_) => return (out, "error"),
            }
        }
    }
    (out, "incomplete")
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, data)) = input.split_first() else {
        return;
    };
    // Up to 8 cut points from the first bytes of the data itself.
    let cuts: Vec<usize> = data
        .iter()
        .take((n % 8) as usize)
        .scan(0usize, |at, b| {
            *at += *b as usize % 16 + 1;
            Some(*at)
        })
        .collect();
    let (whole, how) = decode(data, &[]);
    assert!(whole.len() <= data.len());
    let (split, how_split) = decode(data, &cuts);
    assert_eq!(how, how_split, "{cuts:?}");
    assert_eq!(whole, split, "{cuts:?}");
});
