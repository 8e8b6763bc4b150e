//! The estimator driven with synthetic windows from models of a provider (deterministic:
//! the noise comes from a seeded generator), and the limiter's call path.

use std::time::{Duration, Instant};

use super::estimator::{Estimator, Window};
use super::{admit, AdaptiveLimit};
use crate::config::AdaptiveLimitConfig;
use crate::metrics::Metrics;
use crate::Code;

/// A small deterministic generator (xorshift64*), for noise.
struct Noise(u64);

impl Noise {
    /// A number in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `x` give or take `share` of it.
    fn jitter(&mut self, x: f64, share: f64) -> f64 {
        x * (1.0 + share * (2.0 * self.next() - 1.0))
    }
}

/// How a provider answers, as one window sees it.
trait Model {
    /// The window a provider limited to `limit` calls in flight shows.
    fn window(&mut self, limit: usize, noise: &mut Noise) -> (f64, usize);
}

/// A method whose work needs one of `permits` (a pool, a semaphore) for `hold_us`, under a
/// load that would keep `demand` calls in flight: past `permits`, calls queue, and the
/// mean latency grows with the calls in flight. When the limit moves, the calls in flight
/// take the window to follow: its latency is that of halfway between.
struct Capacity {
    permits: f64,
    hold_us: f64,
    demand: usize,
    /// The calls in flight at the end of the last window.
    last: Option<usize>,
}

impl Capacity {
    fn new(permits: f64, hold_us: f64, demand: usize) -> Capacity {
        Capacity {
            permits,
            hold_us,
            demand,
            last: None,
        }
    }
}

impl Model for Capacity {
    fn window(&mut self, limit: usize, noise: &mut Noise) -> (f64, usize) {
        let in_flight = limit.min(self.demand);
        let during = (self.last.unwrap_or(in_flight) + in_flight) as f64 / 2.0;
        self.last = Some(in_flight);
        let queued = (during / self.permits).max(1.0);
        (noise.jitter(self.hold_us * queued, 0.05), in_flight)
    }
}

/// A fast method (`work_us` of CPU) on `cores`, with scheduling noise: now and then a window
/// has a stall in it that adds `spike_us` to its mean.
struct Fast {
    work_us: f64,
    cores: f64,
    demand: usize,
    spike_us: f64,
}

impl Model for Fast {
    fn window(&mut self, limit: usize, noise: &mut Noise) -> (f64, usize) {
        let in_flight = limit.min(self.demand);
        let mut mean = self.work_us * (in_flight as f64 / self.cores).max(1.0);
        mean = noise.jitter(mean, 0.2);
        if noise.next() < 0.05 {
            mean += self.spike_us;
        }
        (mean, in_flight)
    }
}

/// One window after another, 100 ms apart: the limit after each, and the mean latency each
/// saw.
fn run(
    estimator: &mut Estimator,
    model: &mut impl Model,
    windows: usize,
    noise: &mut Noise,
    start: usize,
) -> Vec<(usize, f64)> {
    let mut seen = Vec::with_capacity(windows);
    for i in start..start + windows {
        let (mean_us, max_in_flight) = model.window(estimator.limit(), noise);
        let limit = estimator.on_window(Window {
            end: Duration::from_millis(100 * (i as u64 + 1)),
            mean_us,
            max_in_flight,
        });
        seen.push((limit, mean_us));
    }
    seen
}

fn config(min_limit: usize, max_limit: usize, initial_limit: usize) -> AdaptiveLimitConfig {
    AdaptiveLimitConfig {
        min_limit,
        max_limit,
        initial_limit,
        ..AdaptiveLimitConfig::default()
    }
}

#[test]
fn a_25us_method_under_full_load_neither_collapses_nor_runs_away() {
    // 25 µs of CPU on 2 cores with callers keeping 10,000 calls in flight if let: the
    // latency doubles with every 2 calls in flight past 2, and jumps by 300 µs (12 calls'
    // worth) in one window of 20. brpc#1006's case.
    let mut model = Fast {
        work_us: 25.0,
        cores: 2.0,
        demand: 10_000,
        spike_us: 300.0,
    };
    let mut estimator = Estimator::new(&AdaptiveLimitConfig::default());
    let seen = run(&mut estimator, &mut model, 3_000, &mut Noise(7), 0);
    let limits: Vec<usize> = seen.iter().skip(10).map(|(l, _)| *l).collect();
    let (low, high) = (*limits.iter().min().unwrap(), *limits.iter().max().unwrap());
    // The equilibrium: a queue of about `slack` (1 ms) deep, 80 calls on 2 cores.
    assert!(low >= 16, "collapsed towards the floor (8): {low}");
    assert!(high <= 300, "ran away towards the ceiling (1000): {high}");
    let worst = seen.iter().skip(10).map(|(_, m)| *m).fold(0.0, f64::max);
    assert!(worst < 3_000.0, "admitted calls' mean latency: {worst} us");
}

