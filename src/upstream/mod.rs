//! Connections to members: the HTTP/1.1 exchange ([`h1`]), a per-member keep-alive pool,
//! TCP/TLS connect with timeouts, and the body types that stream between client and member.

pub mod body;
pub mod connect;
pub mod error;
pub mod exchange;
pub mod peer;
pub mod pool;

pub use body::UpBody;
