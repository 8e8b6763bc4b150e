//! What a bench run counted ([`Tally`], one per caller, merged at the end) and the summary
//! printed from it ([`Summary`]): `key: value` lines, or one JSON object.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use mprpc::Code;
use serde::Serialize;
use tokio::time::Instant;

use super::{Args, Call, Plan};

/// The largest latency the histograms hold, in microseconds (an hour); longer is clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What one caller (or the open loop's dispatcher) saw.
pub(super) struct Tally {
    /// Latency of counted calls, in microseconds.
    latency: Histogram<u64>,
    /// Latency of the counted calls that succeeded.
    ok_latency: Histogram<u64>,
    /// Failed counted calls by status code.
    errors: BTreeMap<Code, u64>,
    /// Counted calls the open loop did not send: too many were outstanding when they were due.
    pub(super) not_sent: u64,
    /// When the last counted call was answered.
    last_reply: Option<Instant>,
}

impl Tally {
    pub(super) fn new() -> anyhow::Result<Tally> {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .context("cannot create a latency histogram")
        };
        Ok(Tally {
            latency: histogram()?,
            ok_latency: histogram()?,
            errors: BTreeMap::new(),
            not_sent: 0,
            last_reply: None,
        })
    }

    /// Counts a call answered at `answered` after `latency`, failed with `error` or not.
    pub(super) fn record(&mut self, latency: Duration, answered: Instant, error: Option<Code>) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        self.latency.saturating_record(micros);
        match error {
            Some(code) => *self.errors.entry(code).or_default() += 1,
            None => self.ok_latency.saturating_record(micros),
        }
        self.last_reply = self.last_reply.max(Some(answered));
    }

    pub(super) fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("cannot merge latency histograms")?;
        self.ok_latency
            .add(&other.ok_latency)
            .context("cannot merge latency histograms")?;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.not_sent += other.not_sent;
        self.last_reply = self.last_reply.max(other.last_reply);
        Ok(())
    }
}

/// The result of a run, printed as `key: value` lines or as JSON.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    /// `SERVICE/METHOD`.
    method: String,
    /// `closed` or `open`.
    mode: &'static str,
    /// Callers (closed loop).
    concurrency: Option<u32>,
    /// Calls per second asked for (open loop).
    rate: Option<f64>,
    /// The most calls the open loop keeps outstanding.
    max_outstanding: Option<u32>,
    /// Seconds measured: the closed loop's from the end of the warm-up to the last counted
    /// reply, the open loop's schedule after the warm-up.
    duration_s: f64,
    /// Counted calls, failed ones included.
    calls: u64,
    /// `calls / duration_s`.
    calls_per_s: f64,
    /// Calls the open loop did not send because `max_outstanding` were outstanding.
    not_sent: u64,
    /// Failed counted calls.
    errors: u64,
    /// Failed counted calls by status code name.
    errors_by_code: BTreeMap<String, u64>,
    /// Counted calls that succeeded.
    ok: u64,
    /// `ok / duration_s`: the goodput.
    ok_per_s: f64,
    /// Latency percentiles of every counted call, in milliseconds.
    latency_ms: Latency,
    /// Latency percentiles of the counted calls that succeeded, in milliseconds.
    ok_latency_ms: Latency,
}

/// Latency percentiles, in milliseconds (0 when nothing was counted).
#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if histogram.is_empty() {
            return Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        let q = |quantile: f64| ms(histogram.value_at_quantile(quantile));
        Latency {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }

    /// `p50: 0.123 ms` and so on, each name after `prefix`.
    fn lines(&self, prefix: &str, out: &mut String) {
        for (name, value) in [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p999", self.p999),
            ("max", self.max),
            ("mean", self.mean),
        ] {
            out.push_str(&format!("{prefix}{name}: {value:.3} ms\n"));
        }
    }
}

impl Summary {
    pub(super) fn new(args: &Args, call: &Call, plan: Plan, total: &Tally) -> Summary {
        let calls = total.latency.len();
        let errors: u64 = total.errors.values().sum();
        let ok = total.ok_latency.len();
        let duration_s = match plan.rate {
            Some(_) => plan.end.duration_since(plan.measure_from).as_secs_f64(),
            None => {
                let last = total.last_reply.unwrap_or(plan.end).max(plan.end);
                last.duration_since(plan.measure_from).as_secs_f64()
            }
        };
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let open = args.rate.is_some();
        Summary {
            method: format!("{}/{}", call.service, call.method),
            mode: if open { "open" } else { "closed" },
            concurrency: (!open).then_some(args.concurrency),
            rate: args.rate,
            max_outstanding: open.then_some(args.max_outstanding),
            duration_s,
            calls,
            calls_per_s: per_s(calls),
            not_sent: total.not_sent,
            errors,
            errors_by_code: total
                .errors
                .iter()
                .map(|(code, n)| (code.as_str().to_owned(), *n))
                .collect(),
            ok,
            ok_per_s: per_s(ok),
            latency_ms: Latency::of(&total.latency),
            ok_latency_ms: Latency::of(&total.ok_latency),
        }
    }

    /// One `key: value` per line. The `ok p50` ... lines (the successful calls' latency) are
    /// there when some calls failed; otherwise they are the lines above them.
    pub(super) fn text(&self) -> String {
        let mut out = format!("method: {}\n", self.method);
        match (self.rate, self.max_outstanding, self.concurrency) {
            (Some(rate), Some(max), _) => out.push_str(&format!(
                "mode: open loop, rate {rate} calls/s, at most {max} outstanding\n"
            )),
            (_, _, concurrency) => out.push_str(&format!(
                "mode: closed loop, concurrency {}\n",
                concurrency.unwrap_or_default()
            )),
        }
        out.push_str(&format!("duration: {:.3} s\n", self.duration_s));
        out.push_str(&format!("calls: {}\n", self.calls));
        out.push_str(&format!("calls/s: {:.1}\n", self.calls_per_s));
        if self.mode == "open" {
            out.push_str(&format!("not sent: {}\n", self.not_sent));
        }
        out.push_str(&format!("errors: {}\n", self.errors));
        for (code, n) in &self.errors_by_code {
            out.push_str(&format!("error {code}: {n}\n"));
        }
        out.push_str(&format!("ok: {}\n", self.ok));
        out.push_str(&format!("ok/s: {:.1}\n", self.ok_per_s));
        self.latency_ms.lines("", &mut out);
        if self.errors > 0 {
            self.ok_latency_ms.lines("ok ", &mut out);
        }
        out
    }
}
