//! The side-by-side run: which points to measure, and measuring each in fresh processes.
//!
//! A point is a target, a payload size, a number of calls in flight and a number of
//! connections; a target is measured at every point of the matrix, or only where its goals
//! compare it ([`Coverage`], as the default run's extra targets are). For every repetition of every point the driver starts a fresh server process
//! (pinned to one CPU), connects the client connections from its own runtime (pinned to
//! another CPU), runs the closed-loop load (warm-up, then the window), reads both sides' CPU
//! time over the window and the server's peak memory, and stops the server. Repetitions are
//! the outer loop, so that a passing disturbance on the machine hits every target alike
//! rather than all repetitions of one.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::certs::Certs;
use crate::goals;
use crate::machine::{self, MachineCpu};
use crate::process::{ServerProcess, ServerSpec};
use crate::runner::{self, Measurement, Setting};
use crate::targets::{Target, TargetKind};
use crate::with_target;

/// Where a target of the run is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// At every point of the matrix.
    Every,
    /// Only at the points of the matrix where a goal compares it, as the subject or as the
    /// reference ([`goals::needs`]): a target that is in the run for its goals alone.
    Goals,
}

impl Coverage {
    /// Whether a target with this coverage is measured at `point`.
    pub fn includes(self, point: &Point) -> bool {
        match self {
            Coverage::Every => true,
            Coverage::Goals => goals::needs(point),
        }
    }
}

/// The default run's targets, in report order, and where each is measured: mprpc, tonic and
/// the two raw echoes make the side-by-side table at every point; the others are there for
/// their goals (layers, TLS, detection, the gRPC front end), 9 points in all instead of 16
/// each.
pub const DEFAULT_TARGETS: [(TargetKind, Coverage); 9] = [
    (TargetKind::Mprpc, Coverage::Every),
    (TargetKind::MprpcLayers, Coverage::Goals),
    (TargetKind::MprpcTls, Coverage::Goals),
    (TargetKind::MprpcDetect, Coverage::Goals),
    (TargetKind::Tonic, Coverage::Every),
    (TargetKind::TonicTls, Coverage::Goals),
    (TargetKind::TonicOnMprpc, Coverage::Goals),
    (TargetKind::RawPipelined, Coverage::Every),
    (TargetKind::RawPerCall, Coverage::Every),
];

/// What to measure and how.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Targets to measure, and where.
    pub targets: Vec<(TargetKind, Coverage)>,
    /// Payload sizes in bytes.
    pub payloads: Vec<usize>,
    /// Calls in flight.
    pub concurrency: Vec<usize>,
    /// Client connections (ignored by connection-per-call targets).
    pub connections: Vec<usize>,
    /// Repetitions of every point.
    pub reps: usize,
    /// Load before each window, not recorded.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
    /// Worker threads of each server process.
    pub server_threads: usize,
    /// Worker threads of the client runtime.
    pub client_threads: usize,
    /// Pin servers to CPU 0 and the client to CPU 1.
    pub pin: bool,
    /// Points whose payload times calls in flight exceeds this many bytes are skipped
    /// (memory: both sides hold that much at once, or more).
    pub max_bytes_in_flight: usize,
}

/// One point of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// The system.
    pub target: TargetKind,
    /// Payload bytes per call (each way).
    pub payload: usize,
    /// Calls in flight.
    pub concurrency: usize,
    /// Client connections (for a connection-per-call target: as many as calls in flight).
    pub connections: usize,
}

impl Point {
    /// Whether `other` is the same setting for another target.
    pub fn same_setting(&self, payload: usize, concurrency: usize, connections: usize) -> bool {
        self.payload == payload
            && self.concurrency == concurrency
            && (self.connections == connections || !self.target.multiplexed())
    }
}

/// The points `profile` asks for (each target at the points its [`Coverage`] includes), and a
/// note for each kind of combination left out.
pub fn plan(profile: &Profile) -> (Vec<Point>, Vec<String>) {
    let mut points = Vec::new();
    let mut notes = Vec::new();
    let mut note = |text: String| {
        if !notes.contains(&text) {
            notes.push(text);
        }
    };
    for &payload in &profile.payloads {
        for (c_index, &connections) in profile.connections.iter().enumerate() {
            for &concurrency in &profile.concurrency {
                for &(target, coverage) in &profile.targets {
                    if payload.saturating_mul(concurrency) > profile.max_bytes_in_flight {
                        note(format!(
                            "{} x {concurrency} in flight: over --max-bytes-in-flight ({})",
                            size(payload),
                            size(profile.max_bytes_in_flight)
                        ));
                        continue;
                    }
                    let point = if target.multiplexed() {
                        if connections > concurrency {
                            note(format!(
                                "{connections} connections with {concurrency} in flight: some connections would idle"
                            ));
                            continue;
                        }
                        Point {
                            target,
                            payload,
                            concurrency,
                            connections,
                        }
                    } else if c_index == 0 {
                        // A connection per call: the connections setting means nothing.
                        Point {
                            target,
                            payload,
                            concurrency,
                            connections: concurrency,
                        }
                    } else {
                        continue;
                    };
                    if coverage.includes(&point) {
                        points.push(point);
                    }
                }
            }
        }
    }
    (points, notes)
}

