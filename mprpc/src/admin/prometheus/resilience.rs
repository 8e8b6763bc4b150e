//! The consumer's resilience families of `/metrics`: retries, hedges and budget refusals per
//! method, and ejected providers per address.

use super::Exposition;
use crate::metrics::{MetricsSnapshot, ResilienceCounts, Side};

/// A counter family of a method's resilience counts: name, help, and which count.
type Family = (&'static str, &'static str, fn(&ResilienceCounts) -> u64);

impl Exposition {
    /// `mprpc_client_retries_total`, `mprpc_client_hedges_total`,
    /// `mprpc_client_retry_budget_exhausted_total`, `mprpc_client_provider_ejected` and
    /// `mprpc_client_provider_ejections_total`.
    pub(super) fn resilience(&mut self, snapshot: &MetricsSnapshot) {
        let families: [Family; 3] = [
            (
                "mprpc_client_retries_total",
                "Attempts after the first, made because an attempt failed.",
                |c| c.retries,
            ),
            (
                "mprpc_client_hedges_total",
                "Attempts made because the earlier ones were slow (hedging).",
                |c| c.hedges,
            ),
            (
                "mprpc_client_retry_budget_exhausted_total",
                "Retries and hedges not made because the retry budget was spent.",
                |c| c.budget_exhausted,
            ),
        ];
        for (name, help, value) in families {
            self.family(name, "counter", help);
            for m in snapshot.methods.iter().filter(|m| m.side == Side::Client) {
                let labels = [
                    ("service", m.service.as_str()),
                    ("method", m.method.as_str()),
                ];
                self.sample(name, &labels, value(&m.resilience));
            }
        }
        self.family(
            "mprpc_client_provider_ejected",
            "gauge",
            "1 while outlier detection keeps the provider out of the balancer.",
        );
        for (address, health) in &snapshot.provider_health {
            let value = u64::from(health.ejected);
            self.sample(
                "mprpc_client_provider_ejected",
                &[("address", address)],
                value,
            );
        }
        self.family(
            "mprpc_client_provider_ejections_total",
            "counter",
            "Times outlier detection ejected the provider.",
        );
        for (address, health) in &snapshot.provider_health {
            let labels = [("address", address.as_str())];
            self.sample(
                "mprpc_client_provider_ejections_total",
                &labels,
                health.ejections,
            );
        }
    }
}
