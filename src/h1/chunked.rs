//! HTTP/1.1 chunked transfer coding and `Content-Length` values, shared by the client side
//! (request bodies) and the member side (response bodies): an incremental decoder that
//! yields data as it arrives, whatever the read boundaries, with limits on chunk-size lines
//! and trailers.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// The chunk-size line for a chunk of `n` bytes (`1a2b\r\n`), written into `buf`.
pub fn chunk_size_line(n: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 16;
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = HEX[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[i..]
}

/// A `Content-Length` value: digits only, no sign, no list, fits in 63 bits.
pub fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |a, d| {
        a.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy)]
pub enum Chunk {
    /// In a chunk-size line: the size so far, digits seen, in an extension, bytes of the line.
    Size {
        size: u64,
        digits: u8,
        ext: bool,
        line: usize,
    },
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After chunk data: the CRLF.
    DataEnd { cr: bool },
    /// In the trailer section: bytes of the current line, bytes of all trailers.
    Trailer { line: usize, total: usize },
}

impl Chunk {
    pub fn start() -> Self {
        Chunk::Size {
            size: 0,
            digits: 0,
            ext: false,
            line: 0,
        }
    }
}

/// What the chunked decoder found in the buffer.
pub enum Decoded {
    /// Chunk data.
    Data(Bytes),
    /// The last chunk and the trailers were read.
    End,
    /// The buffer is used up.
    NeedMore,
}

/// Decodes from the front of `buf` until it yields data, reaches the end or runs dry.
pub fn decode_chunked(st: &mut Chunk, buf: &mut BytesMut) -> Result<Decoded, String> {
    loop {
        if buf.is_empty() {
            return Ok(Decoded::NeedMore);
        }
        match st {
            Chunk::Data(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    *st = Chunk::DataEnd { cr: false };
                }
                return Ok(Decoded::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataEnd { cr } => {
                let b = buf[0];
                buf.advance(1);
                match (b, *cr) {
                    (b'\r', false) => *cr = true,
                    (b'\n', true) => *st = Chunk::start(),
                    _ => return Err("invalid chunked body".into()),
                }
            }
            Chunk::Size {
                size,
                digits,
                ext,
                line,
            } => {
                let b = buf[0];
                buf.advance(1);
                *line += 1;
                if *line > MAX_CHUNK_LINE {
                    return Err("chunk-size line too long".into());
                }
                if b == b'\n' {
                    if *digits == 0 {
                        return Err("invalid chunk size".into());
                    }
                    *st = if *size == 0 {
                        Chunk::Trailer { line: 0, total: 0 }
                    } else {
                        Chunk::Data(*size)
                    };
                } else if *ext || b == b'\r' {
                    // Extensions are ignored; CR waits for its LF.
                } else if b == b';' || b == b' ' || b == b'\t' {
                    *ext = true;
                } else {
                    let d = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        b'A'..=b'F' => b - b'A' + 10,
                        _ => return Err("invalid chunk size".into()),
                    };
                    *digits += 1;
                    if *digits > 15 {
                        return Err("chunk size too large".into());
                    }
                    *size = *size * 16 + u64::from(d);
                }
            }
            Chunk::Trailer { line, total } => {
                let b = buf[0];
                buf.advance(1);
                *total += 1;
                if *total > MAX_TRAILERS {
                    return Err("trailers too large".into());
                }
                if b == b'\n' {
                    if *line == 0 {
                        return Ok(Decoded::End);
                    }
                    *line = 0;
                } else if b != b'\r' {
                    *line += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<Vec<u8>, String> {
        let mut st = Chunk::start();
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decode_chunked(&mut st, &mut buf)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::End => return Ok(out),
                    Decoded::NeedMore => break,
                }
            }
        }
        Err("incomplete".into())
    }

    #[test]
    fn chunked_decodes_whatever_the_read_boundaries() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 1..body.len() {
            assert_eq!(
                decode_all(body, split).unwrap(),
                b"helloabcdefghijklmnopqrstuvwxyz",
                "split {split}"
            );
        }
    }

    #[test]
    fn chunked_refuses_garbage() {
        assert!(decode_all(b"zz\r\n", 4).is_err());
        assert!(decode_all(b"\r\n", 4).is_err());
        assert!(decode_all(b"1\r\nab\r\n", 8).is_err());
        assert!(decode_all(b"ffffffffffffffffff\r\n", 32).is_err());
    }

    #[test]
    fn chunk_size_lines() {
        let mut hex = [0u8; 18];
        assert_eq!(chunk_size_line(0x1a2b, &mut hex), b"1a2b\r\n");
        assert_eq!(chunk_size_line(0, &mut hex), b"0\r\n");
    }
}
