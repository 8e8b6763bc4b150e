//! The adaptive concurrency limit as the metrics see it: the current limit (a gauge) and the
//! calls it shed (a counter).
//!
//! A provider with `[server.adaptive_limit]` holds a [`LimitGauge`] and sets it once per
//! sampling window, never per call. The metrics keep the sum of the live gauges (one per such
//! provider; a process usually has one) and how many there are, so a provider that stops
//! takes its limit out with it, and `/metrics` shows no limit when no provider has one.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The process's adaptive limits.
#[derive(Debug, Default)]
pub(super) struct AdaptiveLimits {
    /// Providers with an adaptive limit.
    limiters: AtomicI64,
    /// The sum of their current limits.
    limit: AtomicI64,
    /// Calls they refused.
    shed: AtomicU64,
}

impl AdaptiveLimits {
    /// The sum of the current limits, if any provider has one.
    pub(super) fn limit(&self) -> Option<u64> {
        (self.limiters.load(Ordering::Relaxed) > 0)
            .then(|| self.limit.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Calls shed so far.
    pub(super) fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

/// One provider's adaptive limit in the metrics, from its start until it is dropped.
#[derive(Debug)]
pub struct LimitGauge {
    limits: Arc<AdaptiveLimits>,
    /// What this provider added to the sum.
    current: AtomicI64,
}

impl LimitGauge {
    pub(super) fn new(limits: Arc<AdaptiveLimits>, initial: usize) -> LimitGauge {
        let initial = i64::try_from(initial).unwrap_or(i64::MAX);
        limits.limiters.fetch_add(1, Ordering::Relaxed);
        limits.limit.fetch_add(initial, Ordering::Relaxed);
        LimitGauge {
            limits,
            current: AtomicI64::new(initial),
        }
    }

    /// The provider's limit is now `limit`.
    pub fn set(&self, limit: usize) {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = self.current.swap(limit, Ordering::Relaxed);
        self.limits
            .limit
            .fetch_add(limit.wrapping_sub(before), Ordering::Relaxed);
    }

    /// Counts a call the provider shed.
    pub fn shed(&self) {
        self.limits.shed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for LimitGauge {
    fn drop(&mut self) {
        let current = self.current.load(Ordering::Relaxed);
        self.limits.limit.fetch_sub(current, Ordering::Relaxed);
        self.limits.limiters.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_live_limits_and_forgets_a_stopped_one() {
        let limits = Arc::new(AdaptiveLimits::default());
        assert_eq!(limits.limit(), None, "no provider has one");
        let a = LimitGauge::new(limits.clone(), 32);
        let b = LimitGauge::new(limits.clone(), 10);
        a.set(12);
        a.shed();
        b.shed();
        assert_eq!(limits.limit(), Some(22));
        drop(a);
        assert_eq!(limits.limit(), Some(10));
        drop(b);
        assert_eq!(limits.limit(), None);
        assert_eq!(limits.shed(), 2, "the count outlives the providers");
    }
}
