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
