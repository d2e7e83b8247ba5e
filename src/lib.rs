//! balancerd: a native replacement for Apache httpd's mod_proxy_balancer, for multi-tenant
//! contact-centre recording deployments.
//!
//! Two flows run through the crate:
//!
//! ```text
//! config:  files ──config::load──▶ Config (validated model) ──runtime::Snapshot──▶ ArcSwap
//!                  (httpd dialect or TOML; same code for `check` and reload)
//!
//! request: server ─▶ proxy::handler ─▶ route ─▶ balancer (sticky, lbmethod)
//!                                                   │
//!          client ◀── response filters ◀── upstream (peer, pool, exchange) ◀──┘
//! ```
//!
//! # Layers
//!
//! The modules are layers. Each imports only from the layers listed before it, so there is
//! no import cycle between them; `tests/layering.rs` reads every `crate::` path in `src/`
//! and fails on one that breaks the rule. Where a lower layer needs something of a higher
//! one, it declares a trait and the higher layer implements it (the access log's
//! `LogVars`, the member exchange's `SpliceSource`).
//!
//! ```text
//!  0 util       recycling, clocks, HTML escaping
//!  1 telemetry  counters, histogram buckets, LogFormat and the log writer
//!  2 net        sockets, TLS primitives, splice, socket options
//!  3 config     source text (httpd dialect, TOML) -> one validated model; diagnostics
//!  4 h1         the HTTP/1.1 codec: fields by role, framing, chunked, head writer
//!  5 route      ProxyPass matching, normalisation, canonical re-encoding
//!  6 upstream   peer (pool + counters), connect, the member exchange, bodies, the error type
//!  7 balancer   member spec + peer + health state, lbmethods, sticky routes
//!  8 runtime    snapshot + build (member state carried by key), health-check scheduler, TLS configs
//!  9 admin      server-status, metrics
//! 10 proxy      the handler (phases), access, Header rules, rewriting, error pages, tunnels
//! 11 server     accept, TLS handshake, the HTTP/1.1 server, the HTTP/2 server (h2 crate)
//! 12 app        start-up, signals, reload, pid file, drain; the command line; the demo
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod util;

pub mod telemetry;

pub mod net;

pub mod config;

pub mod h1;

pub mod route;

pub mod upstream;

pub mod balancer;

pub mod runtime;

pub mod admin;

pub mod proxy;

pub mod server;

pub mod app;
