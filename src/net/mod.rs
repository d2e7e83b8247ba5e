//! Network plumbing below HTTP: request framing checks, TLS, socket options, zero-copy
//! forwarding, cheap clocks.

pub mod read;
pub mod send;
pub mod splice;
pub mod tls;
pub mod tuning;
