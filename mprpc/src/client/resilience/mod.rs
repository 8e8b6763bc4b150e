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

use std::time::Duration;

pub(crate) use backoff::delay as backoff;
pub(crate) use budget::Budget;

use self::outlier::Outliers;
use crate::config::{ClientConfig, HedgeDelay, MethodConfig, OutlierConfig, RetryConfig};
use crate::hash::NameMap;
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
    methods: NameMap<String, MethodConfig>,
}

/// A channel's resilience settings and state.
#[derive(Debug)]
pub(crate) struct Resilience {
    pub(crate) retry: RetryConfig,
    hedge: Option<HedgeDelay>,
    hedge_attempts: u32,
    /// `[client.methods]`, by service.
    methods: NameMap<String, ServiceTables>,
    pub(crate) budget: Budget,
    pub(crate) outlier: OutlierConfig,
    pub(crate) outliers: Outliers,
}

impl Resilience {
    pub(crate) fn new(config: &ClientConfig) -> Resilience {
        let mut methods: NameMap<String, ServiceTables> = NameMap::default();
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
            hedge_attempts: config.hedge.max_attempts,
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

    /// How a call of `service`/`method` runs if it may run more than once; `None` if it must
    /// not (today's rule then: only a call never sent goes to another provider). Whether it
    /// may: the caller's own level, else `[client.methods]` (the method's table, then its
    /// service's), else what the method declares.
    pub(crate) fn plan(
        &self,
        service: &str,
        method: &str,
        caller: Option<Idempotency>,
        declared: Idempotency,
    ) -> Option<Plan> {
        let mut idempotent = declared.is_idempotent();
        let mut attempts = None;
        let mut hedge = self.hedge;
        if !self.methods.is_empty() {
            // The service's table, then the method's: what the method sets wins.
            for m in self.settings(service, method).into_iter().flatten().rev() {
                idempotent = m.idempotent.unwrap_or(idempotent);
                attempts = m.max_attempts.or(attempts);
                hedge = m.hedge_delay.unwrap_or(hedge);
            }
        }
        if let Some(level) = caller {
            idempotent = level.is_idempotent();
        }
        // A hedged method's attempts are the hedging's; the retries' otherwise.
        let default = match hedge {
            Some(_) => self.hedge_attempts,
            None => self.retry.max_attempts,
        };
        let attempts = attempts.unwrap_or(default);
        (idempotent && attempts > 1).then_some(Plan { attempts, hedge })
    }
}

/// Whether a failure of an attempt that reached its provider may be retried elsewhere: the
/// provider was unavailable (it is shutting down, its connection broke) or shed the call
/// because it is overloaded. Not a failure the provider passed on from its own calls
/// (`Status::is_downstream`), nor a refusal every provider would repeat.
pub(crate) fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => !status.is_downstream(),
        Code::ResourceExhausted => status.is_shed(),
        _ => false,
    }
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
        let plan = |s, m, declared| r.plan(s, m, None, declared);
        assert_eq!(plan("x.Y", "Get", Idempotency::NoSideEffects), three);
        assert_eq!(plan("x.Y", "Put", Idempotency::Unknown), None);
        assert_eq!(plan("a.S", "Any", Idempotency::Unknown), three);
        assert_eq!(plan("a.S", "Pay", Idempotency::Idempotent), None);
        assert_eq!(plan("b.T", "Get", Idempotency::Idempotent), None);
        assert_eq!(plan("b.T", "List", Idempotency::Idempotent), three);
        // The caller's own word wins over the config, both ways.
        let unknown = Some(Idempotency::Unknown);
        assert_eq!(r.plan("a.S", "Any", unknown, Idempotency::Idempotent), None);
        let yes = Some(Idempotency::Idempotent);
        assert_eq!(r.plan("a.S", "Pay", yes, Idempotency::Unknown), three);
    }

    #[test]
    fn a_hedged_method_has_the_hedging_attempts_and_markers_decide_retries() {
        let config = ClientConfig {
            retry: RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            },
            hedge: crate::config::HedgeConfig {
                delay: Some(HedgeDelay::Fixed(Duration::from_millis(5))),
                max_attempts: 3,
            },
            ..ClientConfig::default()
        };
        let r = Resilience::new(&config);
        let plan = r.plan("a.S", "Get", None, Idempotency::Idempotent).unwrap();
        assert_eq!(plan.attempts, 3);
        assert!(retryable(&Status::unavailable("going away")));
        assert!(retryable(&Status::overloaded("busy")));
        assert!(!retryable(&Status::resource_exhausted("request too large")));
        let mut downstream = Status::unavailable("my database is down");
        downstream
            .metadata_mut()
            .insert(crate::status::FAILURE_KEY, crate::status::DOWNSTREAM);
        assert!(!retryable(&downstream));
    }
}
