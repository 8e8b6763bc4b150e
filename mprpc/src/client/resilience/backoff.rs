//! The wait before a retry: exponential from `initial_backoff`, capped at `max_backoff`,
//! with "equal jitter" (half the step fixed, half random), so that the callers a provider's
//! failure hit all at once do not come back all at once, and none comes back at once.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

/// The wait before retry number `retry` (1 for the first).
pub(crate) fn delay(config: &RetryConfig, retry: u32) -> Duration {
    let step = config
        .initial_backoff
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
        .min(config.max_backoff);
    let half = step / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let config = RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(35),
            ..RetryConfig::default()
        };
        for (retry, step) in [(1, 10), (2, 20), (3, 35), (9, 35), (40, 35)] {
            for _ in 0..100 {
                let d = delay(&config, retry);
                let step = Duration::from_millis(step);
                assert!(d >= step / 2 && d <= step, "retry {retry}: {d:?}");
            }
        }
    }
}
