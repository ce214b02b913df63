//! The retry delays of Bot API calls and of the poll loop: 400 ms doubling to 30 s, each
//! stretched by up to 10 % (OpenClaw's Telegram retry policy).
//!
//! The reconnect `Backoff` of `clawgate-client` has another shape (20 % jitter, other
//! bounds) and lives in a crate this one must not depend on; this one is a few lines.

use rand::Rng as _;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            attempt: 0,
            base,
            max,
        }
    }

    /// OpenClaw's Telegram policy: 400 ms to 30 s.
    pub(crate) fn telegram() -> Self {
        Backoff::new(Duration::from_millis(400), Duration::from_secs(30))
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = rand::rng().random_range(0.0..=0.1);
        exp.mul_f64(1.0 + jitter).min(self.max)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over() {
        let mut b = Backoff::telegram();
        for base_ms in [400u64, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000] {
            let base = Duration::from_millis(base_ms);
            let d = b.next_delay();
            assert!(
                d >= base && d <= base.mul_f64(1.1).min(Duration::from_secs(30)),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(440));
    }
}
