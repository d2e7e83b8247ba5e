//! Connections to members: the HTTP/1.1 exchange ([`exchange`]), a per-member keep-alive pool,
//! TCP/TLS connect with timeouts, and the body types that stream between client and member.
//!
//! Layer 6. Owns: the peer ([`peer::Peer`]: a member endpoint's pool and traffic counters),
//! connecting ([`connect`]), the member exchange ([`exchange`]), the bodies between client and
//! member ([`body`]), and the typed failure of a forwarding attempt with its decision
//! ([`error::ProxyError`]). Knows nothing of balancers or health: a peer is what a member
//! lends the upstream layer.
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`.

pub mod ajp;
pub mod body;
pub mod connect;
pub mod error;
pub mod exchange;
pub mod peer;
pub mod pool;

pub use body::UpBody;