#[test]
fn a_method_that_does_nothing_keeps_its_limit() {
    // 2 µs calls that never pile up (3 in flight at most), with stalls 100 times the call:
    // no reason to move the limit either way, nor to flap it with probes.
    let mut model = Fast {
        work_us: 2.0,
        cores: 2.0,
        demand: 3,
        spike_us: 200.0,
    };
    let mut estimator = Estimator::new(&AdaptiveLimitConfig::default());
    let seen = run(&mut estimator, &mut model, 3_000, &mut Noise(11), 0);
    assert!(seen.iter().all(|(l, _)| *l == 32), "{:?}", &seen[..20]);
}

#[test]
fn an_overloaded_slow_provider_is_held_near_its_capacity() {
    // 8 permits held 10 ms each (800 calls/s), callers that would keep 10,000 calls in
    // flight, from the first window: the first latency seen is already a queue's.
    let mut model = Capacity::new(8.0, 10_000.0, 10_000);
    let mut estimator = Estimator::new(&config(1, 1_000, 32));
    let seen = run(&mut estimator, &mut model, 3_000, &mut Noise(3), 0);
    for (i, (limit, mean)) in seen.iter().enumerate().skip(40) {
        // Probes halve it for two windows: 4 is half of the low end.
        assert!((4..=24).contains(limit), "window {i}: limit {limit}");
        assert!(*mean <= 2.6 * 10_000.0, "window {i}: mean {mean} us");
    }
    // Busy (at or over 8 permits) in all but the probes' windows: the goodput is kept.
    let busy = seen.iter().skip(40).filter(|(l, _)| *l >= 8).count();
    assert!(busy * 100 >= (seen.len() - 40) * 95, "{busy}");
    // Five minutes of overload and probes did not raise the no-load latency.
    let baseline = estimator.baseline().unwrap().as_secs_f64() * 1e6;
    assert!(baseline <= 11_000.0, "baseline {baseline} us");
}

#[test]
fn an_overload_from_a_cold_start_is_brought_to_the_capacity_within_seconds() {
    // The first windows are all queue: no window has shown the no-load latency yet.
    let mut model = Capacity::new(8.0, 10_000.0, 10_000);
    let mut estimator = Estimator::new(&AdaptiveLimitConfig::default());
    let seen = run(&mut estimator, &mut model, 30, &mut Noise(21), 0);
    let baseline = estimator.baseline().unwrap().as_secs_f64() * 1e6;
    assert!(
        baseline <= 11_000.0,
        "baseline {baseline} us after {seen:?}"
    );
    let limits = seen[20..].iter().map(|(l, _)| *l);
    assert!(limits.clone().all(|l| l <= 20), "{seen:?}");
}

#[test]
fn a_service_that_really_got_slower_is_followed_not_pinned_to_the_floor() {
    let mut model = Capacity::new(8.0, 10_000.0, 10_000);
    let mut estimator = Estimator::new(&config(2, 1_000, 32));
    let mut noise = Noise(5);
    run(&mut estimator, &mut model, 200, &mut noise, 0);
    // Every call now takes twice as long (a slower dependency): at any limit the latency is
    // over what the old no-load latency allows, until a probe measures the new one.
    model.hold_us = 20_000.0;
    let seen = run(&mut estimator, &mut model, 100, &mut noise, 200);
    let tail = &seen[50..];
    assert!(
        tail.iter().filter(|(l, _)| *l >= 8).count() * 10 >= tail.len() * 9,
        "the limit stayed low: {:?}",
        seen.iter().map(|(l, _)| l).collect::<Vec<_>>()
    );
    let baseline = estimator.baseline().unwrap().as_secs_f64() * 1e6;
    assert!(
        (18_000.0..=22_000.0).contains(&baseline),
        "baseline {baseline} us"
    );
}

