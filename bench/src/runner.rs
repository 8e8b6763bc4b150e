//! The load: closed-loop tasks on the client runtime, each issuing one call at a time.
//!
//! For one setting (payload size, calls in flight) the runner spawns `concurrency` tasks over
//! the given callers (task `i` uses caller `i % callers`, so the calls in flight are spread
//! evenly over the connections). Each task loops: send a call, wait for its reply, send the
//! next, so exactly `concurrency` calls are in flight at any moment (a closed loop: a slower
//! server means fewer calls, never a growing queue). Calls that complete during the warm-up
//! are thrown away; calls that complete inside the measurement window are counted, and the
//! latency of each successful one (from just before it is sent to just after its reply is
//! decoded) goes into a per-task [`Histogram`] in nanoseconds. Failed calls are counted by
//! kind and kept out of the latency figures. Tasks stop sending once the window closes.
//!
//! A probe (a plain thread, off the runtime) is called at the start and at the end of the
//! window, to read CPU counters exactly over the window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::targets::Caller;

/// Largest latency the histograms track: 60 s, in nanoseconds. Longer calls are clamped.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// One setting to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Bytes of payload in each request (and so in each reply).
    pub payload: usize,
    /// Closed-loop tasks, that is calls in flight at once.
    pub concurrency: usize,
    /// Load before measuring starts, not recorded.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
}

/// What the load measured in one window.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Successful calls completed inside the window.
    pub calls: u64,
    /// The window's length.
    pub window: Duration,
    /// Latency of those calls, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Failed calls completed inside the window, by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Measurement {
    /// A measurement of nothing but one error (a point that could not be set up).
    pub fn failed(window: Duration, error: String) -> Measurement {
        Measurement {
            calls: 0,
            window,
            latency: new_histogram(),
            errors: BTreeMap::from([(error, 1)]),
        }
    }

    /// Successful calls per second over the window.
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Failed calls in the window.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The latency at quantile `q` in nanoseconds, if any call succeeded.
    pub fn latency_ns(&self, q: f64) -> Option<u64> {
        (self.calls > 0).then(|| self.latency.value_at_quantile(q))
    }
}

/// An empty latency histogram (nanoseconds, 3 significant figures).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// A multi-threaded tokio runtime with `threads` workers named `name`.
pub fn runtime(name: &str, threads: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all()
        .build()
}

/// Measures one setting through `callers` on `runtime`: warm-up, then the window. `probe` is
/// called from another thread when the window opens and when it closes; its two results
/// come back with the measurement.
pub fn measure<C, P, S>(
    runtime: &Runtime,
    callers: &[C],
    setting: &Setting,
    probe: P,
) -> (Measurement, (S, S))
where
    C: Caller,
    P: Fn() -> S + Sync,
    S: Send,
{
    assert!(!callers.is_empty(), "at least one caller");
    let start = Instant::now();
    let from = start + setting.warmup;
    let to = from + setting.duration;
    let payload = bytes::Bytes::from(vec![0xA5u8; setting.payload]);
    let tasks: Vec<_> = (0..setting.concurrency.max(1))
        .map(|i| {
            let caller = callers[i % callers.len()].clone();
            runtime.spawn(load(caller, payload.clone(), from, to))
        })
        .collect();
    let (total, probes) = std::thread::scope(|scope| {
        let prober = scope.spawn(|| {
            sleep_until(from);
            let first = probe();
            sleep_until(to);
            (first, probe())
        });
        let mut total = Tally::new();
        runtime.block_on(async {
            for task in tasks {
                match task.await {
                    Ok(tally) => total.merge(tally),
                    Err(e) => {
                        *total
                            .errors
                            .entry(format!("load task failed: {e}"))
                            .or_default() += 1
                    }
                }
            }
        });
        (
            total,
            prober.join().expect("the probe thread does not panic"),
        )
    });
    let measurement = Measurement {
        calls: total.latency.len(),
        window: setting.duration,
        latency: total.latency,
        errors: total.errors,
    };
    (measurement, probes)
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

/// What one load task saw.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: new_histogram(),
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds merge");
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// One closed-loop task: a call, its reply, the next call, until `to`.
async fn load<C: Caller>(caller: C, payload: bytes::Bytes, from: Instant, to: Instant) -> Tally {
    let mut tally = Tally::new();
    loop {
        let sent = Instant::now();
        if sent >= to {
            break;
        }
        let outcome = caller.call(&payload).await;
        let done = Instant::now();
        if done < from || done > to {
            continue;
        }
        match outcome {
            Ok(()) => {
                let ns = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
            }
            Err(kind) => *tally.errors.entry(kind).or_default() += 1,
        }
    }
    tally
}
