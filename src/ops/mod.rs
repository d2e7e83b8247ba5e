//! Operations: access rules for admin pages and locations, process-wide counters, the
//! `/server-status` page and the Prometheus metrics page.

pub mod access;
pub mod access_log;
pub mod metrics;
pub mod stats;
pub mod status;
