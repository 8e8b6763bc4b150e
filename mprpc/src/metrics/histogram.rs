//! A fixed-bucket latency histogram, lock-free to record, in the shape Prometheus expects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (a last `+Inf` bucket is implied).
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Call latencies, counted per bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One counter per bucket plus `+Inf`; not cumulative.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = BUCKETS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            count: counts.iter().sum(),
            counts,
            sum: Duration::from_micros(self.sum_us.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket of [`BUCKETS_US`], then `+Inf`; not cumulative.
    pub counts: Vec<u64>,
    /// Observations in all.
    pub count: u64,
    /// Sum of all observations.
    pub sum: Duration,
}

impl HistogramSnapshot {
    /// The `q` quantile (0 to 1), interpolated inside its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).max(1.0);
        let mut seen = 0u64;
        for (i, n) in self.counts.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let low = if i == 0 { 0 } else { BUCKETS_US[i - 1] };
                let high = BUCKETS_US.get(i).copied().unwrap_or(low * 2);
                let within = (rank - seen as f64) / *n as f64;
                let us = low as f64 + within * (high - low) as f64;
                return Some(Duration::from_micros(us as u64));
            }
            seen += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(Duration::from_micros(80)); // (50, 100]
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(20)); // (10 ms, 25 ms]
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.counts[1], 90);
        let p50 = s.quantile(0.5).unwrap();
        assert!(
            p50 > Duration::from_micros(50) && p50 <= Duration::from_micros(100),
            "{p50:?}"
        );
        let p99 = s.quantile(0.99).unwrap();
        assert!(
            p99 > Duration::from_millis(10) && p99 <= Duration::from_millis(25),
            "{p99:?}"
        );
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}
