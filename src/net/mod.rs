//! Client-side network plumbing below HTTP.

pub mod framing;
pub mod tls;
