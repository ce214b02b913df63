//! Percentiles and min/median/max summaries.

use serde::{Deserialize, Serialize};

/// The `p`-th percentile (0–100) of `sorted` (ascending), interpolating linearly between the
/// two closest ranks (the usual "R-7" definition: p0 is the minimum, p100 the maximum, p50 the
/// median). `None` for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Sorts a copy of `samples` ascending (NaNs last).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Minimum, median and maximum of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let s = sorted(samples);
        Some(Summary {
            n: s.len(),
            min: *s.first()?,
            median: percentile(&s, 50.0)?,
            max: *s.last()?,
        })
    }
}

/// Latency percentiles of one batch of timed operations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latencies {
    pub fn of(samples: &[f64]) -> Option<Latencies> {
        let s = sorted(samples);
        Some(Latencies {
            n: s.len(),
            p50: percentile(&s, 50.0)?,
            p90: percentile(&s, 90.0)?,
            p99: percentile(&s, 99.0)?,
            max: *s.last()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 0.0), Some(1.0));
        assert_eq!(percentile(&s, 100.0), Some(4.0));
        assert_eq!(percentile(&s, 50.0), Some(2.5));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // 1..=100: p90 sits between the 90th and 91st values.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&hundred, 90.0).unwrap() - 90.1).abs() < 1e-9);
        assert!((percentile(&hundred, 99.0).unwrap() - 99.01).abs() < 1e-9);
    }

    #[test]
    fn summaries_ignore_sample_order() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(
            s,
            Summary {
                n: 3,
                min: 1.0,
                median: 3.0,
                max: 5.0
            }
        );
        assert_eq!(Summary::of(&[]), None);
        let l = Latencies::of(&[0.3, 0.1, 0.2]).unwrap();
        assert_eq!((l.n, l.p50, l.max), (3, 0.2, 0.3));
        assert!(l.p90 > l.p50 && l.p99 <= l.max);
    }
}
