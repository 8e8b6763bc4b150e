//! The load: closed-loop tasks on a client runtime, each issuing one call at a time.
//!
//! For one setting (payload size, calls in flight) the runner spawns `concurrency` tasks that
//! share one [`Caller`]. Each task loops: send a call, wait for its reply, send the next, so
//! exactly `concurrency` calls are in flight at any moment (a closed loop: a slower server
//! means fewer calls, never a growing queue). Calls that complete during the warm-up are
//! thrown away; calls that complete inside the measurement window are counted, and the
//! latency of each successful one (from just before it is sent to just after its reply is
//! decoded) goes into a per-task [`Histogram`] in nanoseconds. Failed calls are counted by
//! kind and kept out of the latency figures. Tasks stop sending once the window closes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::target::Caller;

/// Largest latency the histograms track: 60 s, in nanoseconds. Longer calls are clamped.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// One setting to measure.
#[derive(Clone, Debug)]
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

/// What one setting measured.
#[derive(Debug)]
pub struct Measurement {
    /// The setting measured.
    pub setting: Setting,
    /// Successful calls completed inside the window.
    pub calls: u64,
    /// Latency of those calls, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Failed calls completed inside the window, by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Measurement {
    /// Successful calls per second over the window.
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.setting.duration.as_secs_f64()
    }

    /// Failed calls in the window.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// An empty latency histogram (nanoseconds, 3 significant figures).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// A multi-threaded tokio runtime with `threads` workers named `name`. With `cpu`, every
/// thread of the runtime (workers and blocking threads) is pinned to that CPU.
pub fn runtime(name: &str, threads: usize, cpu: Option<usize>) -> std::io::Result<Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(threads.max(1))
        .thread_name(name)
        .enable_all();
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).map_err(std::io::Error::from)?;
        let name = name.to_owned();
        builder.on_thread_start(move || {
            if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
                eprintln!("warning: cannot pin a thread of {name} to CPU {cpu}: {e}");
            }
        });
    }
    builder.build()
}

/// Measures one setting: warm-up, then the window, on `runtime`, through `caller`.
pub fn measure<C: Caller>(runtime: &Runtime, caller: &C, setting: &Setting) -> Measurement {
    let start = Instant::now();
    let from = start + setting.warmup;
    let to = from + setting.duration;
    let tasks: Vec<_> = (0..setting.concurrency.max(1))
        .map(|_| runtime.spawn(load(caller.clone(), vec![0xA5; setting.payload], from, to)))
        .collect();
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
    Measurement {
        setting: setting.clone(),
        calls: total.latency.len(),
        latency: total.latency,
        errors: total.errors,
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
async fn load<C: Caller>(caller: C, payload: Vec<u8>, from: Instant, to: Instant) -> Tally {
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
