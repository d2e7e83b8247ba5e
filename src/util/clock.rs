//! Cheap clocks for timestamps that need milliseconds, not nanoseconds.
//!
//! Idle connections in the pool, the keep-alive deadline between requests and the `Date`
//! header read the kernel's coarse clocks (`CLOCK_MONOTONIC_COARSE`, `CLOCK_REALTIME_COARSE`):
//! the time of the last timer tick, a few milliseconds old at most, read from the vDSO
//! without touching the TSC. A proxied request used to read the precise clock eight times;
//! durations that are reported (latency, `%D`) still use `Instant`.

/// Milliseconds on the coarse monotonic clock (any origin; only differences matter).
pub fn coarse_ms() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE).as_millis() as u64
}

/// Seconds since the Unix epoch on the coarse real-time clock.
pub fn coarse_unix_secs() -> u64 {
    read(libc::CLOCK_REALTIME_COARSE).as_secs()
}

fn read(clock: libc::clockid_t) -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clocks_follow_the_precise_ones() {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        assert!(coarse_unix_secs().abs_diff(wall) <= 1);
        let a = coarse_ms();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = coarse_ms();
        assert!((40..1000).contains(&(b - a)), "{a} -> {b}");
    }
}
