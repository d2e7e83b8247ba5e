//! Operations: access rules for admin pages and locations, process-wide counters, the
//! `/server-status` page and the Prometheus metrics page.

pub mod access;
pub mod access_log;
pub mod metrics;
pub mod stats;
pub mod status;

/// A UTC wall-clock time split into (year, month 1-12, day 1-31, hour, minute, second),
/// for the status page and the access log (no date crate needed for these two formats).
pub fn utc_parts(t: std::time::SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let s = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((s / 86400) as i64, s % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32, rem / 3600, rem % 3600 / 60, rem % 60)
}
