//! Network plumbing below HTTP: request framing checks, TLS, socket options, zero-copy
//! forwarding.

pub mod framing;
pub mod read;
pub mod splice;
pub mod tls;
pub mod tuning;
