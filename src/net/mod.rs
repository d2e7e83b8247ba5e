//! Network plumbing below HTTP: request framing checks, TLS, socket options.

pub mod framing;
pub mod tls;
pub mod tuning;
