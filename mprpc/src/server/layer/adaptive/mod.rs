//! The adaptive concurrency limit (`[server.adaptive_limit]`): a limit on calls in flight
//! that follows the provider's latency, inside the static ones. When the provider is
//! overloaded, calls over it are refused `ResourceExhausted` at once (no handler, no queue),
//! so that the calls it admits keep about their usual latency instead of all of them
//! queueing until their callers give up.
//!
//! **What it measures.** Each admitted call's latency, from when the connection read it to
//! the end of the rest of the stack (whatever its outcome; a call abandoned half-way, its
//! caller gone, counts the time it ran), is added to the current sampling window (two atomic
//! additions). A window closes when it is at least `window` long and has `min_samples` calls;
//! the call that finds it so takes a lock without waiting (a call that does not get it
//! carries on), hands the window's mean latency and its busiest moment to the
//! [`estimator`], and publishes the new limit. So the call path pays a few relaxed atomics and
//! one clock read per call and no lock, and the arithmetic runs ten times a second whatever
//! the call rate: a method of 25 µs costs what a method of 25 ms does.
//!
//! **The algorithm, and why this one.** The limit is Netflix's Gradient2 rule (shrink by
//! `allowed / mean`, at most halving; grow by `sqrt(limit)` when the latency is fine and the
//! load reaches the limit) with a different idea of the no-load latency, because of how the
//! others fail:
//!
//! - Gradient2 compares the latency to a long exponential average of itself. Under a
//!   sustained overload that average climbs to the overloaded latency, the gradient returns
//!   to 1 and the limit creeps up: the admitted calls' latency is not kept.
//! - Vegas compares to the minimum latency of single calls; the minimum of noisy samples is
//!   an outlier, and on a fast method the queue it infers from scheduling noise pulls the
//!   limit down to its floor.
//! - brpc's `auto` limiter computes `peak qps x no-load latency` (Little's law): on a 25 µs
//!   method that is below one call, and every call was refused (brpc#1006); it also had no
//!   ceiling until brpc#1334.
//!
//! Here the no-load latency is the lowest window *mean* (a mean of at least `min_samples`
//! calls is not an outlier) and is re-measured by a periodic probe that halves the limit for
//! two windows; a probe that sees the latency fall with the load knows the latency was
//! queueing and cannot raise the baseline, so an overload never ratchets it up. The latency
//! allowed is `tolerance` times the no-load latency, but always at least `slack` above it, so
//! that on a method of tens of microseconds, where a scheduler hiccup is ten times the call,
//! noise is not taken for a queue. And `min_limit` and `max_limit` bound it whatever it
//! infers. The arithmetic is in [`estimator`], with the rules in its header.
//!
//! **What it cannot see.** A call's latency here starts when its connection read it. A
//! provider whose CPU is saturated queues requests before that (in the sockets and the
//! runtime's run queue), where no limit inside the stack sees them; the limit protects the
//! latency of calls that wait on something inside the call: a pool, a lock, a downstream
//! service, a semaphore, the runtime while they are in flight.

mod estimator;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use self::estimator::{Estimator, Window};
use crate::config::AdaptiveLimitConfig;
use crate::metrics::{LimitGauge, Metrics};
use crate::Status;

/// One provider's adaptive limit.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    /// The limit calls are admitted against, published at the end of each window.
    limit: AtomicUsize,
    /// Calls admitted and not finished.
    in_flight: AtomicUsize,
    /// The window being filled.
    window: Sampling,
    /// The arithmetic; locked (without waiting) once per window.
    estimator: Mutex<Estimator>,
    /// The limit and the shed calls in `/metrics`.
    gauge: LimitGauge,
    /// What window times count from.
    epoch: Instant,
    /// The shortest window, in nanoseconds.
    window_ns: u64,
    /// The fewest calls a window needs.
    min_samples: u64,
}

/// What the current window has gathered. Its counters are read and reset one after the
/// other, not at one instant: a call finishing meanwhile may count in one window and its
/// latency in the next, a rounding error on a mean of many calls.
#[derive(Debug, Default)]
struct Sampling {
    /// Calls finished.
    samples: AtomicU64,
    /// Their latency added up, in nanoseconds.
    latency_ns: AtomicU64,
    /// The most calls in flight at once.
    max_in_flight: AtomicUsize,
    /// When the window may close, in nanoseconds since `epoch`.
    ends_at_ns: AtomicU64,
}

