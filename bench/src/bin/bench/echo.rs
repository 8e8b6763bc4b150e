//! The side-by-side echo run (`bench` or `bench echo`): its flags, its profile and the report;
//! without `--targets`, server and client streaming follow the matrix, and their goals join
//! the same goal table.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use mprpc_bench::certs::RunCerts;
use mprpc_bench::matrix::{self, Coverage, Profile};
use mprpc_bench::streaming::{Part, StreamingOptions};
use mprpc_bench::targets::TargetKind;
use mprpc_bench::{goals, machine, parse_duration, parse_size, process, report, runner};

use crate::{preamble, tls_note};

/// The side-by-side run's settings.
#[derive(Args, Debug, Clone)]
pub(crate) struct EchoArgs {
    /// Targets, comma-separated, each measured at every point [default: mprpc, tonic,
    /// raw-pipelined and raw-per-call at every point; mprpc-layers, mprpc-tls, mprpc-detect,
    /// tonic-tls and tonic-on-mprpc only at the points their goals compare].
    #[arg(long, value_enum, value_delimiter = ',')]
    targets: Option<Vec<TargetKind>>,
    /// Payload sizes, comma-separated: bytes, or with a unit (4KiB, 1MiB).
    #[arg(long, value_delimiter = ',', default_value = "64,4KiB,1MiB", value_parser = parse_size)]
    payloads: Vec<usize>,
    /// Calls in flight, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    concurrency: Vec<usize>,
    /// Client connections, comma-separated (each target's calls in flight are spread over
    /// them; a connection-per-call target ignores this).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    connections: Vec<usize>,
    /// Repetitions of every point [default: 3; --quick: 1].
    #[arg(long)]
    reps: Option<usize>,
    /// Warm-up before every window [default: 1s; --quick: 300ms].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Measurement window [default: 2s; --quick: 700ms].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// A smoke run: one short repetition of every point (figures only roughly right).
    #[arg(long)]
    quick: bool,
    /// Worker threads of each server process.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Worker threads of the load client's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Do not pin the servers to CPU 0 and the client to CPU 1.
    #[arg(long)]
    no_pin: bool,
    /// Skip points whose payload times calls in flight exceeds this (bytes, or 128MiB).
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    max_bytes_in_flight: usize,
    /// Also write the markdown report to this file.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Print the points that would be measured, and how long it would take, then exit.
    #[arg(long)]
    dry_run: bool,
    /// Skip the server and client streaming that the run measures after the matrix when no
    /// --targets are given (an explicit --targets skips it too; `bench streaming` runs it alone).
    #[arg(long)]
    no_streaming: bool,
}

impl EchoArgs {
    /// The streaming parts measured after the matrix: server and client streaming, as
    /// `bench streaming --parts server,client`, with the matrix's repetitions, warm-up and
    /// window. None with --no-streaming or an explicit --targets.
    pub(crate) fn streaming(&self, profile: &Profile) -> anyhow::Result<Option<StreamingOptions>> {
        if self.no_streaming || self.targets.is_some() {
            return Ok(None);
        }
        let mut options = StreamingOptions::defaults()?;
        options.parts = vec![Part::Server, Part::Client];
        options.reps = profile.reps;
        options.warmup = profile.warmup;
        options.duration = profile.duration;
        options.no_pin = !profile.pin;
        Ok(Some(options))
    }

    pub(crate) fn profile(&self) -> anyhow::Result<Profile> {
        if self.concurrency.contains(&0) || self.connections.contains(&0) {
            bail!("--concurrency and --connections must be at least 1");
        }
        if self.server_threads == 0 || self.client_threads == 0 {
            bail!("--server-threads and --client-threads must be at least 1");
        }
        let (reps, warmup, duration) = if self.quick {
            (1, Duration::from_millis(300), Duration::from_millis(700))
        } else {
            (3, Duration::from_secs(1), Duration::from_secs(2))
        };
        let pin = !self.no_pin && machine::cpu_count() >= 2;
        Ok(Profile {
            targets: match &self.targets {
                Some(asked) => asked.iter().map(|&t| (t, Coverage::Every)).collect(),
                None => matrix::DEFAULT_TARGETS.to_vec(),
            },
            payloads: self.payloads.clone(),
            concurrency: self.concurrency.clone(),
            connections: self.connections.clone(),
            reps: self.reps.unwrap_or(reps).max(1),
            warmup: self.warmup.unwrap_or(warmup),
            duration: self.duration.unwrap_or(duration),
            server_threads: self.server_threads,
            client_threads: self.client_threads,
            pin,
            max_bytes_in_flight: self.max_bytes_in_flight,
        })
    }
}