#[test]
fn a_stall_during_a_probe_does_not_inflate_the_baseline_for_long() {
    // The floor is the capacity: at it, a stall of the machine looks like a slower service,
    // and the probe it starts measures the stall.
    let mut model = Capacity::new(8.0, 10_000.0, 10_000);
    let mut estimator = Estimator::new(&config(8, 1_000, 32));
    let mut noise = Noise(17);
    run(&mut estimator, &mut model, 300, &mut noise, 0);
    // Most of a second of calls three times slower: long enough for a probe at the floor
    // to measure it, and take it for the service's new latency.
    model.hold_us = 30_000.0;
    run(&mut estimator, &mut model, 8, &mut noise, 300);
    let taken = estimator.baseline().unwrap().as_secs_f64() * 1e6;
    assert!(taken >= 25_000.0, "the stall was not measured: {taken} us");
    model.hold_us = 10_000.0;
    let seen = run(&mut estimator, &mut model, 40, &mut noise, 308);
    let baseline = estimator.baseline().unwrap().as_secs_f64() * 1e6;
    assert!(baseline <= 11_000.0, "baseline {baseline} us: {seen:?}");
}

#[test]
fn the_floor_and_the_ceiling_hold_whatever_the_windows_say() {
    let mut estimator = Estimator::new(&config(5, 50, 20));
    let mut noise = Noise(13);
    for i in 0..20_000u64 {
        // Means from 1 µs to 10 s, any number in flight.
        let mean_us = 10f64.powf(7.0 * noise.next());
        let max_in_flight = (noise.next() * 200.0) as usize;
        let limit = estimator.on_window(Window {
            end: Duration::from_millis(100 * (i + 1)),
            mean_us,
            max_in_flight,
        });
        assert!((5..=50).contains(&limit), "window {i}: {limit}");
    }
    // A latency that never rises, under a load that always fills the limit: the ceiling.
    let mut estimator = Estimator::new(&config(5, 50, 20));
    let mut flat = Capacity::new(1_000.0, 100.0, 10_000);
    let seen = run(&mut estimator, &mut flat, 100, &mut noise, 0);
    assert_eq!(seen.last().map(|(l, _)| *l), Some(50));
}

#[test]
fn calls_over_the_limit_are_shed_at_once_and_counted() {
    let metrics = Metrics::new();
    let limiter = AdaptiveLimit::new(&config(1, 10, 2), &metrics);
    let now = Instant::now();
    let a = admit(&limiter, &metrics, now).unwrap();
    let b = admit(&limiter, &metrics, now).unwrap();
    let shed = admit(&limiter, &metrics, now).unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted);
    assert!(
        shed.message().contains("adaptive concurrency limit of 2"),
        "{shed}"
    );
    drop(a);
    let c = admit(&limiter, &metrics, now).expect("a slot was freed");
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.adaptive_limit, Some(2));
    assert_eq!(snapshot.shed_calls, 1);
    assert_eq!(snapshot.rejected[&Code::ResourceExhausted], 1);
    drop((b, c));
    drop(limiter);
    assert_eq!(
        metrics.snapshot().adaptive_limit,
        None,
        "a stopped one is gone"
    );
}

#[test]
fn a_window_closes_after_its_time_and_samples_and_moves_the_limit() {
    let metrics = Metrics::new();
    let config = AdaptiveLimitConfig {
        window: Duration::from_millis(1),
        min_samples: 5,
        ..config(1, 100, 10)
    };
    let limiter = AdaptiveLimit::new(&config, &metrics);
    let started = Instant::now();
    // Windows that fill the limit, with a latency that does not grow: after the first
    // window's probe (half the limit for two windows), the limit grows, and the gauge follows.
    let mut seen = vec![limiter.limit()];
    while limiter.limit() <= 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "{seen:?}");
        let slots: Vec<_> =
            std::iter::from_fn(|| admit(&limiter, &metrics, Instant::now()).ok()).collect();
        std::thread::sleep(Duration::from_millis(1));
        drop(slots);
        if seen.last() != Some(&limiter.limit()) {
            seen.push(limiter.limit());
        }
    }
    assert_eq!(
        metrics.snapshot().adaptive_limit,
        Some(limiter.limit() as u64)
    );
}
