//! The retry budget: a channel's retries and hedges may add at most a set share of its
//! retryable calls, plus a small number per second, over a sliding window of 10 s
//! (Finagle's `RetryBudget`, gRPC's retry throttling). A failing fleet gets a bounded extra
//! load, never a storm: once the budget is spent, failures are returned as they are.
//!
//! Lock-free: ten one-second slots of packed `(second, count)` atomics for the calls and for
//! the retries; a slot from an older second counts as empty and is reset by the next add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The window, in one-second slots.
const SLOTS: usize = 10;

/// Calls and retries over the last [`SLOTS`] seconds, and what they allow.
#[derive(Debug)]
pub(crate) struct Budget {
    ratio: f64,
    min_per_second: u32,
    calls: [AtomicU64; SLOTS],
    retries: [AtomicU64; SLOTS],
}

impl Budget {
    pub(crate) fn new(ratio: f64, min_per_second: u32) -> Budget {
        Budget {
            ratio,
            min_per_second,
            calls: Default::default(),
            retries: Default::default(),
        }
    }

    /// Counts a call that could be retried.
    pub(crate) fn deposit(&self) {
        add(&self.calls, now_second());
    }

    /// Takes one retry from the budget, if it has one left.
    pub(crate) fn withdraw(&self) -> bool {
        self.withdraw_at(now_second())
    }

    fn withdraw_at(&self, second: u64) -> bool {
        let calls = sum(&self.calls, second) as f64;
        let retries = sum(&self.retries, second) as f64;
        let allowed = calls * self.ratio + f64::from(self.min_per_second) * SLOTS as f64;
        if retries + 1.0 > allowed {
            return false;
        }
        add(&self.retries, second);
        true
    }
}

/// Seconds since the first use of a budget in this process.
fn now_second() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs() + 1
}

fn add(slots: &[AtomicU64; SLOTS], second: u64) {
    let slot = &slots[(second % SLOTS as u64) as usize];
    let mut old = slot.load(Ordering::Relaxed);
    loop {
        let new = if old >> 32 == second {
            old + 1
        } else {
            (second << 32) | 1
        };
        match slot.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => old = now,
        }
    }
}

fn sum(slots: &[AtomicU64; SLOTS], second: u64) -> u64 {
    slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|v| second.saturating_sub(v >> 32) < SLOTS as u64)
        .map(|v| v & 0xffff_ffff)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_by_the_share_of_calls_plus_the_floor() {
        let budget = Budget::new(0.1, 1);
        for _ in 0..1000 {
            add(&budget.calls, 100);
        }
        // 10% of 1,000 calls plus 1 a second over 10 seconds.
        let granted = (0..500).filter(|_| budget.withdraw_at(100)).count();
        assert_eq!(granted, 110);
        // Ten seconds later the window has moved on: only the floor is left.
        let later = (0..500).filter(|_| budget.withdraw_at(111)).count();
        assert_eq!(later, 10);
    }

    #[test]
    fn with_no_floor_and_no_calls_nothing_is_retried() {
        let budget = Budget::new(0.5, 0);
        assert!(!budget.withdraw());
        budget.deposit();
        budget.deposit();
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
    }
}
