//! Outlier ejection (passive health checking): a provider whose calls keep failing is taken
//! out of its services' balancing for a while, never more than a set share of them at once,
//! and eased back in.
//!
//! - Each endpoint keeps a [`Health`]: failures in a row, and this interval's successes and
//!   failures. A failure is a connect error, `Unavailable`, or a timeout (the call's deadline
//!   passed while the provider had it); every answered call is a success, whatever its code.
//! - A failure that reaches `consecutive_failures`, or comes when a success-rate comparison
//!   is due, bumps the channel's [`Outliers::epoch`]; the next call of each service then
//!   sweeps that service's providers ([`sweep`], one sweep of a service at a time): it ejects
//!   the ones over the line, and once an interval, those whose success rate is below
//!   `success_rate_factor` of their peers' average (with enough calls, among enough
//!   providers). Healthy traffic pays one atomic load per call.
//! - The record is per address, shared by the services a provider serves on this channel:
//!   a provider failing one service's calls is out for all of them. The share ejected at once
//!   is counted among the service being swept.
//! - An ejection lasts `base_ejection_time` times the ejections in a row (up to
//!   `max_ejection_time`); after it, the provider gets a growing share of the calls over
//!   another `base_ejection_time` ([`Health::skip`]); a success once it is fully back
//!   forgives one ejection of the streak.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::client::endpoint::Endpoint;
use crate::config::OutlierConfig;
use crate::metrics::Metrics;

/// Microseconds since the first use in this process (0 means "never").
fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX / 4)) as u64
}

/// The channel-wide part: bumped when some provider may need ejecting.
#[derive(Debug, Default)]
pub(crate) struct Outliers {
    pub(crate) epoch: AtomicU64,
    /// When a service's success rates are next due to be compared (µs on [`clock`]).
    next_comparison: AtomicU64,
}

/// A service's part: the sweep it last did, its next success-rate comparison, and whether a
/// sweep is running.
#[derive(Debug, Default)]
pub(crate) struct ServiceOutliers {
    seen: AtomicU64,
    next_comparison: AtomicU64,
    sweeping: AtomicBool,
}

/// One provider's record.
#[derive(Debug, Default)]
pub(crate) struct Health {
    consecutive: AtomicU32,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Out until then (µs on [`clock`]); 0 when it never was or is fully back.
    ejected_until: AtomicU64,
    /// Ejections in a row.
    streak: AtomicU32,
    /// Its return after the last ejection was reported.
    back_reported: AtomicBool,
}

/// What an attempt says about its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    /// Nothing: the caller gave up, or a hedge won elsewhere.
    Neutral,
}

