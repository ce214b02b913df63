//! The one reconnect backoff: the node host's reconnects, the SSH tunnel's restarts.

use rand_core::RngCore as _;
use std::time::Duration;

/// Exponential backoff with jitter: `base`, doubling to `max`, each delay stretched by up to
/// 20 % (never past `max`), so that many clients cut off at once do not come back in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            attempt: 0,
            base,
            max,
        }
    }

    /// The next delay: `base`, 2 × `base`, 4 × `base`, … up to `max`, with jitter.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = f64::from(rand_core::OsRng.next_u32() % 201) / 1000.0;
        exp.mul_f64(1.0 + jitter).min(self.max)
    }

    /// Starts again from `base` (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_starts_over_after_a_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        for base in bases {
            let base = Duration::from_secs(base);
            let d = b.next_delay();
            assert!(
                d >= base && d <= base.mul_f64(1.2).min(Duration::from_secs(30)),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
