//! The consumer's resilience settings: `[client.retry]`, `[client.hedge]`,
//! `[client.outlier]` and the per-method `[client.methods."pkg.Service/Method"]`.
//! `docs/RESILIENCE.md` explains each mechanism; the defaults are the ones listed there.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::check::Check;
use super::ConfigError;

/// Retries of calls to idempotent methods (`[client.retry]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Most attempts of one idempotent call, the first included; 1 turns retries off.
    /// From 1 to 10. Default 3.
    pub max_attempts: u32,
    /// The wait before the first retry; each further one doubles it, up to `max_backoff`;
    /// half of each wait is random ("equal jitter"). More than zero. Default 20 ms.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts, at least `initial_backoff`. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// The retry budget: retries (and hedges) may add at most this share of the channel's
    /// idempotent calls over the last 10 s, from 0 to 10 (10 never limits: no call makes
    /// more than 9 retries). Default 0.2.
    pub budget_ratio: f64,
    /// ... plus this many per second whatever the traffic, so that a channel making few
    /// calls can still retry. Default 10.
    pub budget_min_per_second: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

/// Hedged calls to idempotent methods (`[client.hedge]`): off unless `delay` is set.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HedgeConfig {
    /// How long the first attempt may go unanswered before a second goes to another
    /// provider: a duration (`"20ms"`) or a percentile of the method's observed latency
    /// (`"p95"`). Default: none (no hedging).
    #[serde(deserialize_with = "hedge_delay")]
    pub delay: Option<HedgeDelay>,
    /// Most attempts of a hedged call, the first included, whether sent because the earlier
    /// ones were slow or because they failed; for hedged methods it replaces
    /// `[client.retry] max_attempts`. From 2 to 10. Default 2.
    pub max_attempts: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            delay: None,
            max_attempts: 2,
        }
    }
}

/// When a hedged call sends its next attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeDelay {
    /// After this long.
    Fixed(Duration),
    /// After the method's observed latency at this quantile (0.95 for `"p95"`), once 100
    /// calls have been seen (before that, no hedge).
    Quantile(f64),
}

impl std::str::FromStr for HedgeDelay {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix('p') {
            return match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => Ok(HedgeDelay::Quantile(p / 100.0)),
                _ => Err(format!("`{s}` is not a percentile from p1 to p99.9")),
            };
        }
        humantime::parse_duration(s)
            .map(HedgeDelay::Fixed)
            .map_err(|e| format!("`{s}` is neither a duration nor a percentile (p95): {e}"))
    }
}

fn hedge_delay<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HedgeDelay>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// Outlier ejection: providers that keep failing are taken out of the balancer for a while
/// (`[client.outlier]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierConfig {
    /// Failures in a row (connect errors, `Unavailable`, timeouts) that eject a provider;
    /// 0 turns this check off. Default 5.
    pub consecutive_failures: u32,
    /// Every `interval`, a provider with at least `success_rate_min_calls` calls whose
    /// success rate is below this share of its peers' average is ejected; 0 turns this
    /// check off. From 0 to 1. Default 0.5.
    pub success_rate_factor: f64,
    /// Calls a provider needs in an interval for its success rate to count. Default 20.
    pub success_rate_min_calls: u32,
    /// Providers (with enough calls) a service needs for success rates to be compared:
    /// with fewer, one bad provider weighs too much in the average. At least 2. Default 3.
    pub success_rate_min_providers: u32,
    /// How often success rates are compared. More than zero. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The first ejection's length; the n-th in a row lasts n times as long. More than zero.
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub base_ejection_time: Duration,
    /// The longest ejection, at least `base_ejection_time`. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub max_ejection_time: Duration,
    /// The most providers of a service out at once, in percent of them (at least one is
    /// allowed, never all). From 0 to 100. Default 50.
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            success_rate_factor: 0.5,
            success_rate_min_calls: 20,
            success_rate_min_providers: 3,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Settings of one method, or of every method of a service
/// (`[client.methods."pkg.Service/Method"]`, `[client.methods."pkg.Service"]`); the method's
/// own table wins over its service's, which wins over the channel's.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MethodConfig {
    /// Whether calls may run twice, overriding the `.proto`'s `idempotency_level`.
    pub idempotent: Option<bool>,
    /// Overrides `[client.retry] max_attempts` (or `[client.hedge] max_attempts` when the
    /// method is hedged).
    pub max_attempts: Option<u32>,
    /// Overrides `[client.hedge] delay`; `"off"` turns hedging off for the method.
    #[serde(deserialize_with = "method_hedge_delay")]
    pub hedge_delay: Option<Option<HedgeDelay>>,
    /// Overrides `[client] timeout`.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

fn method_hedge_delay<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<HedgeDelay>>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    match text.as_deref() {
        None => Ok(None),
        Some("off") => Ok(Some(None)),
        Some(t) => t
            .parse()
            .map(|d| Some(Some(d)))
            .map_err(serde::de::Error::custom),
    }
}

/// The per-method tables, by `pkg.Service/Method` or `pkg.Service`.
pub type MethodTable = BTreeMap<String, MethodConfig>;

impl RetryConfig {
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        attempts(check, self.max_attempts, "client.retry.max_attempts")?;
        check.positive(self.initial_backoff, "client.retry.initial_backoff")?;
        check.that(
            self.max_backoff >= self.initial_backoff,
            "client.retry.max_backoff",
            "must be at least `client.retry.initial_backoff`",
        )?;
        check.that(
            (0.0..=10.0).contains(&self.budget_ratio),
            "client.retry.budget_ratio",
            "must be from 0 to 10",
        )
    }
}

impl HedgeConfig {
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.that(
            (2..=10).contains(&self.max_attempts),
            "client.hedge.max_attempts",
            "must be from 2 to 10",
        )
    }
}

impl OutlierConfig {
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        share(
            check,
            self.success_rate_factor,
            "client.outlier.success_rate_factor",
        )?;
        check.positive(self.interval, "client.outlier.interval")?;
        check.positive(self.base_ejection_time, "client.outlier.base_ejection_time")?;
        check.that(
            self.max_ejection_time >= self.base_ejection_time,
            "client.outlier.max_ejection_time",
            "must be at least `client.outlier.base_ejection_time`",
        )?;
        check.that(
            self.max_ejection_percent <= 100,
            "client.outlier.max_ejection_percent",
            "must be from 0 to 100",
        )
    }
}

/// Checks the per-method tables: names of the right shape, values in range.
pub(super) fn validate_methods(
    check: &Check<'_>,
    methods: &MethodTable,
) -> Result<(), ConfigError> {
    for (name, method) in methods {
        let key = format!("client.methods.\"{name}\"");
        let (service, rest) = name.split_once('/').unwrap_or((name, "x"));
        check.that(
            !service.is_empty() && !rest.is_empty() && !rest.contains('/'),
            &key,
            "must be `package.Service/Method` or `package.Service`",
        )?;
        if let Some(n) = method.max_attempts {
            attempts(check, n, &format!("{key}.max_attempts"))?;
        }
        if let Some(t) = method.timeout {
            check.positive(t, &format!("{key}.timeout"))?;
        }
    }
    Ok(())
}

fn attempts(check: &Check<'_>, n: u32, key: &str) -> Result<(), ConfigError> {
    check.that((1..=10).contains(&n), key, "must be from 1 to 10")
}

fn share(check: &Check<'_>, x: f64, key: &str) -> Result<(), ConfigError> {
    check.that((0.0..=1.0).contains(&x), key, "must be from 0 to 1")
}
