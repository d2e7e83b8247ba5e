//! Layer 10, `proxy`: one request, phase by phase ([`handler`]), and what the phases use:
//! access rules ([`access`]), `BALANCER_*` variables and `Header` rules ([`env`]), response
//! rewriting ([`rewrite`]), the balancer's own error pages ([`error_page`]) and the tunnel
//! after `101 Switching Protocols` ([`tunnel`]).
//!
//! The servers above hand each request to [`handler::handle`]; nothing here knows which server
//! (HTTP/1.1 or HTTP/2) carried it.
//!
//! May import: every layer below it (`util` … `admin`).

pub mod access;
mod builtin;
mod check;
mod choose;
pub mod env;
mod error_document;
pub mod error_page;
pub mod explain;
mod forward;
pub mod forward_headers;
pub mod handler;
mod redirect;
mod respond;
pub mod rewrite;
mod rewrite_engine;
mod routing;
pub mod tunnel;
