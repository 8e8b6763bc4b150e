//! `mprpc bench SERVICE/METHOD`: a load generator. N callers share one channel; each is
//! closed-loop (the next call starts when the last one is answered) or, with `--rate`,
//! follows an open-loop schedule of R calls per second spread over the callers. Latency
//! goes into an HDR histogram per caller, merged at the end into a summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mprpc::client::Channel;
use mprpc::{Code, Request};
use serde::Serialize;
use tokio::time::Instant;

use super::request::RequestArgs;
use crate::target::Target;

/// The largest latency the histogram holds, in microseconds (an hour); longer is clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Options of `mprpc bench`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Load-test a method and print a latency summary",
    long_about = "Load-test a method and print a latency summary on stdout.\n\n\
        Closed loop (the default): --concurrency callers, each starting its next call as soon \
        as the last one is answered. Open loop (--rate R): R calls per second on a fixed \
        schedule, spread round-robin over the callers; a call a caller is late for (because its \
        previous call took too long) counts its latency from when it was due, so a provider \
        that falls behind shows it. Calls during --warmup are not \
        counted. Latency covers every counted call, failed ones included.\n\n\
        A progress bar is drawn on stderr when stderr is a terminal. The summary is one \
        `key: value` per line (calls, calls/s, errors, `error <Code>: N` per code, p50, p90, \
        p99, p999, max, mean in ms), or one JSON object with --json. Failed calls are counted, \
        not fatal: the exit code is 0 once the run is over."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Concurrent callers.
    #[arg(short, long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How long to measure, after the warm-up.
    #[arg(short = 'D', long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Open loop: this many calls per second in total, instead of as many as the callers can.
    #[arg(long, value_name = "CALLS_PER_S")]
    pub rate: Option<f64>,
    /// Run this long first without counting (connections, caches, JIT of the provider).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// When calls are made; shared by every caller.
#[derive(Clone, Copy)]
struct Plan {
    /// When the warm-up (or the run, without one) starts.
    start: Instant,
    /// When counting starts.
    measure_from: Instant,
    /// When no more calls start.
    end: Instant,
    /// Callers.
    concurrency: u32,
    /// Calls per second in total (open loop), or none (closed loop).
    rate: Option<f64>,
}

/// What one call carries; shared by every caller.
struct Call {
    channel: Channel,
    service: String,
    method: String,
    request: Request<Bytes>,
}

/// Counters the progress bar reads while the run goes on.
#[derive(Default)]
struct Live {
    calls: AtomicU64,
    errors: AtomicU64,
}

/// What one caller saw.
struct Tally {
    /// Latency of counted calls, in microseconds.
    latency: Histogram<u64>,
    /// Failed counted calls by status code.
    errors: BTreeMap<Code, u64>,
    /// When the last counted call was answered.
    last_reply: Option<Instant>,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .context("cannot create a latency histogram")?,
            errors: BTreeMap::new(),
            last_reply: None,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency
            .add(&other.latency)
            .context("cannot merge latency histograms")?;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.last_reply = self.last_reply.max(other.last_reply);
        Ok(())
    }
}

/// Runs `mprpc bench`.
pub(crate) async fn run(target: &Target, args: Args) -> anyhow::Result<()> {
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of calls per second");
        }
    }
    let prepared = args.request.prepare(target).await?;
    let call = Arc::new(Call {
        channel: prepared.calls,
        service: args.request.service().to_owned(),
        method: args.request.method().to_owned(),
        request: prepared.request,
    });

    let start = Instant::now();
    let plan = Plan {
        start,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        concurrency: args.concurrency,
        rate: args.rate,
    };
    let live = Arc::new(Live::default());
    let progress = progress_bar(plan, live.clone());
    let mut callers = tokio::task::JoinSet::new();
    for index in 0..args.concurrency {
        let tally = Tally::new()?;
        callers.spawn(caller(index, plan, call.clone(), live.clone(), tally));
    }
    let mut total = Tally::new()?;
    while let Some(tally) = callers.join_next().await {
        total.merge(tally.context("a caller failed")?)?;
    }
    progress.abort();
    // Wait for the bar to be cleared before the summary is printed.
    let _ = progress.await;

    let summary = Summary::new(&args, &call, plan, &total);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

