//! The one body decoder of the HTTP/1.1 codec, for request bodies read from clients and
//! response bodies read from members: it takes the bytes read so far and hands out body
//! data as it is complete, whatever the read boundaries. The reader around it (the plain
//! server's request body, the member exchange's response body) owns the socket and the
//! buffer; the decoder owns only where in the body it is.
//!
//! ```text
//!   Length(n) ──data──▶ Length(n - k) … ──last byte──▶ Done
//!   Chunked   ──data──▶ Chunked       … ──0 CRLF trailers CRLF──▶ Done
//!   UntilClose ─data──▶ UntilClose    … ──the sender closes (see `at_eof`)──▶ Done
//! ```
//!
//! Invariant: once `Done`, the decoder hands out nothing more, and the bytes left in the
//! buffer belong to the next message on the connection.

use super::chunked::{Chunk, Decoded, decode_chunked};
use super::framing::BodyFraming;
use bytes::{Bytes, BytesMut};
use http_body::SizeHint;

/// Where a reader is in one message body.
#[derive(Debug)]
pub enum BodyDecoder {
    /// `n` bytes of a `Content-Length` body left.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// In a body that ends when the sender closes.
    UntilClose,
    /// The body ended.
    Done,
}

/// What [`BodyDecoder::decode`] found in the buffer.
#[derive(Debug)]
pub enum Step {
    /// Body data (check [`BodyDecoder::is_done`]: it may have been the last).
    Data(Bytes),
    /// The body ended (nothing more is read for it).
    End,
    /// More bytes are needed.
    NeedMore,
}

impl BodyDecoder {
    /// The decoder for a body of `framing` (no body and `Content-Length: 0` are `Done`).
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length(n),
            BodyFraming::Chunked => BodyDecoder::Chunked(Chunk::start()),
            BodyFraming::UntilClose => BodyDecoder::UntilClose,
        }
    }

    /// Takes the next body data out of `buf`; an error is a malformed chunked body.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        match self {
            BodyDecoder::Done => Ok(Step::End),
            BodyDecoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                let d = buf.split_to(n).freeze();
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(Step::Data(d))
            }
            BodyDecoder::Chunked(st) => match decode_chunked(st, buf)? {
                Decoded::Data(d) => Ok(Step::Data(d)),
                Decoded::End => {
                    *self = BodyDecoder::Done;
                    Ok(Step::End)
                }
                Decoded::NeedMore => Ok(Step::NeedMore),
            },
            BodyDecoder::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = buf.len();
                Ok(Step::Data(buf.split_to(n).freeze()))
            }
        }
    }

    /// The sender closed: true when that ends the body (a close-delimited one), false when
    /// the body was cut off. Either way nothing more is decoded.
    pub fn at_eof(&mut self) -> bool {
        let ended = matches!(self, BodyDecoder::UntilClose | BodyDecoder::Done);
        *self = BodyDecoder::Done;
        ended
    }

    /// True once the body ended.
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Done)
    }

    /// Ends the body (a spliced run moved the rest, or the reader gave up).
    pub fn finish(&mut self) {
        *self = BodyDecoder::Done;
    }

    /// Bytes of a `Content-Length` body still to come.
    pub fn length_left(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            _ => None,
        }
    }

    /// How much to read next, at most `want`: no more than a `Content-Length` body has
    /// left.
    pub fn read_size(&self, want: usize) -> usize {
        match self {
            BodyDecoder::Length(left) => (*left as usize).min(want),
            _ => want,
        }
    }

    /// For a splice(2) run of a `Content-Length` body of at least `min` bytes left: the bytes
    /// of it already in `buf` (to send first) and how many follow on the socket. The
    /// decoder then counts only those (end the run with [`BodyDecoder::finish`]).
    pub fn take_run(&mut self, buf: &mut BytesMut, min: u64) -> Option<(Bytes, u64)> {
        let BodyDecoder::Length(left) = *self else {
            return None;
        };
        if left < min {
            return None;
        }
        let n = left.min(buf.len() as u64) as usize;
        let buffered = buf.split_to(n).freeze();
        let rest = left - n as u64;
        *self = BodyDecoder::Length(rest);
        Some((buffered, rest))
    }

    /// The exact size left, when known.
    pub fn size_hint(&self) -> SizeHint {
        match self {
            BodyDecoder::Done => SizeHint::with_exact(0),
            BodyDecoder::Length(n) => SizeHint::with_exact(*n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(
        d: &mut BodyDecoder,
        input: &[u8],
        split: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            fed += piece.len();
            loop {
                match d.decode(&mut buf)? {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::End => {
                        // What follows the body stays for the next message.
                        buf.extend_from_slice(&input[fed..]);
                        return Ok((out, buf.to_vec()));
                    }
                    Step::NeedMore => break,
                }
            }
        }
        Ok((out, buf.to_vec()))
    }

    #[test]
    fn length_bodies_stop_at_their_length_whatever_the_reads() {
        for split in [1, 2, 5, 100] {
            let mut d = BodyDecoder::new(BodyFraming::Length(5));
            let (out, rest) = drain(&mut d, b"helloGET / HTTP/1.1", split).unwrap();
            assert_eq!(out, b"hello");
            assert!(d.is_done());
            assert_eq!(rest, b"GET / HTTP/1.1");
        }
    }

    #[test]
    fn chunked_bodies_end_at_the_last_chunk_and_garbage_is_an_error() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        let (out, rest) = drain(&mut d, b"5\r\nhello\r\n0\r\n\r\nNEXT", 3).unwrap();
        assert_eq!(out, b"hello");
        assert!(d.is_done());
        assert_eq!(rest, b"NEXT");
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        assert!(drain(&mut d, b"0x5\r\nhello\r\n0\r\n\r\n", 100).is_err());
    }

    #[test]
    fn close_delimited_bodies_end_only_at_eof() {
        let mut d = BodyDecoder::new(BodyFraming::UntilClose);
        let (out, _) = drain(&mut d, b"abc", 2).unwrap();
        assert_eq!(out, b"abc");
        assert!(!d.is_done());
        assert!(d.at_eof());
        let mut d = BodyDecoder::new(BodyFraming::Length(9));
        assert!(
            !d.at_eof(),
            "a length body cut off by a close is not complete"
        );
        assert!(BodyDecoder::new(BodyFraming::Length(0)).is_done());
        assert!(BodyDecoder::new(BodyFraming::None).is_done());
    }

    #[test]
    fn a_run_takes_the_buffered_part_and_counts_the_rest() {
        let mut d = BodyDecoder::new(BodyFraming::Length(1000));
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert!(d.take_run(&mut buf, 2000).is_none());
        let (first, rest) = d.take_run(&mut buf, 100).unwrap();
        assert_eq!(&first[..], b"0123456789");
        assert_eq!(rest, 990);
        assert_eq!(d.length_left(), Some(990));
    }
}
