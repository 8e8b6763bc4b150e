//! What a channel does when providers fail or stall: retries and hedges for idempotent
//! calls within a budget, and ejection of providers that keep failing. `docs/RESILIENCE.md`
//! explains each; this module decides, `client/attempt.rs` runs the attempts.
//!
//! - [`Resilience::plan`]: whether a call may run more than once (its method's declared
//!   [`Idempotency`], or `[client.methods]`), and how: attempts, hedge delay;
//! - `budget`: the channel's retry budget;
//! - `backoff`: the wait before a retry;
//! - `run`: the attempts of such a call: retries, and hedges racing a slow first attempt;
//! - `outlier`: each provider's failures, and its ejection.
//!
//! A call that provably never reached a provider (`CallError::NotSent`) is tried on the next
//! provider whatever its method, as before: that is not a retry, and costs no budget.

mod backoff;
mod budget;
pub(crate) mod outlier;
mod run;

use std::collections::HashMap;
use std::time::Duration;

pub(crate) use backoff::delay as backoff;
pub(crate) use budget::Budget;

use self::outlier::Outliers;
use crate::config::{ClientConfig, HedgeDelay, MethodConfig, OutlierConfig, RetryConfig};
use crate::metrics::{Metrics, Side};
use crate::{Code, Idempotency, Status};

/// How a call that may run more than once is run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Most attempts, the first included.
    pub(crate) attempts: u32,
    /// When to send a hedge, if hedging is on.
    pub(crate) hedge: Option<HedgeDelay>,
}

/// A service's `[client.methods]` tables: its own, and its methods'.
#[derive(Debug, Default)]
struct ServiceTables {
    service: Option<MethodConfig>,
    methods: HashMap<String, MethodConfig>,
}

/// A channel's resilience settings and state.
#[derive(Debug)]
pub(crate) struct Resilience {
    pub(crate) retry: RetryConfig,
    hedge: Option<HedgeDelay>,
    /// `[client.methods]`, by service.
    methods: HashMap<String, ServiceTables>,
    pub(crate) budget: Budget,
    pub(crate) outlier: OutlierConfig,
    pub(crate) outliers: Outliers,
}

impl Resilience {
    pub(crate) fn new(config: &ClientConfig) -> Resilience {
        let mut methods: HashMap<String, ServiceTables> = HashMap::new();
        for (name, settings) in &config.methods {
            let (service, method) = name.split_once('/').unwrap_or((name, ""));
            let tables = methods.entry(service.to_owned()).or_default();
            if method.is_empty() {
                tables.service = Some(settings.clone());
            } else {
                tables.methods.insert(method.to_owned(), settings.clone());
            }
        }
        Resilience {
            retry: config.retry.clone(),
            hedge: config.hedge.delay,
            methods,
            budget: Budget::new(
                config.retry.budget_ratio,
                config.retry.budget_min_per_second,
            ),
            outlier: config.outlier.clone(),
            outliers: Outliers::default(),
        }
    }

    /// The method's own settings, then its service's (no allocation when there are none).
    fn settings<'a>(&'a self, service: &str, method: &str) -> [Option<&'a MethodConfig>; 2] {
        match self.methods.get(service) {
            None => [None, None],
            Some(tables) => [tables.methods.get(method), tables.service.as_ref()],
        }
    }

    /// Whether outlier ejection is on.
    pub(crate) fn ejects(&self) -> bool {
        self.outlier.consecutive_failures > 0 || self.outlier.success_rate_factor > 0.0
    }

    /// The timeout `[client.methods]` sets for the method, if any.
    pub(crate) fn timeout(&self, service: &str, method: &str) -> Option<Duration> {
        if self.methods.is_empty() {
            return None;
        }
        self.settings(service, method)
            .into_iter()
            .flatten()
            .find_map(|m| m.timeout)
    }

    /// How a call of `service`/`method` declared `declared` runs: `None` if it must not run
    /// twice (today's rule then: only a call never sent goes to another provider).
    pub(crate) fn plan(&self, service: &str, method: &str, declared: Idempotency) -> Option<Plan> {
        let mut plan = Plan {
            attempts: self.retry.max_attempts,
            hedge: self.hedge,
        };
        let mut idempotent = declared.is_idempotent();
        if !self.methods.is_empty() {
            // The method's table first: what it sets wins over its service's.
            for m in self.settings(service, method).into_iter().flatten().rev() {
                idempotent = m.idempotent.unwrap_or(idempotent);
                plan.attempts = m.max_attempts.unwrap_or(plan.attempts);
                plan.hedge = m.hedge_delay.unwrap_or(plan.hedge);
            }
        }
        let more_than_once = plan.attempts > 1 || plan.hedge.is_some();
        (idempotent && more_than_once).then_some(plan)
    }
}

