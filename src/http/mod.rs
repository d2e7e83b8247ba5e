//! The HTTP side: serving client connections with hyper, the request handler, and the
//! header, rewrite and error-page helpers it uses.

pub mod chunked;
pub mod env;
pub mod h1;
pub mod handler;
pub mod headers;
pub mod rewrite;
pub mod server;
pub mod synth;
pub mod upgrade;