/// A payload size as people write it: `64 B`, `4 KiB`, `1 MiB`.
pub fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// What one repetition of a point measured.
#[derive(Clone, Debug)]
pub struct Run {
    /// The load's figures.
    pub measurement: Measurement,
    /// CPU seconds the server process used during the window.
    pub server_cpu_s: f64,
    /// CPU seconds this (client) process used during the window.
    pub client_cpu_s: f64,
    /// Share of the machine's CPU time that other processes used during the window, %.
    pub others_percent: f64,
    /// The server process's peak RSS over its life (start, warm-up, window), KiB.
    pub server_peak_kib: u64,
}

impl Run {
    /// CPU seconds per 1,000 successful calls: (server, client).
    pub fn cpu_per_1k(&self) -> Option<(f64, f64)> {
        let calls = self.measurement.calls;
        (calls > 0).then(|| {
            let k = calls as f64 / 1000.0;
            (self.server_cpu_s / k, self.client_cpu_s / k)
        })
    }
}

/// Every repetition of one point.
#[derive(Clone, Debug)]
pub struct PointResult {
    /// The point.
    pub point: Point,
    /// Its repetitions, in the order run.
    pub runs: Vec<Run>,
}

/// The median of `values` (the lower middle one for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

impl PointResult {
    fn rates(&self) -> Vec<f64> {
        self.runs
            .iter()
            .map(|r| r.measurement.calls_per_second())
            .collect()
    }

    /// Median calls/s over the repetitions.
    pub fn calls_per_second(&self) -> f64 {
        median(&self.rates()).unwrap_or(0.0)
    }

    /// Lowest and highest calls/s over the repetitions.
    pub fn spread(&self) -> (f64, f64) {
        let rates = self.rates();
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        (if min.is_finite() { min } else { 0.0 }, max)
    }

    /// The repetition whose calls/s is the median: its latencies are the ones reported.
    pub fn median_run(&self) -> Option<&Run> {
        let mut runs: Vec<&Run> = self.runs.iter().collect();
        runs.sort_by(|a, b| {
            a.measurement
                .calls_per_second()
                .total_cmp(&b.measurement.calls_per_second())
        });
        runs.get(runs.len().saturating_sub(1) / 2).copied()
    }

    /// Latency at quantile `q` of the median repetition, in microseconds.
    pub fn latency_us(&self, q: f64) -> Option<f64> {
        self.median_run()?
            .measurement
            .latency_ns(q)
            .map(|ns| ns as f64 / 1000.0)
    }

    /// Median over the repetitions of each one's latency at quantile `q`, in microseconds
    /// (repetitions without a successful call left out). Unlike [`latency_us`](Self::latency_us),
    /// which reads one repetition, this steadies a tail that varies from run to run.
    pub fn median_latency_us(&self, q: f64) -> Option<f64> {
        let per_run: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.measurement.latency_ns(q))
            .map(|ns| ns as f64 / 1000.0)
            .collect();
        median(&per_run)
    }

    /// Median over the repetitions of CPU seconds per 1,000 calls: (server, client).
    pub fn cpu_per_1k(&self) -> Option<(f64, f64)> {
        let per: Vec<(f64, f64)> = self.runs.iter().filter_map(Run::cpu_per_1k).collect();
        let server: Vec<f64> = per.iter().map(|p| p.0).collect();
        let client: Vec<f64> = per.iter().map(|p| p.1).collect();
        Some((median(&server)?, median(&client)?))
    }

    /// Median over the repetitions of the server's peak RSS, in KiB.
    pub fn server_peak_kib(&self) -> Option<u64> {
        let peaks: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.server_peak_kib > 0)
            .map(|r| r.server_peak_kib as f64)
            .collect();
        median(&peaks).map(|k| k as u64)
    }

    /// Highest share of CPU other processes used during any repetition's window, %.
    pub fn others_percent(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.others_percent)
            .fold(0.0, f64::max)
    }

    /// Failed calls over all repetitions, by kind.
    pub fn errors(&self) -> std::collections::BTreeMap<String, u64> {
        let mut all = std::collections::BTreeMap::new();
        for run in &self.runs {
            for (kind, n) in &run.measurement.errors {
                *all.entry(kind.clone()).or_default() += n;
            }
        }
        all
    }
}

