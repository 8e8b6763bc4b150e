//! `/metrics`: a [`MetricsSnapshot`] in the Prometheus text exposition format, version 0.0.4.
//!
//! | family | type | labels |
//! | --- | --- | --- |
//! | `mprpc_calls_total` | counter | `side`, `service`, `method`, `code` (one series per code seen) |
//! | `mprpc_call_duration_seconds` | histogram | `side`, `service`, `method` |
//! | `mprpc_calls_in_flight` | gauge | `side`, `service`, `method` |
//! | `mprpc_rejected_calls_total` | counter | `code` (calls refused before reaching a method) |
//! | `mprpc_adaptive_concurrency_limit` | gauge | (the provider's adaptive limit; no sample without `[server.adaptive_limit]`) |
//! | `mprpc_shed_calls_total` | counter | (calls the adaptive limit refused; also in `mprpc_rejected_calls_total`) |
//! | `mprpc_connections` | gauge | `side` |
//! | `mprpc_read_pauses_total` | counter | |
//! | `mprpc_write_timeouts_total` | counter | `side` |
//! | `mprpc_queued_bytes` | gauge | (bytes the provider's connections hold for clients) |
//! | `mprpc_protocol_errors_total` | counter | `kind` (connections closed for a protocol error) |
//! | `mprpc_registry_up` | gauge | `state`: 1 for the current state, 0 for the others |
//! | `mprpc_registry_refused_nodes_total` | counter | `reason` (provider nodes a consumer would not use: `world_writable`, `open_parent`, `unreadable`) |
//! | `mprpc_log_dropped_lines_total` | counter | |
//! | `mprpc_uptime_seconds` | gauge | |
//! | `mprpc_known_providers` | gauge | `service` (providers this process's channels know) |
//! | `mprpc_client_retries_total` | counter | `service`, `method` (attempts after a failed one) |
//! | `mprpc_client_hedges_total` | counter | `service`, `method` (attempts after a slow one) |
//! | `mprpc_client_retry_budget_exhausted_total` | counter | `service`, `method` |
//! | `mprpc_client_provider_ejected` | gauge | `address` (1 while ejected) |
//! | `mprpc_client_provider_ejections_total` | counter | `address` |
//!
//! Label values are escaped as the format asks (backslash, double quote, newline).

mod resilience;

use std::fmt::{Display, Write};

use crate::metrics::{MetricsSnapshot, Side, BUCKETS_US};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry states `mprpc_registry_up` always has a series for (`none`: no registry).
const REGISTRY_STATES: [&str; 5] = ["connected", "connecting", "disconnected", "static", "none"];

/// Renders `snapshot`, `registry_state` (see [`Registry::state`](crate::registry::Registry::state),
/// `none` without a registry) and the process's dropped log lines
/// ([`logging::dropped_lines`](crate::logging::dropped_lines)), in the text format.
pub fn render(snapshot: &MetricsSnapshot, registry_state: &str) -> String {
    let mut out = Exposition(String::with_capacity(4096));
    out.calls_total(snapshot);
    out.call_durations(snapshot);
    out.calls_in_flight(snapshot);
    out.stream_messages(snapshot);
    out.rejected_calls(snapshot);
    out.adaptive_limit(snapshot);
    out.connection_families(snapshot);
    out.registry_up(registry_state);
    out.refused_nodes(snapshot);
    out.process_families(snapshot);
    out.known_providers(snapshot);
    out.resilience(snapshot);
    out.0
}

