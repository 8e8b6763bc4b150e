//! New connections per second (`bench handshakes`): what a TLS handshake costs a target.
//!
//! For each target, repetition and parallelism, a fresh server process; then N fresh clients,
//! each made the way the side-by-side run makes one ([`Target::connect`]: a new mprpc
//! `Channel` or tonic `Channel` with its own TLS settings, so no session is resumed), which
//! opens its connection, makes one 64-byte call and is dropped (which closes the connection).
//! At most P of them are under way at once (P = 1: one after the other). Before the timed
//! ones, a few untimed ones warm both sides up. Reported: connections per second over the N,
//! the latency of one (from making the client to the first call's reply: TCP connect, the
//! handshake if any, the call), and the CPU each side spent per connection, which is where a
//! handshake's cost shows best on a loaded machine.

use std::fmt::Write;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use tokio::runtime::Runtime;

use crate::certs::Certs;
use crate::machine::{self, MachineCpu};
use crate::matrix::median;
use crate::process::{ServerProcess, ServerSpec};
use crate::report::{sig3, thousands};
use crate::runner::new_histogram;
use crate::targets::{Target, TargetKind};
use crate::with_target;

/// Untimed connections before the timed ones.
const WARMUP_CONNECTIONS: usize = 20;

/// Settings of `bench handshakes`.
#[derive(Clone, Debug, clap::Args)]
pub struct HandshakeOptions {
    /// Targets, comma-separated (connection-per-call targets are skipped: they have no
    /// client to make).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "mprpc,mprpc-tls,tonic,tonic-tls"
    )]
    pub targets: Vec<TargetKind>,
    /// New connections per repetition.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connections under way at once, comma-separated (1: one after the other).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub parallel: Vec<usize>,
    /// Repetitions (each in a fresh server process; repetitions are the outer loop).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Do not pin the servers to CPU 0 and the client to CPU 1.
    #[arg(long)]
    pub no_pin: bool,
}

/// One repetition of one target at one parallelism.
#[derive(Clone, Debug)]
pub struct HandshakeRun {
    /// Connections that made their call.
    pub connected: usize,
    /// Connections that failed, with the first error.
    pub failed: (usize, Option<String>),
    /// Time for all of them.
    pub elapsed: Duration,
    /// Time for each successful one, ns.
    pub latency: Histogram<u64>,
    /// CPU seconds of the server process over the timed connections.
    pub server_cpu_s: f64,
    /// CPU seconds of this (client) process over the timed connections.
    pub client_cpu_s: f64,
    /// Share of the machine's CPU other processes used meanwhile, %.
    pub others_percent: f64,
}