/// Roughly how long measuring `points` takes.
pub fn estimate(profile: &Profile, points: usize) -> Duration {
    // About 0.2 s per repetition to start a server and connect.
    (profile.warmup + profile.duration + Duration::from_millis(200))
        * u32::try_from(points * profile.reps).unwrap_or(u32::MAX)
}

/// Measures every point `profile.reps` times, printing progress on stderr. The TLS targets'
/// servers and clients use `certs`.
pub fn run(
    profile: &Profile,
    points: &[Point],
    runtime: &Runtime,
    certs: Option<&Certs>,
) -> Vec<PointResult> {
    let mut results: Vec<PointResult> = points
        .iter()
        .map(|&point| PointResult {
            point,
            runs: Vec::new(),
        })
        .collect();
    let total = points.len() * profile.reps;
    let started = Instant::now();
    let mut done = 0;
    for rep in 0..profile.reps {
        for result in &mut results {
            let p = result.point;
            done += 1;
            eprintln!(
                "[{done}/{total}, {:.0} s] {} {} x {} in flight, {} connection(s), rep {}",
                started.elapsed().as_secs_f64(),
                p.target,
                size(p.payload),
                p.concurrency,
                p.connections,
                rep + 1
            );
            let run = run_once(profile, &p, runtime, certs).unwrap_or_else(|e| {
                eprintln!("  failed: {e:#}");
                Run {
                    measurement: Measurement::failed(profile.duration, format!("{e:#}")),
                    server_cpu_s: 0.0,
                    client_cpu_s: 0.0,
                    others_percent: 0.0,
                    server_peak_kib: 0,
                }
            });
            eprintln!(
                "  {:.0} calls/s, {} errors",
                run.measurement.calls_per_second(),
                run.measurement.error_count()
            );
            result.runs.push(run);
        }
    }
    results
}

/// CPU counters at one instant.
struct Counters {
    server: u64,
    client: u64,
    machine: MachineCpu,
}

/// One repetition of one point, in a fresh server process.
fn run_once(
    profile: &Profile,
    point: &Point,
    runtime: &Runtime,
    certs: Option<&Certs>,
) -> anyhow::Result<Run> {
    let server = ServerProcess::spawn(ServerSpec {
        target: point.target,
        threads: profile.server_threads,
        cpu: profile.pin.then_some(0),
        certs: certs.cloned(),
    })?;
    let setting = Setting {
        payload: point.payload,
        concurrency: point.concurrency,
        warmup: profile.warmup,
        duration: profile.duration,
    };
    let connections = if point.target.multiplexed() {
        point.connections
    } else {
        1
    };
    let pid = server.pid();
    let probe = || Counters {
        server: machine::cpu_ticks(Some(pid)).unwrap_or(0),
        client: machine::cpu_ticks(None).unwrap_or(0),
        machine: MachineCpu::take(),
    };
    let address = server.address();
    let (measurement, (start, end)) = with_target!(point.target, T => {
        let callers = runtime.block_on(connect_all::<T>(address, connections, certs))?;
        let outcome = runner::measure(runtime, &callers, &setting, probe);
        drop(callers);
        outcome
    });
    let server_peak_kib = server.peak_rss_kib();
    server.stop()?;
    let server_ticks = end.server.saturating_sub(start.server);
    let client_ticks = end.client.saturating_sub(start.client);
    Ok(Run {
        measurement,
        server_cpu_s: server_ticks as f64 / machine::TICKS_PER_SECOND,
        client_cpu_s: client_ticks as f64 / machine::TICKS_PER_SECOND,
        others_percent: start
            .machine
            .others_percent(&end.machine, server_ticks + client_ticks),
        server_peak_kib,
    })
}

/// Connects `n` clients of `T` to `address`, at most 64 at a time.
pub async fn connect_all<T: Target>(
    address: std::net::SocketAddr,
    n: usize,
    certs: Option<&Certs>,
) -> anyhow::Result<Vec<T::Caller>> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    stream::iter(0..n)
        .map(|_| T::connect(address, certs))
        .buffered(64)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests;