impl AdaptiveLimit {
    /// A limit with `config`'s settings, shown in `metrics`.
    pub(crate) fn new(config: &AdaptiveLimitConfig, metrics: &Metrics) -> AdaptiveLimit {
        let estimator = Estimator::new(config);
        let window_ns = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        AdaptiveLimit {
            limit: AtomicUsize::new(estimator.limit()),
            in_flight: AtomicUsize::new(0),
            window: Sampling {
                ends_at_ns: AtomicU64::new(window_ns),
                ..Sampling::default()
            },
            gauge: metrics.track_adaptive_limit(estimator.limit()),
            estimator: Mutex::new(estimator),
            epoch: Instant::now(),
            window_ns,
            min_samples: u64::from(config.min_samples),
        }
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Counts a call out: its latency goes into the window, which closes if it is due.
    fn finished(&self, arrived: Instant) {
        let now = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let window = &self.window;
        let latency = nanos(now.saturating_duration_since(arrived));
        let samples = window.samples.fetch_add(1, Ordering::Relaxed) + 1;
        window.latency_ns.fetch_add(latency, Ordering::Relaxed);
        let now_ns = nanos(now.saturating_duration_since(self.epoch));
        if samples >= self.min_samples && now_ns >= window.ends_at_ns.load(Ordering::Relaxed) {
            self.close_window(now_ns);
        }
    }

    /// Ends the window at `now_ns` and publishes the next limit, unless another call is
    /// doing it.
    fn close_window(&self, now_ns: u64) {
        let mut estimator = match self.estimator.try_lock() {
            Ok(estimator) => estimator,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let window = &self.window;
        if now_ns < window.ends_at_ns.load(Ordering::Relaxed) {
            return; // Closed by another call just before.
        }
        let samples = window.samples.swap(0, Ordering::Relaxed);
        let latency_ns = window.latency_ns.swap(0, Ordering::Relaxed);
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let max_in_flight = window.max_in_flight.swap(in_flight, Ordering::Relaxed);
        window
            .ends_at_ns
            .store(now_ns.saturating_add(self.window_ns), Ordering::Relaxed);
        if samples == 0 {
            return;
        }
        let before = estimator.limit();
        let limit = estimator.on_window(Window {
            end: Duration::from_nanos(now_ns),
            mean_us: latency_ns as f64 / samples as f64 / 1e3,
            max_in_flight,
        });
        self.limit.store(limit, Ordering::Relaxed);
        if limit != before {
            self.gauge.set(limit);
            tracing::debug!(
                limit,
                before,
                mean_us = latency_ns / samples / 1_000,
                baseline = ?estimator.baseline(),
                "adaptive concurrency limit moved"
            );
        }
    }
}

/// A duration in nanoseconds, saturating (585 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// An admitted call's place under the limit, held until the rest of the stack is done;
/// dropping it counts the call out and samples its latency.
#[derive(Debug)]
pub(super) struct Slot<'a> {
    limiter: &'a AdaptiveLimit,
    /// When the connection read the call: its latency counts from there.
    arrived: Instant,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limiter.finished(self.arrived);
    }
}

/// Admits a call that the connection read at `arrived` under the limit, or sheds it:
/// `ResourceExhausted` naming the limit, counted as rejected and as shed.
pub(super) fn admit<'a>(
    limiter: &'a AdaptiveLimit,
    metrics: &Metrics,
    arrived: Instant,
) -> Result<Slot<'a>, Status> {
    let limit = limiter.limit();
    let running = limiter.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    if running > limit {
        limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        limiter.gauge.shed();
        let status = Status::overloaded(format!(
            "provider is at its adaptive concurrency limit of {limit} calls in flight \
             (it sheds calls while overloaded, to keep its latency); the call was not run"
        ));
        metrics.rejected(status.code());
        return Err(status);
    }
    let max = &limiter.window.max_in_flight;
    if running > max.load(Ordering::Relaxed) {
        max.fetch_max(running, Ordering::Relaxed);
    }
    Ok(Slot { limiter, arrived })
}
