//! Network plumbing below HTTP: socket reads and writes, TLS, socket options, zero-copy
//! forwarding.
//!
//! Layer 2. Owns: socket reads into buffers ([`read`]), `sendmsg` writes ([`send`]),
//! splice(2) runs ([`splice`]), TLS primitives from paths and settings ([`tls`]: no config
//! model), socket options ([`tuning`]).
//!
//! May import: `util`, `telemetry`.

pub mod read;
pub mod send;
pub mod splice;
pub mod tls;
pub mod tuning;
