//! Layer 9, `admin`: the pages admins and their tools read: `/server-status` (httpd's
//! format, for people and for Pacemaker's `apache` agent), the Prometheus metrics page, and
//! the balancer-manager ([`manager`]), through which they change balancers at run time.
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route`, `upstream`, `balancer`,
//! `runtime`.

pub mod manager;
pub mod metrics;
pub mod probe;
pub mod status;