/// One caller: closed loop, or its share of the open-loop schedule.
async fn caller(
    index: u32,
    plan: Plan,
    call: Arc<Call>,
    live: Arc<Live>,
    mut tally: Tally,
) -> Tally {
    let mut n: u64 = 0;
    loop {
        // When the call counts from; calls due before the warm-up ended are not counted.
        let due = match plan.rate {
            // Calls index, index + N, index + 2N, ... of the whole schedule.
            Some(rate) => {
                let slot = u64::from(index) + n * u64::from(plan.concurrency);
                let due = plan.start + Duration::from_secs_f64(slot as f64 / rate);
                if due >= plan.end {
                    break;
                }
                if Instant::now() < due {
                    // On time: latency counts from the send (the timer may wake us a
                    // little late, which is not the provider's doing).
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                } else {
                    // Behind schedule: the wait for this caller counts too.
                    due
                }
            }
            None => {
                let now = Instant::now();
                if now >= plan.end {
                    break;
                }
                now
            }
        };
        n += 1;
        let outcome = call
            .channel
            .unary_raw(&call.service, &call.method, call.request.clone())
            .await;
        let answered = Instant::now();
        if due < plan.measure_from {
            continue;
        }
        let micros = u64::try_from(answered.duration_since(due).as_micros()).unwrap_or(u64::MAX);
        tally
            .latency
            .saturating_record(micros.clamp(1, MAX_LATENCY_US));
        tally.last_reply = Some(answered);
        live.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(status) = outcome {
            *tally.errors.entry(status.code()).or_default() += 1;
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    tally
}

/// Draws the run's progress on stderr (when it is a terminal) until aborted.
fn progress_bar(plan: Plan, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
    let total = plan.end.duration_since(plan.start);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(u64::try_from(total.as_millis()).unwrap_or(u64::MAX))
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    tokio::spawn(async move {
        // Cleared when the task is aborted (and `bar` with it).
        struct Clear(ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let bar = Clear(bar);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let elapsed = now.duration_since(plan.start).min(total);
            bar.0
                .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            let calls = live.calls.load(Ordering::Relaxed);
            let errors = live.errors.load(Ordering::Relaxed);
            let measured = now
                .saturating_duration_since(plan.measure_from)
                .as_secs_f64();
            bar.0.set_message(if now < plan.measure_from {
                "warming up".to_owned()
            } else if measured > 0.0 {
                format!(
                    "{calls} calls, {errors} errors, {:.0} calls/s",
                    calls as f64 / measured
                )
            } else {
                format!("{calls} calls, {errors} errors")
            });
        }
    })
}

/// The result of a run, printed as `key: value` lines or as JSON.
#[derive(Debug, Serialize)]
struct Summary {
    /// `SERVICE/METHOD`.
    method: String,
    /// `closed` or `open`.
    mode: &'static str,
    /// Callers.
    concurrency: u32,
    /// Calls per second asked for (open loop).
    rate: Option<f64>,
    /// Seconds from the end of the warm-up to the last counted reply.
    duration_s: f64,
    /// Counted calls, failed ones included.
    calls: u64,
    /// `calls / duration_s`.
    calls_per_s: f64,
    /// Failed counted calls.
    errors: u64,
    /// Failed counted calls by status code name.
    errors_by_code: BTreeMap<String, u64>,
    /// Latency percentiles, in milliseconds.
    latency_ms: Latency,
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

impl Summary {
    fn new(args: &Args, call: &Call, plan: Plan, total: &Tally) -> Summary {
        let calls = total.latency.len();
        let errors: u64 = total.errors.values().sum();
        let last = total.last_reply.unwrap_or(plan.end).max(plan.end);
        let duration_s = last.duration_since(plan.measure_from).as_secs_f64();
        let ms = |micros: u64| micros as f64 / 1000.0;
        let q = |quantile: f64| {
            if calls == 0 {
                0.0
            } else {
                ms(total.latency.value_at_quantile(quantile))
            }
        };
        Summary {
            method: format!("{}/{}", call.service, call.method),
            mode: if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            concurrency: args.concurrency,
            rate: args.rate,
            duration_s,
            calls,
            calls_per_s: if duration_s > 0.0 {
                calls as f64 / duration_s
            } else {
                0.0
            },
            errors,
            errors_by_code: total
                .errors
                .iter()
                .map(|(code, n)| (code.as_str().to_owned(), *n))
                .collect(),
            latency_ms: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: if calls == 0 {
                    0.0
                } else {
                    ms(total.latency.max())
                },
                mean: if calls == 0 {
                    0.0
                } else {
                    total.latency.mean() / 1000.0
                },
            },
        }
    }

    fn text(&self) -> String {
        let mut out = format!("method: {}\n", self.method);
        match self.rate {
            Some(rate) => out.push_str(&format!(
                "mode: open loop, rate {rate} calls/s, concurrency {}\n",
                self.concurrency
            )),
            None => out.push_str(&format!(
                "mode: closed loop, concurrency {}\n",
                self.concurrency
            )),
        }
        out.push_str(&format!("duration: {:.3} s\n", self.duration_s));
        out.push_str(&format!("calls: {}\n", self.calls));
        out.push_str(&format!("calls/s: {:.1}\n", self.calls_per_s));
        out.push_str(&format!("errors: {}\n", self.errors));
        for (code, n) in &self.errors_by_code {
            out.push_str(&format!("error {code}: {n}\n"));
        }
        let l = &self.latency_ms;
        for (name, value) in [
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p999", l.p999),
            ("max", l.max),
            ("mean", l.mean),
        ] {
            out.push_str(&format!("{name}: {value:.3} ms\n"));
        }
        out
    }
}