impl HandshakeRun {
    /// Successful connections per second.
    pub fn per_second(&self) -> f64 {
        self.connected as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Every repetition of one target at one parallelism.
#[derive(Clone, Debug)]
pub struct HandshakeFigure {
    /// The target.
    pub target: TargetKind,
    /// Connections under way at once.
    pub parallel: usize,
    /// The repetitions.
    pub runs: Vec<HandshakeRun>,
}

impl HandshakeFigure {
    /// Median connections per second.
    pub fn per_second(&self) -> f64 {
        let rates: Vec<f64> = self.runs.iter().map(HandshakeRun::per_second).collect();
        median(&rates).unwrap_or(0.0)
    }

    /// The repetition with the median rate.
    fn median_run(&self) -> Option<&HandshakeRun> {
        let mut runs: Vec<&HandshakeRun> = self.runs.iter().collect();
        runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
        runs.get(runs.len().saturating_sub(1) / 2).copied()
    }

    /// Median over the repetitions of (server, client) CPU milliseconds per connection.
    fn cpu_ms_per_connection(&self) -> Option<(f64, f64)> {
        let per: Vec<(f64, f64)> = self
            .runs
            .iter()
            .filter(|r| r.connected > 0)
            .map(|r| {
                let n = r.connected as f64;
                (r.server_cpu_s * 1e3 / n, r.client_cpu_s * 1e3 / n)
            })
            .collect();
        let server: Vec<f64> = per.iter().map(|p| p.0).collect();
        let client: Vec<f64> = per.iter().map(|p| p.1).collect();
        Some((median(&server)?, median(&client)?))
    }
}

/// Measures every target at every parallelism, `options.reps` times.
pub fn measure(
    options: &HandshakeOptions,
    runtime: &Runtime,
    server_cpu: Option<usize>,
    certs: Option<&Certs>,
) -> Vec<HandshakeFigure> {
    let mut figures: Vec<HandshakeFigure> = Vec::new();
    for &parallel in &options.parallel {
        for &target in options.targets.iter().filter(|t| t.multiplexed()) {
            figures.push(HandshakeFigure {
                target,
                parallel: parallel.max(1),
                runs: Vec::new(),
            });
        }
    }
    for rep in 1..=options.reps.max(1) {
        for figure in &mut figures {
            eprintln!(
                "handshakes: {} x {}, {} at once, rep {rep}",
                figure.target, options.connections, figure.parallel
            );
            match measure_once(
                figure.target,
                options.connections,
                figure.parallel,
                runtime,
                server_cpu,
                certs,
            ) {
                Ok(run) => {
                    eprintln!(
                        "  {:.0} connections/s, {} failed",
                        run.per_second(),
                        run.failed.0
                    );
                    figure.runs.push(run);
                }
                Err(e) => eprintln!("  failed: {e:#}"),
            }
        }
    }
    figures
}

/// One repetition: a fresh server, `n` fresh clients, `parallel` at a time.
fn measure_once(
    target: TargetKind,
    n: usize,
    parallel: usize,
    runtime: &Runtime,
    server_cpu: Option<usize>,
    certs: Option<&Certs>,
) -> anyhow::Result<HandshakeRun> {
    let server = ServerProcess::spawn(ServerSpec {
        target,
        threads: 1,
        cpu: server_cpu,
        certs: certs.cloned(),
    })?;
    let address = server.address();
    let pid = server.pid();
    let probe = || {
        (
            machine::cpu_ticks(Some(pid)).unwrap_or(0),
            machine::cpu_ticks(None).unwrap_or(0),
            MachineCpu::take(),
        )
    };
    let run = with_target!(target, T => runtime.block_on(async {
        let warmup = open_and_close::<T>(address, WARMUP_CONNECTIONS, parallel, certs).await;
        if let (0, Some(e)) = (warmup.0, warmup.2) {
            anyhow::bail!("no warm-up connection succeeded: {e}");
        }
        let start = probe();
        let started = Instant::now();
        let (connected, latency, first_error, failed) =
            open_and_close::<T>(address, n, parallel, certs).await;
        let elapsed = started.elapsed();
        let end = probe();
        let server_ticks = end.0.saturating_sub(start.0);
        let client_ticks = end.1.saturating_sub(start.1);
        Ok(HandshakeRun {
            connected,
            failed: (failed, first_error),
            elapsed,
            latency,
            server_cpu_s: server_ticks as f64 / machine::TICKS_PER_SECOND,
            client_cpu_s: client_ticks as f64 / machine::TICKS_PER_SECOND,
            others_percent: start.2.others_percent(&end.2, server_ticks + client_ticks),
        })
    }))?;
    server.stop()?;
    Ok(run)
}

/// Makes `n` clients of `T`, `parallel` at a time, each connecting and making one call, then
/// dropped. Returns the successes, their latencies (ns), the first error and the failures.
async fn open_and_close<T: Target>(
    address: std::net::SocketAddr,
    n: usize,
    parallel: usize,
    certs: Option<&Certs>,
) -> (usize, Histogram<u64>, Option<String>, usize) {
    let mut outcomes = stream::iter(0..n)
        .map(|_| async move {
            let started = Instant::now();
            let outcome = T::connect(address, certs).await;
            let took = started.elapsed();
            // Dropping the client closes its connection.
            outcome.map(|caller| {
                drop(caller);
                took
            })
        })
        .buffer_unordered(parallel.max(1));
    let mut latency = new_histogram();
    let (mut connected, mut failed, mut first_error) = (0, 0, None);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(took) => {
                connected += 1;
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                latency.saturating_record(ns.max(1));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (connected, latency, first_error, failed)
}

/// The figures as a markdown table, and the ratios of the TLS targets below it.
pub fn table(figures: &[HandshakeFigure], connections: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | at once | connections/s | spread (min–max) | p50 ms | p99 ms | srv CPU ms/conn | cli CPU ms/conn | others % | failed |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for f in figures {
        let rates: Vec<f64> = f.runs.iter().map(HandshakeRun::per_second).collect();
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        let latency = |q: f64| {
            f.median_run().filter(|r| r.connected > 0).map_or_else(
                || "-".to_owned(),
                |r| sig3(r.latency.value_at_quantile(q) as f64 / 1e6),
            )
        };
        let cpu = f.cpu_ms_per_connection();
        let others = f.runs.iter().map(|r| r.others_percent).fold(0.0, f64::max);
        let failed: usize = f.runs.iter().map(|r| r.failed.0).sum();
        let first_error = f.runs.iter().find_map(|r| r.failed.1.clone());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}–{} | {} | {} | {} | {} | {:.0} | {}{} |",
            f.target,
            f.parallel,
            thousands(f.per_second()),
            thousands(if min.is_finite() { min } else { 0.0 }),
            thousands(max),
            latency(0.5),
            latency(0.99),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.0)),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.1)),
            others,
            failed,
            first_error.map_or_else(String::new, |e| format!(" ({e})")),
        );
    }
    let _ = writeln!(
        out,
        "\n{connections} new connections per repetition, each one client's connect, handshake (TLS \
         targets) and one 64-byte call; connections/s is the median repetition's, spread min–max; \
         latency of the median repetition; CPU ms per connection (ticks of 10 ms, so only rough \
         for a short repetition) is the median over the repetitions."
    );
    let ratios = ratios(figures);
    if !ratios.is_empty() {
        let _ = writeln!(out, "\n| ratio of connections/s | at once | ratio |");
        let _ = writeln!(out, "| --- | ---: | ---: |");
        for (what, parallel, ratio) in ratios {
            let _ = writeln!(out, "| {what} | {parallel} | {ratio:.2} |");
        }
    }
    out
}