/// One writer per family, or per few families, in the order [`render`] writes them.
impl Exposition {
    /// `mprpc_calls_total`: one series per method, side and status code seen.
    fn calls_total(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_calls_total",
            "counter",
            "Calls finished, by side, service, method and status code.",
        );
        for m in &snapshot.methods {
            for (code, n) in &m.by_code {
                self.sample(
                    "mprpc_calls_total",
                    &[
                        ("side", m.side.as_str()),
                        ("service", &m.service),
                        ("method", &m.method),
                        ("code", code.as_str()),
                    ],
                    n,
                );
            }
        }
    }

    /// `mprpc_stream_messages_total`: stream messages per method, side and direction.
    fn stream_messages(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_stream_messages_total",
            "counter",
            "Messages of streaming calls, by side, service, method and direction (received, sent).",
        );
        for m in &snapshot.methods {
            let counts = [("received", m.messages_received), ("sent", m.messages_sent)];
            for (direction, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
                self.sample(
                    "mprpc_stream_messages_total",
                    &[
                        ("side", m.side.as_str()),
                        ("service", &m.service),
                        ("method", &m.method),
                        ("direction", direction),
                    ],
                    n,
                );
            }
        }
    }

    /// `mprpc_call_duration_seconds`: the cumulative buckets, sum and count of each method.
    fn call_durations(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_call_duration_seconds",
            "histogram",
            "Latency of finished calls, in seconds.",
        );
        for m in &snapshot.methods {
            let labels = [
                ("side", m.side.as_str()),
                ("service", m.service.as_str()),
                ("method", m.method.as_str()),
            ];
            let mut cumulative = 0u64;
            for (bound, n) in BUCKETS_US.iter().zip(&m.latency.counts) {
                cumulative += n;
                let le = (*bound as f64 / 1e6).to_string();
                self.sample(
                    "mprpc_call_duration_seconds_bucket",
                    &with(&labels, ("le", &le)),
                    cumulative,
                );
            }
            // `+Inf` is every observation, whatever the per-bucket counts add up to.
            self.sample(
                "mprpc_call_duration_seconds_bucket",
                &with(&labels, ("le", "+Inf")),
                m.latency.count,
            );
            self.sample(
                "mprpc_call_duration_seconds_sum",
                &labels,
                m.latency.sum.as_secs_f64(),
            );
            self.sample(
                "mprpc_call_duration_seconds_count",
                &labels,
                m.latency.count,
            );
        }
    }

    /// `mprpc_calls_in_flight`: calls started and not finished, per method and side.
    fn calls_in_flight(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_calls_in_flight",
            "gauge",
            "Calls started and not finished yet.",
        );
        for m in &snapshot.methods {
            self.sample(
                "mprpc_calls_in_flight",
                &[
                    ("side", m.side.as_str()),
                    ("service", &m.service),
                    ("method", &m.method),
                ],
                m.in_flight,
            );
        }
    }

    /// `mprpc_rejected_calls_total`: calls refused before reaching a method, by code.
    fn rejected_calls(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_rejected_calls_total",
            "counter",
            "Calls refused before reaching a method (unknown service or method, a limit, a caller that gave up or left), by status code.",
        );
        for (code, n) in &snapshot.rejected {
            self.sample("mprpc_rejected_calls_total", &[("code", code.as_str())], n);
        }
    }

    /// `mprpc_adaptive_concurrency_limit` and `mprpc_shed_calls_total`.
    fn adaptive_limit(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_adaptive_concurrency_limit",
            "gauge",
            "Calls the provider admits at once under its adaptive limit ([server.adaptive_limit]), which follows its latency.",
        );
        if let Some(limit) = snapshot.adaptive_limit {
            self.sample("mprpc_adaptive_concurrency_limit", &[], limit);
        }
        self.family(
            "mprpc_shed_calls_total",
            "counter",
            "Calls the adaptive limit refused with ResourceExhausted (also counted in mprpc_rejected_calls_total).",
        );
        self.sample("mprpc_shed_calls_total", &[], snapshot.shed_calls);
    }

    /// The connection families: `mprpc_connections`, `mprpc_read_pauses_total`,
    /// `mprpc_queued_bytes`, `mprpc_protocol_errors_total` and `mprpc_write_timeouts_total`.
    fn connection_families(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_connections",
            "gauge",
            "Open connections: to this provider (server) and from this process's channels (client).",
        );
        for (side, n) in [
            (Side::Server, snapshot.server_connections),
            (Side::Client, snapshot.client_connections),
        ] {
            self.sample("mprpc_connections", &[("side", side.as_str())], n);
        }

        self.family(
            "mprpc_read_pauses_total",
            "counter",
            "Times the provider stopped reading a connection whose client had not read max_unwritten_bytes of replies.",
        );
        self.sample("mprpc_read_pauses_total", &[], snapshot.read_pauses);

        self.family(
            "mprpc_queued_bytes",
            "gauge",
            "Bytes the provider's connections have queued for their clients and not yet written.",
        );
        self.sample("mprpc_queued_bytes", &[], snapshot.server_queued_bytes);

        self.family(
            "mprpc_protocol_errors_total",
            "counter",
            "Connections the provider closed for a protocol error, by kind.",
        );
        for (kind, n) in &snapshot.protocol_errors {
            self.sample("mprpc_protocol_errors_total", &[("kind", kind)], n);
        }

        self.family(
            "mprpc_write_timeouts_total",
            "counter",
            "Connections closed because the peer accepted no bytes for write_timeout.",
        );
        for (side, n) in [
            (Side::Server, snapshot.server_write_timeouts),
            (Side::Client, snapshot.client_write_timeouts),
        ] {
            self.sample("mprpc_write_timeouts_total", &[("side", side.as_str())], n);
        }
    }

    /// `mprpc_registry_up`: 1 for `registry_state`, 0 for each other state of
    /// [`REGISTRY_STATES`].
    fn registry_up(&mut self, registry_state: &str) {
        self.family(
            "mprpc_registry_up",
            "gauge",
            "1 for the registry's current connection state, 0 for the others (none: no registry).",
        );
        let mut states = REGISTRY_STATES.to_vec();
        if !states.contains(&registry_state) {
            states.push(registry_state);
        }
        for state in states {
            let up = u8::from(state == registry_state);
            self.sample("mprpc_registry_up", &[("state", state)], up);
        }
    }

    /// `mprpc_registry_refused_nodes_total`: registry nodes refused, by reason.
    fn refused_nodes(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_registry_refused_nodes_total",
            "counter",
            "Provider nodes a consumer refused to use (each version of a node once), by reason.",
        );
        for (reason, n) in &snapshot.registry_refused_nodes {
            self.sample(
                "mprpc_registry_refused_nodes_total",
                &[("reason", reason)],
                n,
            );
        }
    }

    /// The process families: `mprpc_log_dropped_lines_total` and `mprpc_uptime_seconds`.
    fn process_families(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_log_dropped_lines_total",
            "counter",
            "Log lines dropped because the log writer could not keep up.",
        );
        self.sample(
            "mprpc_log_dropped_lines_total",
            &[],
            crate::logging::dropped_lines(),
        );

        self.family(
            "mprpc_uptime_seconds",
            "gauge",
            "Seconds since the counters were created.",
        );
        self.sample("mprpc_uptime_seconds", &[], snapshot.uptime.as_secs_f64());
    }

    /// `mprpc_known_providers`: how many providers the channels know, per service.
    fn known_providers(&mut self, snapshot: &MetricsSnapshot) {
        self.family(
            "mprpc_known_providers",
            "gauge",
            "Providers this process's channels currently know, by service.",
        );
        for (service, instances) in &snapshot.providers {
            self.sample(
                "mprpc_known_providers",
                &[("service", service)],
                instances.len(),
            );
        }
    }
}

/// `labels` and one more.
fn with<'a>(labels: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut all = labels.to_vec();
    all.push(extra);
    all
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that open a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label_value(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
