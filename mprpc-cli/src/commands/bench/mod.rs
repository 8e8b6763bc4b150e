//! `mprpc bench SERVICE/METHOD`: a load generator over one channel. Closed loop (the
//! default): N callers, each starting its next call when the last one is answered. Open loop
//! (`--rate R`, [`open_loop`]): R calls a second on a fixed schedule, whatever the answers.
//! Latency goes into HDR histograms, every call's and the successful calls', merged at the
//! end into a [`summary`]. A streaming method is driven by [`streaming`] instead: streams
//! kept open, their messages counted into a [`stream_summary`].

mod open_loop;
mod stream_summary;
mod streaming;
mod summary;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use mprpc::client::Channel;
use mprpc::{Body, Request};
use tokio::time::Instant;

use self::summary::{Summary, Tally};
use super::request::RequestArgs;
use crate::dynamic;
use crate::target::Target;

/// Options of `mprpc bench`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Load-test a method and print a latency summary",
    long_about = "Load-test a method and print a latency summary on stdout.\n\n\
        Closed loop (the default): --concurrency callers, each starting its next call as soon \
        as the last one is answered. Open loop (--rate R): R calls per second on a fixed \
        schedule, each sent whether or not the earlier ones were answered, so that a provider \
        that slows down or refuses calls still gets R a second; at most --max-outstanding are \
        unanswered at once, and a call due beyond that is not sent (counted as `not sent`). \
        Calls during --warmup are not counted.\n\n\
        A progress bar is drawn on stderr when stderr is a terminal. The summary is one \
        `key: value` per line (calls, calls/s, errors, `error <Code>: N` per code, ok and \
        ok/s, the goodput; p50, p90, p99, p999, max, mean in ms of every call, and the same \
        of the successful calls as `ok p50` ... when some failed), or one JSON object with \
        --json. Failed calls are counted, not fatal: the exit code is 0 once the run is over.\n\n\
        A streaming method (its kind comes from its descriptor) is driven by --concurrency \
        streams, each opening the next when it ends, and the summary counts messages \
        (messages, messages/s, bytes, MiB/s) and streams instead of calls: a \
        server-streaming method's streams each send the --data request and count the replies; \
        a client-streaming method's each send the --data message over and over until the end, \
        then half-close and wait (at most --timeout) for the reply, and count the requests; a \
        bidirectional method's send as a client stream does and count the replies. A stream \
        that fails counts as an error under its code. --rate is for unary methods only; \
        --timeout, when given, bounds each stream."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Concurrent callers (closed loop), or streams open at once (streaming method).
    #[arg(short, long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "rate")]
    pub concurrency: u32,
    /// How long to measure, after the warm-up.
    #[arg(short = 'D', long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Open loop: this many calls per second, whether or not the provider keeps up.
    #[arg(long, value_name = "CALLS_PER_S")]
    pub rate: Option<f64>,
    /// Open loop: the most calls unanswered at once; a call due beyond that is not sent.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), requires = "rate")]
    pub max_outstanding: u32,
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
    /// Calls per second (open loop), or none (closed loop).
    rate: Option<f64>,
}

/// What one call carries; shared by every caller.
struct Call {
    channel: Channel,
    service: String,
    method: String,
    request: Request<Body>,
}

/// Counters the progress bar reads while the run goes on.
#[derive(Default)]
struct Live {
    /// Calls, or a streaming method's messages.
    calls: AtomicU64,
    errors: AtomicU64,
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
    let kind = dynamic::kind(&prepared.method);
    if kind != mprpc::stream::MethodKind::Unary {
        if args.rate.is_some() {
            bail!(
                "--rate is for unary methods; `{}/{}` is {kind}",
                args.request.service(),
                args.request.method()
            );
        }
        return streaming::run(target, &args, prepared, kind).await;
    }
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
        rate: args.rate,
    };
    let live = Arc::new(Live::default());
    let progress = progress_bar(plan, live.clone(), "calls");
    let total = match args.rate {
        Some(rate) => {
            let max = args.max_outstanding as usize;
            open_loop::run(plan, rate, max, call.clone(), live, Tally::new()?).await
        }
        None => closed_loop(plan, args.concurrency, &call, live).await?,
    };
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

/// The closed loop: `concurrency` callers until the plan's end; their tallies merged.
async fn closed_loop(
    plan: Plan,
    concurrency: u32,
    call: &Arc<Call>,
    live: Arc<Live>,
) -> anyhow::Result<Tally> {
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let tally = Tally::new()?;
        callers.spawn(caller(plan, call.clone(), live.clone(), tally));
    }
    let mut total = Tally::new()?;
    while let Some(tally) = callers.join_next().await {
        total.merge(tally.context("a caller failed")?)?;
    }
    Ok(total)
}

/// One caller of the closed loop: its next call as soon as the last one is answered.
async fn caller(plan: Plan, call: Arc<Call>, live: Arc<Live>, mut tally: Tally) -> Tally {
    loop {
        let sent = Instant::now();
        if sent >= plan.end {
            break;
        }
        let outcome = call
            .channel
            .unary_raw(&call.service, &call.method, call.request.clone())
            .await;
        let answered = Instant::now();
        // Calls started before the warm-up ended are not counted.
        if sent < plan.measure_from {
            continue;
        }
        let error = outcome.err().map(|status| status.code());
        tally.record(answered.duration_since(sent), answered, error);
        live.calls.fetch_add(1, Ordering::Relaxed);
        if error.is_some() {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    tally
}

/// Draws the run's progress on stderr (when it is a terminal) until aborted; `unit` names
/// what [`Live::calls`] counts.
fn progress_bar(plan: Plan, live: Arc<Live>, unit: &'static str) -> tokio::task::JoinHandle<()> {
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
                    "{calls} {unit}, {errors} errors, {:.0} {unit}/s",
                    calls as f64 / measured
                )
            } else {
                format!("{calls} {unit}, {errors} errors")
            });
        }
    })
}