impl Health {
    /// Records an attempt's verdict.
    pub(crate) fn record(&self, verdict: Verdict, config: &OutlierConfig, outliers: &Outliers) {
        match verdict {
            Verdict::Success => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                if self.streak.load(Ordering::Relaxed) != 0
                    && self.ejected_until.load(Ordering::Relaxed) == 0
                {
                    let _ = self
                        .streak
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
                }
            }
            Verdict::Failure => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                let over = config.consecutive_failures > 0 && n >= config.consecutive_failures;
                let compare = config.success_rate_factor > 0.0
                    && clock() >= outliers.next_comparison.load(Ordering::Relaxed);
                if over || compare {
                    outliers.epoch.fetch_add(1, Ordering::Relaxed);
                }
            }
            Verdict::Neutral => {}
        }
    }

    /// Whether to pass this provider over for one call: it is ejected, or coming back and
    /// not yet given this call. Reports its return to `metrics` when its ejection ends.
    pub(crate) fn skip(&self, config: &OutlierConfig, metrics: &Metrics, address: &str) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        let now = clock();
        if now < until {
            return true;
        }
        if !self.back_reported.swap(true, Ordering::Relaxed) {
            tracing::info!(%address, "provider back in the balancer after its ejection");
            metrics.provider_ejected(address, false);
        }
        let ramp = micros(config.base_ejection_time).max(1);
        let back = now - until;
        if back >= ramp {
            let _ =
                self.ejected_until
                    .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
            return false;
        }
        // Coming back: a share of calls growing from a tenth to all.
        let share = (back as f64 / ramp as f64).max(0.1);
        rand::rng().random::<f64>() >= share
    }

    /// Out, or coming back from an ejection.
    fn is_ejected_or_ramping(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    #[cfg(test)]
    fn is_out(&self, now: u64) -> bool {
        now < self.ejected_until.load(Ordering::Relaxed)
    }

    fn eject(&self, config: &OutlierConfig, now: u64) -> Duration {
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let time = config
            .base_ejection_time
            .saturating_mul(streak)
            .min(config.max_ejection_time);
        self.ejected_until
            .store(now + micros(time), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        time
    }

    fn take_window(&self) -> (u64, u64) {
        (
            self.ok.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        )
    }
}

/// Ejects what needs ejecting among a service's providers, if a failure was recorded since
/// this service last looked (and no other call of it is sweeping now).
pub(crate) fn sweep(
    endpoints: &[Arc<Endpoint>],
    service: &ServiceOutliers,
    outliers: &Outliers,
    config: &OutlierConfig,
    metrics: &Metrics,
) {
    // Read before written: on the call path of every call, a write would bounce the line
    // between the cores.
    let epoch = outliers.epoch.load(Ordering::Relaxed);
    if service.seen.load(Ordering::Relaxed) == epoch
        || endpoints.len() < 2
        || service
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    service.seen.store(epoch, Ordering::Relaxed);
    let now = clock();
    let mut out = endpoints
        .iter()
        .filter(|e| e.health().is_ejected_or_ramping())
        .count();
    // At least one may be out, never all, and at most the configured share.
    let cap = (endpoints.len() * config.max_ejection_percent as usize / 100)
        .max(1)
        .min(endpoints.len() - 1);
    let mut eject = |e: &Endpoint, why: String| {
        if out < cap && !e.health().is_ejected_or_ramping() {
            out += 1;
            let time = e.health().eject(config, now);
            tracing::warn!(address = %e.address(), ?time, "provider ejected: {why}");
            metrics.provider_ejected(e.address(), true);
        }
    };
    if config.consecutive_failures > 0 {
        for e in endpoints {
            let n = e.health().consecutive.load(Ordering::Relaxed);
            if n >= config.consecutive_failures {
                eject(e, format!("{n} failures in a row"));
            }
        }
    }
    if config.success_rate_factor > 0.0 {
        let next = service.next_comparison.load(Ordering::Relaxed);
        if next == 0 || now >= next {
            let following = now + micros(config.interval);
            service.next_comparison.store(following, Ordering::Relaxed);
            outliers.next_comparison.store(following, Ordering::Relaxed);
            // The first time only starts the window.
            let windows: Vec<(u64, u64)> =
                endpoints.iter().map(|e| e.health().take_window()).collect();
            for i in below_peers(&windows, config)
                .into_iter()
                .filter(|_| next != 0)
            {
                let (ok, failed) = windows[i];
                let why = format!(
                    "{ok} of {} calls succeeded, well below its peers",
                    ok + failed
                );
                eject(&endpoints[i], why);
            }
        }
    }
    service.sweeping.store(false, Ordering::Release);
}

/// The providers whose success rate, over enough calls, is below `success_rate_factor` of
/// the average of all such providers, if there are enough of them.
fn below_peers(windows: &[(u64, u64)], config: &OutlierConfig) -> Vec<usize> {
    let min_calls = u64::from(config.success_rate_min_calls.max(1));
    let rates: Vec<(usize, f64)> = windows
        .iter()
        .enumerate()
        .filter(|(_, (ok, failed))| ok + failed >= min_calls)
        .map(|(i, (ok, failed))| (i, *ok as f64 / (ok + failed) as f64))
        .collect();
    if rates.len() < (config.success_rate_min_providers as usize).max(2) {
        return Vec::new();
    }
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / rates.len() as f64;
    rates
        .into_iter()
        .filter(|(_, r)| *r < mean * config.success_rate_factor)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection_time: Duration::from_secs(10),
            ..OutlierConfig::default()
        }
    }

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| Arc::new(Endpoint::new(format!("127.0.0.1:{}", 1000 + i), false)))
            .collect()
    }

    #[test]
    fn failures_in_a_row_eject_within_the_cap_and_the_time_grows() {
        let (config, outliers, service, metrics) = (
            config(),
            Outliers::default(),
            ServiceOutliers::default(),
            Metrics::new(),
        );
        let all = endpoints(4);
        for e in &all[..3] {
            for _ in 0..3 {
                e.health().record(Verdict::Failure, &config, &outliers);
            }
        }
        sweep(&all, &service, &outliers, &config, &metrics);
        let now = clock();
        // 50% of 4: two out, the third stays in although it failed as much.
        let out: Vec<bool> = all.iter().map(|e| e.health().is_out(now)).collect();
        // Another sweep (a failure elsewhere) keeps the cap.
        all[3].health().record(Verdict::Failure, &config, &outliers);
        sweep(&all, &service, &outliers, &config, &metrics);
        assert!(!all[2].health().is_out(clock()));
        assert_eq!(out, [true, true, false, false]);
        assert!(all[0].health().skip(&config, &metrics, "a"));
        assert!(!all[3].health().skip(&config, &metrics, "d"));
        let health = metrics.snapshot().provider_health;
        assert_eq!(health.len(), 2);
        assert!(health.values().all(|h| h.ejected && h.ejections == 1));
        // A second ejection in a row lasts twice as long.
        let h = all[0].health();
        let second = h.eject(&config, now);
        assert_eq!(second, Duration::from_secs(20));
        // Nothing new recorded: the next sweep does nothing.
        sweep(&all, &service, &outliers, &config, &metrics);
        assert!(!all[2].health().is_out(clock()));
    }

    #[test]
    fn one_provider_is_never_ejected() {
        let (config, outliers, service, metrics) = (
            config(),
            Outliers::default(),
            ServiceOutliers::default(),
            Metrics::new(),
        );
        let one = endpoints(1);
        for _ in 0..10 {
            one[0].health().record(Verdict::Failure, &config, &outliers);
        }
        sweep(&one, &service, &outliers, &config, &metrics);
        assert!(!one[0].health().is_out(clock()));
    }

    #[test]
    fn a_success_rate_well_below_the_peers_is_an_outlier() {
        let config = OutlierConfig {
            success_rate_min_calls: 10,
            ..config()
        };
        // Rates 1.0, 0.95, 0.2 (mean 0.72; half of it is 0.36), and one with too few calls.
        let windows = [(100, 0), (95, 5), (20, 80), (0, 3)];
        assert_eq!(below_peers(&windows, &config), vec![2]);
        assert!(below_peers(&[(0, 100)], &config).is_empty());
        // Two providers are not enough to compare (default: three).
        assert!(below_peers(&[(100, 0), (0, 100)], &config).is_empty());
    }
}