/// mprpc-tls against tonic-tls and against plain mprpc, at each parallelism measured.
pub fn ratios(figures: &[HandshakeFigure]) -> Vec<(String, usize, f64)> {
    let rate = |target: TargetKind, parallel: usize| {
        figures
            .iter()
            .find(|f| f.target == target && f.parallel == parallel)
            .map(HandshakeFigure::per_second)
            .filter(|r| *r > 0.0)
    };
    let mut out = Vec::new();
    let mut parallels: Vec<usize> = figures.iter().map(|f| f.parallel).collect();
    parallels.dedup();
    for parallel in parallels {
        for (a, b) in [
            (TargetKind::MprpcTls, TargetKind::TonicTls),
            (TargetKind::MprpcTls, TargetKind::Mprpc),
            (TargetKind::TonicTls, TargetKind::Tonic),
        ] {
            if let (Some(x), Some(y)) = (rate(a, parallel), rate(b, parallel)) {
                out.push((format!("{a} ÷ {b}"), parallel, x / y));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(target: TargetKind, parallel: usize, connected: usize) -> HandshakeFigure {
        HandshakeFigure {
            target,
            parallel,
            runs: vec![HandshakeRun {
                connected,
                failed: (0, None),
                elapsed: Duration::from_secs(1),
                latency: new_histogram(),
                server_cpu_s: 0.5,
                client_cpu_s: 0.5,
                others_percent: 0.0,
            }],
        }
    }

    #[test]
    fn ratios_of_the_tls_targets() {
        let figures = [
            figure(TargetKind::Mprpc, 1, 2000),
            figure(TargetKind::MprpcTls, 1, 1000),
            figure(TargetKind::TonicTls, 1, 500),
        ];
        let r = ratios(&figures);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], ("mprpc-tls ÷ tonic-tls".to_owned(), 1, 2.0));
        assert_eq!(r[1], ("mprpc-tls ÷ mprpc".to_owned(), 1, 0.5));
        let text = table(&figures, 1000);
        assert!(text.contains("| mprpc-tls | 1 | 1,000 |"), "{text}");
        assert!(
            text.contains("| mprpc-tls ÷ tonic-tls | 1 | 2.00 |"),
            "{text}"
        );
    }
}
