//! Read deadlines that move with the data, as mod_reqtimeout's `MinRate` does: a stage
//! (request head or body) has `initial` time from its first read; every byte received
//! pushes the deadline later by `1 / min_rate` seconds, never past `max` from the start.

use std::time::Duration;
use tokio::time::Instant;

/// One stage's limits (`header=20-40,MinRate=500` is initial 20 s, max 40 s, 500 bytes/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStage {
    /// Time allowed from the stage's first read.
    pub initial: Duration,
    /// Upper bound on the extended deadline, from the stage's first read.
    pub max: Option<Duration>,
    /// Bytes per second that each extend the deadline by `1/min_rate` s; 0 = no extension.
    pub min_rate: u32,
}

/// A running stage's deadline.
#[derive(Debug, Clone, Copy)]
pub struct RateDeadline {
    at: Instant,
    max_at: Option<Instant>,
    /// Nanoseconds each received byte adds.
    per_byte_ns: u64,
}

impl RateDeadline {
    /// The deadline of `stage` started at `now`.
    pub fn start(stage: ReadStage, now: Instant) -> Self {
        RateDeadline {
            at: now + stage.initial,
            max_at: stage.max.map(|m| now + m),
            per_byte_ns: match stage.min_rate {
                0 => 0,
                r => 1_000_000_000 / u64::from(r),
            },
        }
    }

    /// `n` bytes arrived: the deadline moves later (up to the stage's maximum).
    pub fn on_bytes(&mut self, n: usize) {
        if self.per_byte_ns == 0 || n == 0 {
            return;
        }
        let add = Duration::from_nanos(self.per_byte_ns.saturating_mul(n as u64));
        let next = self.at + add;
        self.at = match self.max_at {
            Some(m) if next > m => m,
            _ => next,
        };
    }

    /// When the stage times out.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// True once `now` is at or past the deadline.
    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_extend_up_to_the_maximum() {
        let t0 = Instant::now();
        let stage = ReadStage {
            initial: Duration::from_secs(20),
            max: Some(Duration::from_secs(40)),
            min_rate: 500,
        };
        let mut d = RateDeadline::start(stage, t0);
        assert_eq!(d.at(), t0 + Duration::from_secs(20));
        d.on_bytes(500);
        assert_eq!(d.at(), t0 + Duration::from_secs(21));
        d.on_bytes(1_000_000);
        assert_eq!(d.at(), t0 + Duration::from_secs(40));
        let fixed = RateDeadline::start(
            ReadStage {
                initial: Duration::from_secs(10),
                max: None,
                min_rate: 0,
            },
            t0,
        );
        assert!(!fixed.passed(t0 + Duration::from_secs(9)));
        assert!(fixed.passed(t0 + Duration::from_secs(10)));
    }
}
