//! balancerd: a native replacement for Apache httpd's mod_proxy_balancer, for multi-tenant
//! contact-centre recording deployments.
//!
//! Two flows run through the crate:
//!
//! ```text
//! config:  files ──config::load──▶ Config (validated model) ──runtime::Snapshot──▶ ArcSwap
//!                  (httpd dialect or TOML; same code for `check` and reload)
//!
//! request: http::server ─▶ http::handler ─▶ route ─▶ balancer (sticky, lbmethod)
//!                                                        │
//!          client ◀── response filters ◀── upstream (pool, connect) ◀──┘
//! ```

pub mod app;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod net;
pub mod ops;
pub mod recycle;
pub mod route;
pub mod runtime;
pub mod upstream;
