//! Layer 9, `admin`: the pages admins and their tools read: `/server-status` (httpd's
//! format, for people and for Pacemaker's `apache` agent) and the Prometheus metrics page.
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`, `balancer`,
//! `runtime`.

pub mod metrics;
pub mod status;
