//! What the consumer's resilience does, counted: retries, hedges and calls the retry budget
//! refused, per method; providers ejected for failing, per address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::PoisonError;

use super::{HistogramSnapshot, MethodMetrics, Metrics};

/// A method's resilience counters (consumer side).
#[derive(Debug, Default)]
pub(super) struct MethodResilience {
    retries: AtomicU64,
    hedges: AtomicU64,
    budget_exhausted: AtomicU64,
}

/// A method's resilience counters, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResilienceCounts {
    /// Attempts after the first made because an attempt failed.
    pub retries: u64,
    /// Attempts made because the earlier ones were slow.
    pub hedges: u64,
    /// Retries or hedges not made because the retry budget was spent.
    pub budget_exhausted: u64,
}

impl MethodResilience {
    pub(super) fn counts(&self) -> ResilienceCounts {
        ResilienceCounts {
            retries: self.retries.load(Ordering::Relaxed),
            hedges: self.hedges.load(Ordering::Relaxed),
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
        }
    }
}

impl MethodMetrics {
    /// Counts a retry.
    pub fn retried(&self) {
        self.resilience.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a hedge.
    pub fn hedged(&self) {
        self.resilience.hedges.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry or hedge the budget refused.
    pub fn budget_exhausted(&self) {
        self.resilience
            .budget_exhausted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The latency of the calls finished so far.
    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }
}

/// A provider's ejections, as a consumer's outlier detection saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderHealth {
    /// Out of the balancer now.
    pub ejected: bool,
    /// Times it was ejected.
    pub ejections: u64,
}

impl Metrics {
    /// Records a provider ejected (`true`) or back in the balancer (`false`).
    pub fn provider_ejected(&self, address: &str, ejected: bool) {
        let mut health = self
            .inner
            .provider_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = health.entry(address.to_owned()).or_default();
        entry.ejected = ejected;
        entry.ejections += u64::from(ejected);
    }
}
