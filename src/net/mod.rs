//! Network plumbing below HTTP: socket reads and writes, TLS, socket options, zero-copy
//! forwarding.
//!
//! Layer 2. Owns: a client connection's read and write sides, plain or TLS ([`client_io`]),
//! socket reads into buffers ([`read`]), `sendmsg` writes ([`send`]),
//! splice(2) runs ([`splice`]), TLS primitives from paths and settings ([`tls`]: no config
//! model), socket options ([`tuning`]).
//!
//! May import: `util`, `telemetry`.

pub mod client_io;
pub mod read;
pub mod send;
pub mod splice;
pub mod tls;
pub mod tuning;