pub(crate) fn run_echo(args: &EchoArgs) -> anyhow::Result<()> {
    use std::fmt::Write;
    let profile = args.profile()?;
    let (points, notes) = matrix::plan(&profile);
    let streaming = args.streaming(&profile)?;
    let estimate = matrix::estimate(&profile, points.len());
    let streaming_estimate = streaming
        .as_ref()
        .map_or(Duration::ZERO, StreamingOptions::estimate);
    let minutes = |d: Duration| d.as_secs_f64() / 60.0;
    eprintln!(
        "{} points x {} repetitions: about {:.1} min{}",
        points.len(),
        profile.reps,
        minutes(estimate),
        match &streaming {
            Some(_) => format!(
                "; then server and client streaming: about {:.1} min; about {:.1} min in all",
                minutes(streaming_estimate),
                minutes(estimate + streaming_estimate)
            ),
            None => String::new(),
        }
    );
    if args.dry_run {
        for p in &points {
            println!(
                "{} {} x {} in flight, {} connection(s)",
                p.target,
                matrix::size(p.payload),
                p.concurrency,
                p.connections
            );
        }
        if let Some(options) = &streaming {
            let targets: Vec<_> = options.targets.iter().map(|t| t.name()).collect();
            println!(
                "then server and client streaming: {}, {} repetition(s)",
                targets.join(", "),
                options.reps
            );
        }
        return Ok(());
    }
    let certs = RunCerts::for_targets(points.iter().map(|p| p.target))?;
    let mut out = String::new();
    let pinning = if profile.pin {
        let how = if process::have_taskset() {
            "`taskset -c 0`"
        } else {
            "sched_setaffinity (no taskset here)"
        };
        format!("each server process pinned to CPU 0 ({how}), the load client to CPU 1")
    } else {
        "not pinned".to_owned()
    };
    preamble(
        &mut out,
        "mprpc side by side: tonic, raw TCP",
        &format!(
            "server {} worker thread(s) in a fresh process per repetition, {pinning}; client runtime {} worker(s); \
             closed loop; warm-up {:?}, window {:?}, {} repetition(s) per point; calls/s is the median \
             repetition's, spread is min–max, latencies (µs) are the median repetition's",
            profile.server_threads,
            profile.client_threads,
            profile.warmup,
            profile.duration,
            profile.reps
        ),
    );
    if certs.is_some() {
        tls_note(&mut out);
    }
    if profile.pin {
        machine::pin_to_cpu(1).context("pinning the client to CPU 1")?;
    }
    machine::raise_open_files_limit().context("raising the open-files limit")?;
    let runtime = runner::runtime("bench-client", profile.client_threads)?;
    let cpu_before = machine::MachineCpu::take();
    let own_before = machine::cpu_ticks(None).unwrap_or(0);
    let started = std::time::Instant::now();
    let results = matrix::run(
        &profile,
        &points,
        &runtime,
        certs.as_ref().map(RunCerts::certs),
    );
    if let Some(certs) = certs {
        certs.close()?;
    }
    let elapsed = started.elapsed();
    let cpu_after = machine::MachineCpu::take();

    let _ = writeln!(out);
    if !notes.is_empty() {
        let _ = writeln!(out, "Left out: {}.\n", notes.join("; "));
    }
    let _ = writeln!(out, "{}", report::table(&results));
    let server_ticks: f64 = results
        .iter()
        .flat_map(|r| &r.runs)
        .map(|r| r.server_cpu_s * machine::TICKS_PER_SECOND)
        .sum();
    let own = machine::cpu_ticks(None)
        .unwrap_or(0)
        .saturating_sub(own_before);
    let _ = writeln!(
        out,
        "Columns: calls/s = successful calls in the window ÷ window (median of the repetitions); \
         MiB/s = payload MiB/s each way; p50/p99/p999 in µs; CPU s/1k = CPU seconds the server \
         (srv) and the client (cli) process used per 1,000 calls over the window; srv peak = the \
         server process's VmHWM; others % = the most CPU (share of all {} CPUs) that other \
         processes used during any window of the point (with the host's steal and the kernel's \
         interrupt work). The matrix took {:.0} s; other processes used about {:.0}% of the \
         machine over it (outside the windows this includes the servers' start-up), and the \
         host took {:.1}% of its CPU time (steal: above a few percent, timed figures and ratios \
         moved with the host's load).",
        machine::cpu_count(),
        elapsed.as_secs_f64(),
        cpu_before.others_percent(&cpu_after, own + server_ticks as u64),
        cpu_before.steal_percent(&cpu_after),
    );
    let mut checks = goals::check(&results);
    if let Some(options) = &streaming {
        checks.extend(crate::streaming::after_matrix(
            &mut out,
            options,
            profile.pin,
        )?);
    }
    let _ = writeln!(out, "\n## Goals\n");
    if let Some(warning) = cpu_before.steal_warning(&machine::MachineCpu::take()) {
        let _ = writeln!(out, "{warning}\n");
    }
    let _ = write!(out, "{}", goals::table(&checks));
    print!("{out}");
    if let Some(path) = &args.output {
        std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
