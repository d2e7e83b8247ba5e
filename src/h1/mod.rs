//! Layer 4, `h1`: the one HTTP/1.1 codec, used by the client side (`server::h1`) and the
//! member side (`upstream::exchange`).
//!
//! Owns: request heads and their framing ([`head`], [`framing`]), fields kept as received
//! with a role each ([`fields`]), chunked coding and `Content-Length` values ([`chunked`]),
//! bodies ([`body`], [`request_body`]), the `Host` rules ([`host`]), interim answers queued
//! for a client ([`interim`]) and the head writer ([`writer::HeadWriter`]).
//!
//! May import: `util`, `telemetry`, `net`, `config`.

pub mod body;
pub mod chunked;
pub mod fields;
pub mod framing;
pub mod head;
pub mod host;
pub mod interim;
pub mod request_body;
pub mod writer;
