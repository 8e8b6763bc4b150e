//! The `[server.adaptive_limit]` section: a concurrency limit that follows the provider's
//! latency (see `mprpc::server::layer`'s `adaptive` module and `docs/RESILIENCE.md`).
//!
//! The table's presence turns the limit on (`enabled = false` keeps the table and turns it
//! off); without it a provider has only its static limits, `max_concurrent_calls` and
//! `max_calls_per_connection`, which still apply when the adaptive limit is on.

use std::time::Duration;

use serde::Deserialize;

use super::check::Check;
use super::ConfigError;

/// The adaptive concurrency limit's settings. Every key has a default, so `[server.adaptive_limit]`
/// alone turns it on with them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveLimitConfig {
    /// Whether the limit is applied. Default true (the table's presence turns it on).
    pub enabled: bool,
    /// The floor: the limit never goes below this many calls in flight, whatever the
    /// latency says. Set it to at least the calls the provider must run at once to keep its
    /// cores busy. At least 1. Default 8.
    pub min_limit: usize,
    /// The ceiling: the limit never goes above this, however low the latency stays. From
    /// `min_limit` up. Default 1,000. (`max_concurrent_calls` applies too.)
    pub max_limit: usize,
    /// The limit before the first measurement, from `min_limit` to `max_limit`. Default 32.
    pub initial_limit: usize,
    /// The shortest sampling window: the limit is recomputed once per window, from the mean
    /// latency of the calls that finished in it. More than zero. Default 100 ms.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The fewest finished calls a window needs; a window is extended until it has them, so
    /// that a quiet provider's limit moves on evidence, not on one call. At least 1.
    /// Default 50.
    pub min_samples: u32,
    /// How far the mean latency may rise above the no-load latency, as a factor, before the
    /// limit comes down. At least 1. Default 1.5.
    pub tolerance: f64,
    /// ... and at least this much above it, whatever the factor says: a queue that adds less
    /// than this to a call is not worth shedding for. This keeps very fast methods (tens of
    /// microseconds, where scheduling noise is larger than the call) from being limited by
    /// noise. Default 1 ms; may be zero.
    #[serde(with = "humantime_serde")]
    pub slack: Duration,
    /// How often the no-load latency is measured afresh: the limit is halved for two
    /// windows, and the second window's mean latency becomes the new no-load latency, up or
    /// down (only down if the halving cut the latency: then it was a queue's). More than
    /// zero. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
}

impl Default for AdaptiveLimitConfig {
    fn default() -> Self {
        AdaptiveLimitConfig {
            enabled: true,
            min_limit: 8,
            max_limit: 1_000,
            initial_limit: 32,
            window: Duration::from_millis(100),
            min_samples: 50,
            tolerance: 1.5,
            slack: Duration::from_millis(1),
            probe_interval: Duration::from_secs(10),
        }
    }
}

impl AdaptiveLimitConfig {
    /// Checks every value against its documented range.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let key = |name: &str| format!("server.adaptive_limit.{name}");
        check.limit(self.min_limit, &key("min_limit"))?;
        check.limit(self.max_limit, &key("max_limit"))?;
        check.that(
            self.min_limit <= self.max_limit,
            &key("max_limit"),
            &format!("{} is below min_limit ({})", self.max_limit, self.min_limit),
        )?;
        check.that(
            (self.min_limit..=self.max_limit).contains(&self.initial_limit),
            &key("initial_limit"),
            &format!(
                "{} is out of range: must be from min_limit ({}) to max_limit ({})",
                self.initial_limit, self.min_limit, self.max_limit
            ),
        )?;
        check.positive(self.window, &key("window"))?;
        check.that(
            self.min_samples >= 1,
            &key("min_samples"),
            "must be at least 1",
        )?;
        check.that(
            self.tolerance.is_finite() && self.tolerance >= 1.0,
            &key("tolerance"),
            "must be a number of at least 1 (a factor on the no-load latency)",
        )?;
        check.positive(self.probe_interval, &key("probe_interval"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::invalid_key;
    use crate::config::Config;

    #[test]
    fn the_table_alone_turns_it_on_with_the_defaults() {
        let c = Config::from_toml_str("[server.adaptive_limit]\n", "a.toml").unwrap();
        assert_eq!(
            c.server.adaptive_limit,
            Some(AdaptiveLimitConfig::default())
        );
        assert!(AdaptiveLimitConfig::default().enabled);
        let off = Config::from_toml_str("", "a.toml").unwrap();
        assert_eq!(off.server.adaptive_limit, None, "off without the table");
    }

    #[test]
    fn every_key_parses() {
        let text = "[server.adaptive_limit]\nenabled = false\nmin_limit = 2\nmax_limit = 64\n\
                    initial_limit = 4\nwindow = \"50ms\"\nmin_samples = 10\ntolerance = 2.0\n\
                    slack = \"0s\"\nprobe_interval = \"1min\"\n";
        let c = Config::from_toml_str(text, "a.toml").unwrap();
        assert_eq!(
            c.server.adaptive_limit,
            Some(AdaptiveLimitConfig {
                enabled: false,
                min_limit: 2,
                max_limit: 64,
                initial_limit: 4,
                window: Duration::from_millis(50),
                min_samples: 10,
                tolerance: 2.0,
                slack: Duration::ZERO,
                probe_interval: Duration::from_secs(60),
            })
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (body, key) in [
            ("min_limit = 0", "min_limit"),
            (
                "max_limit = 4\nmin_limit = 8\ninitial_limit = 4",
                "max_limit",
            ),
            ("initial_limit = 2", "initial_limit"),
            ("initial_limit = 2000", "initial_limit"),
            ("window = \"0s\"", "window"),
            ("min_samples = 0", "min_samples"),
            ("tolerance = 0.9", "tolerance"),
            ("tolerance = nan", "tolerance"),
            ("probe_interval = \"0s\"", "probe_interval"),
        ] {
            let text = format!("[server.adaptive_limit]\n{body}\n");
            let got = invalid_key(Config::from_toml_str(&text, "a.toml"));
            assert_eq!(got, format!("server.adaptive_limit.{key}"), "{body}");
        }
        let unknown = Config::from_toml_str("[server.adaptive_limit]\nlimit = 3\n", "a.toml");
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `limit`"),
            "deny_unknown_fields"
        );
    }
}
