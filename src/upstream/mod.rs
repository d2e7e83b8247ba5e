//! Connections to members: a per-member keep-alive pool on hyper's client connection API,
//! TCP connect with timeouts, and the body types that stream between client and member.

pub mod body;
pub mod connect;
pub mod health;
pub mod pool;

pub use body::UpBody;
