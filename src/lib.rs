//! balancerd: a native replacement for Apache httpd's mod_proxy_balancer, for multi-tenant
//! contact-centre recording deployments.
//!
//! Two flows run through the crate:
//!
//! ```text
//! config:  files ──config::load──▶ Config (validated model) ──▶ runtime snapshot (ArcSwap)
//!                  (httpd dialect or TOML; same code for `check` and reload)
//!
//! request: listener ─▶ http server ─▶ route ─▶ balancer (sticky, lbmethod) ─▶ upstream pool
//!                                                                              │
//!          client ◀── response rewriting (ProxyPassReverse, Header rules) ◀────┘
//! ```

pub mod cli;
pub mod config;
