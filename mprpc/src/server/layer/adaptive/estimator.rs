//! The limit's arithmetic, apart from the call path: one sampling [`Window`] in, the next
//! limit out. It keeps no clock of its own (a window says when it ended), so it is tested
//! with synthetic windows, deterministically.
//!
//! Each window, with `mean` its calls' mean latency and `baseline` the no-load latency:
//!
//! - `allowed = max(baseline * tolerance, baseline + slack)`;
//! - `mean > allowed`: the limit is multiplied by `allowed / mean`, but at most halved;
//! - otherwise, if the window used at least half the limit (it was not the callers who kept
//!   it low), the limit grows by its square root;
//! - the limit stays within `[min_limit, max_limit]`.
//!
//! The baseline is the lowest window mean since the last probe. A probe (every
//! `probe_interval`, and at once when the limit sits on its floor with the latency still too
//! high) halves the limit for two windows: the first lets the calls admitted before drain,
//! the second is measured; the window after it, back at the old limit, is not judged (the
//! calls in flight are still climbing back). If halving the calls in flight cut their latency (to below
//! [`QUEUE_SIGNAL`] of the window before), the latency was queueing, and the probe may only
//! lower the baseline; if not, the latency is the service's own, and it becomes the baseline,
//! up or down. So a sustained overload cannot raise the baseline (which would let the latency
//! creep up), and a service that really got slower is not held to its old latency for long.
//! A probe that raised the baseline is checked by another a tenth of `probe_interval` later
//! (the machine may have stalled during it); one that lowered it by a tenth or more, by
//! another at once (the baseline may still be inflated, as after an overload from the start).

use std::time::Duration;

use crate::config::AdaptiveLimitConfig;

/// A probe whose mean latency is below this share of the window before it saw queueing
/// drain: the latency before was not the service's own.
const QUEUE_SIGNAL: f64 = 0.8;

/// A probe that lowers the baseline by more than this share is followed by another at once
/// (one window later): the baseline was still inflated, e.g. by an overload from the start.
const STILL_FALLING: f64 = 0.9;

/// What one sampling window measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Window {
    /// When it closed, since the limiter started.
    pub(super) end: Duration,
    /// The mean latency of the calls that finished in it, in microseconds.
    pub(super) mean_us: f64,
    /// The most calls in flight at once during it.
    pub(super) max_in_flight: usize,
}

/// What the estimator is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Following the latency.
    Tracking,
    /// A probe's first window at half the limit, in which the calls admitted under the old
    /// limit finish. `restore` is the limit to go back to, `before_us` the mean latency of
    /// the window before the probe.
    Settling { restore: f64, before_us: f64 },
    /// A probe's second window: its mean latency is the measurement.
    Measuring { restore: f64, before_us: f64 },
    /// The first window back at the old limit, while the calls in flight climb back to it:
    /// its latency is neither the old limit's nor the probe's, and nothing is decided on it.
    Returning,
}

/// The adaptive limit's state.
#[derive(Debug)]
pub(super) struct Estimator {
    min: f64,
    max: f64,
    tolerance: f64,
    slack_us: f64,
    probe_interval: Duration,
    limit: f64,
    /// The no-load latency in microseconds; none before the first window.
    baseline_us: Option<f64>,
    phase: Phase,
    /// When the next probe is due (the first one after the first window: the first
    /// baseline may have been measured under load).
    next_probe: Duration,
}

impl Estimator {
    pub(super) fn new(config: &AdaptiveLimitConfig) -> Estimator {
        Estimator {
            min: config.min_limit as f64,
            max: config.max_limit as f64,
            tolerance: config.tolerance,
            slack_us: config.slack.as_secs_f64() * 1e6,
            probe_interval: config.probe_interval,
            limit: config.initial_limit as f64,
            baseline_us: None,
            phase: Phase::Tracking,
            next_probe: Duration::ZERO,
        }
    }

    /// The limit now, in whole calls.
    pub(super) fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    /// The no-load latency, once measured.
    pub(super) fn baseline(&self) -> Option<Duration> {
        self.baseline_us.map(|us| Duration::from_secs_f64(us / 1e6))
    }

    /// Takes in one window and returns the limit for the next.
    pub(super) fn on_window(&mut self, window: Window) -> usize {
        if !(window.mean_us.is_finite() && window.mean_us > 0.0) {
            return self.limit();
        }
        match self.phase {
            Phase::Tracking => {
                let over = self.track(&window);
                // Still too slow at the floor: the latency is not a queue's, or the floor is
                // over the capacity; either way, measure it.
                let at_floor = over && self.limit <= self.min;
                if window.end >= self.next_probe || at_floor {
                    self.start_probe(&window);
                }
            }
            Phase::Settling { restore, before_us } => {
                self.phase = Phase::Measuring { restore, before_us };
            }
            Phase::Measuring { restore, before_us } => {
                self.finish_probe(&window, restore, before_us);
            }
            Phase::Returning => self.phase = Phase::Tracking,
        }
        self.limit()
    }

    /// The latency the limit lets calls reach: `tolerance` times the no-load latency, or
    /// `slack` above it, whichever is more.
    fn allowed_us(&self, baseline_us: f64) -> f64 {
        (baseline_us * self.tolerance).max(baseline_us + self.slack_us)
    }

    /// Moves the limit after `window`; returns whether the latency was over what it allows.
    fn track(&mut self, window: &Window) -> bool {
        let baseline = self
            .baseline_us
            .map_or(window.mean_us, |b| b.min(window.mean_us));
        self.baseline_us = Some(baseline);
        let allowed = self.allowed_us(baseline);
        let over = window.mean_us > allowed;
        if over {
            self.limit *= (allowed / window.mean_us).max(0.5);
        } else if !self.app_limited(window) {
            self.limit += self.limit.sqrt();
        }
        self.limit = self.limit.clamp(self.min, self.max);
        over
    }

    /// Whether the callers, not the limit, kept the calls in flight low: fewer than half
    /// the limit at the window's busiest. The limit does not grow on such a window, so an
    /// idle provider's limit stays where its last load put it.
    fn app_limited(&self, window: &Window) -> bool {
        (window.max_in_flight as f64) * 2.0 < self.limit
    }

    fn start_probe(&mut self, window: &Window) {
        let restore = self.limit;
        // Halving a limit the callers do not reach would change nothing but the gauge.
        if !self.app_limited(window) {
            self.limit = (self.limit / 2.0).max(self.min);
        }
        self.phase = Phase::Settling {
            restore,
            before_us: window.mean_us,
        };
    }

    fn finish_probe(&mut self, window: &Window, restore: f64, before_us: f64) {
        let old = self.baseline_us;
        let measured = window.mean_us;
        let queue_drained = measured < before_us * QUEUE_SIGNAL;
        let baseline = match old {
            Some(old) if queue_drained => old.min(measured),
            _ => measured,
        };
        self.baseline_us = Some(baseline);
        self.limit = restore;
        self.phase = Phase::Returning;
        let still_falling = old.is_some_and(|old| baseline < old * STILL_FALLING);
        let rose = old.is_some_and(|old| baseline > old);
        self.next_probe = if still_falling {
            window.end
        } else if rose {
            // Perhaps a stall of the machine during the probe: check it soon.
            window.end + self.probe_interval / 10
        } else {
            window.end + self.probe_interval
        };
    }
}