/// Whether a failure of an attempt that reached its provider may be retried elsewhere: the
/// provider was unavailable (it is shutting down, or its connection broke) or overloaded.
pub(crate) fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
}

/// The hedge delay for `method` now: fixed, or its latency quantile on this channel once
/// 100 calls were seen.
pub(crate) fn hedge_delay(
    delay: HedgeDelay,
    metrics: &Metrics,
    service: &str,
    method: &str,
) -> Option<Duration> {
    match delay {
        HedgeDelay::Fixed(d) => Some(d),
        HedgeDelay::Quantile(q) => {
            let latency = metrics.method(Side::Client, service, method).latency();
            (latency.count >= 100)
                .then(|| latency.quantile(q))
                .flatten()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MethodTable;

    fn channel(methods: &[(&str, MethodConfig)]) -> Resilience {
        let config = ClientConfig {
            methods: methods
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<MethodTable>(),
            ..ClientConfig::default()
        };
        Resilience::new(&config)
    }

    #[test]
    fn a_quantile_hedge_waits_for_a_hundred_calls_then_follows_the_latency() {
        let metrics = Metrics::new();
        let m = metrics.method(Side::Client, "a.S", "Get");
        let p95 = HedgeDelay::Quantile(0.95);
        let fixed = HedgeDelay::Fixed(Duration::from_millis(7));
        assert_eq!(
            hedge_delay(fixed, &metrics, "a.S", "Get"),
            Some(Duration::from_millis(7))
        );
        for _ in 0..99 {
            m.start().finish(Code::Ok);
        }
        assert_eq!(hedge_delay(p95, &metrics, "a.S", "Get"), None);
        m.start().finish(Code::Ok);
        let delay = hedge_delay(p95, &metrics, "a.S", "Get").expect("100 calls seen");
        assert!(delay < Duration::from_millis(100), "{delay:?}");
    }

    #[test]
    fn the_declared_level_decides_unless_the_config_says_otherwise() {
        let r = channel(&[
            (
                "a.S",
                MethodConfig {
                    idempotent: Some(true),
                    ..MethodConfig::default()
                },
            ),
            (
                "a.S/Pay",
                MethodConfig {
                    idempotent: Some(false),
                    ..MethodConfig::default()
                },
            ),
            (
                "b.T/Get",
                MethodConfig {
                    max_attempts: Some(1),
                    ..MethodConfig::default()
                },
            ),
        ]);
        let three = Some(Plan {
            attempts: 3,
            hedge: None,
        });
        assert_eq!(r.plan("x.Y", "Get", Idempotency::NoSideEffects), three);
        assert_eq!(r.plan("x.Y", "Put", Idempotency::Unknown), None);
        assert_eq!(r.plan("a.S", "Any", Idempotency::Unknown), three);
        assert_eq!(r.plan("a.S", "Pay", Idempotency::Idempotent), None);
        assert_eq!(r.plan("b.T", "Get", Idempotency::Idempotent), None);
        assert_eq!(r.plan("b.T", "List", Idempotency::Idempotent), three);
    }
}
