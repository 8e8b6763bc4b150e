//! `bench`: mprpc side by side with gRPC (tonic) and a raw TCP echo, in one run.
//!
//! ```text
//! cargo run --release -p mprpc-bench                 # the default profile (about 10 minutes)
//! cargo run --release -p mprpc-bench -- --quick      # one short repetition of each point
//! cargo run --release -p mprpc-bench -- --targets mprpc,tonic --payloads 64 --concurrency 128
//! cargo run --release -p mprpc-bench -- scale        # idle connections, providers, ZooKeeper
//! cargo run --release -p mprpc-bench -- handshakes   # new connections/s, with and without TLS
//! cargo run --release -p mprpc-bench -- streaming    # server and client streams, a stalled reader
//! ```
//!
//! Every server runs in a process of its own (`bench serve`, started by the driver, pinned
//! to CPU 0 with `taskset`); the load client runs in the driver, pinned to CPU 1. Prints
//! markdown: the machine, the command, the table of results and the goal ratios. The TLS
//! targets (`mprpc-tls`, `tonic-tls`) are not in the default run; when asked for, the driver
//! makes certificates for the run in a private temporary directory, hands it to the servers
//! (`bench serve --tls-dir`) and removes it at the end. See `docs/BENCHMARKS.md`.

use std::time::Duration;

/// `--features mimalloc` or `--features jemalloc` replace glibc's allocator in the driver
/// and in every server it starts (the same executable), for all targets alike.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
/// jemalloc's settings (as in the examples): purge freed pages from a background thread.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
// `unsafe_code`: exporting a symbol by name is how jemalloc reads a configuration baked
// into the program; this is the one symbol, and jemalloc only reads it.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mprpc_bench::certs::{Certs, RunCerts};
use mprpc_bench::handshakes::{self, HandshakeOptions};
use mprpc_bench::matrix::{self, Profile};
use mprpc_bench::scale::{self, Part, ScaleOptions};
use mprpc_bench::streaming::{self, StreamingOptions};
use mprpc_bench::targets::TargetKind;
use mprpc_bench::{goals, machine, parse_duration, parse_size, process, report, runner};

/// mprpc, tonic and a raw TCP echo under the same closed-loop echo load.
#[derive(Parser, Debug)]
#[command(name = "bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    echo: EchoArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The side-by-side echo run (the default when no subcommand is given).
    Echo(EchoArgs),
    /// Scale figures: memory per idle connection, providers behind the registry, ZooKeeper.
    Scale(ScaleOptions),
    /// New connections per second (connect, TLS handshake, one call), TLS targets and plain.
    Handshakes(HandshakeOptions),
    /// Streaming calls: server and client streams side by side with tonic and raw TCP, and
    /// what a stalled reader costs the server.
    Streaming(StreamingOptions),
    /// Serve one target's echo server in this process (the driver starts these).
    Serve(ServeArgs),
    /// Serve the raw TCP streams of `bench streaming` in this process (the driver starts it).
    #[command(hide = true)]
    ServeRawStream(RawStreamArgs),
}

/// `bench serve-raw-stream`.
#[derive(Args, Debug)]
struct RawStreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin the process to this CPU (the driver uses `taskset` instead when it exists).
    #[arg(long)]
    cpu: Option<usize>,
}

/// The side-by-side run's settings.
#[derive(Args, Debug, Clone)]
struct EchoArgs {
    /// Targets, comma-separated (also: mprpc-tls, tonic-tls, tonic-on-mprpc, mprpc-detect;
    /// not in the default list, to keep the default run's length).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "mprpc,mprpc-layers,tonic,raw-pipelined,raw-per-call"
    )]
    targets: Vec<TargetKind>,
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
}

/// `bench serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Which server.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin the process to this CPU (the driver uses `taskset` instead when it exists).
    #[arg(long)]
    cpu: Option<usize>,
    /// The directory of the run's certificates (the TLS targets need it; the driver makes it).
    #[arg(long)]
    tls_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Serve(a)) => process::serve_main(
            a.target,
            &a.addr,
            a.threads,
            a.cpu,
            a.tls_dir.map(Certs::in_dir),
        ),
        Some(Cmd::Scale(options)) => run_scale(&options),
        Some(Cmd::Handshakes(options)) => run_handshakes(&options),
        Some(Cmd::Streaming(options)) => run_streaming(&options),
        Some(Cmd::ServeRawStream(a)) => {
            process::serve_on(&a.addr, a.threads, a.cpu, streaming::raw::serve)
        }
        Some(Cmd::Echo(args)) => run_echo(&args),
        None => run_echo(&cli.echo),
    }
}

impl EchoArgs {
    fn profile(&self) -> anyhow::Result<Profile> {
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
            targets: self.targets.clone(),
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

/// The run's context, printed above the tables.
fn preamble(out: &mut String, title: &str, setup: &str) {
    use std::fmt::Write;
    let _ = writeln!(out, "# {title}\n");
    if cfg!(debug_assertions) {
        let _ = writeln!(
            out,
            "**Debug build: these figures mean little; use `--release`.**\n"
        );
    }
    let _ = writeln!(out, "- machine: {}", machine::describe());
    let _ = writeln!(out, "- command: `{}`", machine::command_line());
    let _ = writeln!(out, "- setup: {setup}");
}

fn run_echo(args: &EchoArgs) -> anyhow::Result<()> {
    use std::fmt::Write;
    let profile = args.profile()?;
    let (points, notes) = matrix::plan(&profile);
    let estimate = matrix::estimate(&profile, points.len());
    eprintln!(
        "{} points x {} repetitions: about {:.1} min",
        points.len(),
        profile.reps,
        estimate.as_secs_f64() / 60.0
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
        return Ok(());
    }
    let certs = RunCerts::for_targets(profile.targets.iter().copied())?;
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
         processes used during any window of the point. The run took {:.0} s; other processes \
         used about {:.0}% of the machine over it (outside the windows this includes the \
         servers' start-up).",
        machine::cpu_count(),
        elapsed.as_secs_f64(),
        cpu_before.others_percent(&cpu_after, own + server_ticks as u64),
    );
    let _ = writeln!(out, "\n## Goals\n");
    let _ = write!(out, "{}", goals::table(&goals::check(&results)));
    print!("{out}");
    if let Some(path) = &args.output {
        std::fs::write(path, &out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// What the TLS targets ran with, for the preamble.
fn tls_note(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "- TLS: rustls 0.23 with the ring provider on both ends of both TLS targets (TLS 1.3, \
         rustls's default); a CA and a provider certificate for 127.0.0.1 and localhost (ECDSA P-256) \
         made for this run; no client certificates"
    );
}

fn run_handshakes(options: &HandshakeOptions) -> anyhow::Result<()> {
    use std::fmt::Write;
    if options.connections == 0 || options.parallel.contains(&0) {
        bail!("--connections and --parallel must be at least 1");
    }
    let pin = !options.no_pin && machine::cpu_count() >= 2;
    let mut out = String::new();
    preamble(
        &mut out,
        "New connections per second",
        if pin {
            "a fresh server process (1 worker) per target and repetition, pinned to CPU 0; the \
             clients in the driver, 1 worker, pinned to CPU 1"
        } else {
            "a fresh server process (1 worker) per target and repetition; not pinned"
        },
    );
    let certs = RunCerts::for_targets(options.targets.iter().copied())?;
    if certs.is_some() {
        tls_note(&mut out);
    }
    if pin {
        machine::pin_to_cpu(1).context("pinning the client to CPU 1")?;
    }
    machine::raise_open_files_limit().context("raising the open-files limit")?;
    let runtime = runner::runtime("bench-client", 1)?;
    let figures = handshakes::measure(
        options,
        &runtime,
        pin.then_some(0),
        certs.as_ref().map(RunCerts::certs),
    );
    if let Some(certs) = certs {
        certs.close()?;
    }
    let _ = writeln!(out);
    let _ = write!(out, "{}", handshakes::table(&figures, options.connections));
    print!("{out}");
    Ok(())
}

fn run_streaming(options: &StreamingOptions) -> anyhow::Result<()> {
    use std::fmt::Write;
    if options.targets.is_empty() || options.parts.is_empty() {
        bail!("--targets and --parts must name at least one");
    }
    let pin = !options.no_pin && machine::cpu_count() >= 2;
    eprintln!(
        "streaming: about {:.1} min",
        options.estimate().as_secs_f64() / 60.0
    );
    let mut out = String::new();
    preamble(
        &mut out,
        "Streaming calls: mprpc, tonic, raw TCP",
        &format!(
            "a fresh server process (1 worker) per part, target and repetition{}; the client in \
             the driver, 1 worker{}; warm-up {:?}, window {:?}, {} repetition(s), the median \
             reported; stalled reader: {:?}",
            if pin { ", pinned to CPU 0" } else { "" },
            if pin { ", pinned to CPU 1" } else { "" },
            options.warmup,
            options.duration,
            options.reps,
            options.stall,
        ),
    );
    if pin {
        machine::pin_to_cpu(1).context("pinning the client to CPU 1")?;
    }
    let runtime = runner::runtime("bench-client", 1)?;
    let started = std::time::Instant::now();
    let results = streaming::run(options, &runtime, pin);
    let _ = writeln!(
        out,
        "- the run took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !results.rates.is_empty() {
        let _ = writeln!(out, "\n## Throughput on one stream\n");
        let _ = write!(out, "{}", streaming::report::rates(&results.rates));
    }
    if !results.stalls.is_empty() {
        let _ = writeln!(out, "\n## A reader that stops reading\n");
        let _ = write!(
            out,
            "{}",
            streaming::report::stalls(&results.stalls, options.stall)
        );
    }
    let _ = writeln!(out, "\n## Goals\n");
    let _ = write!(
        out,
        "{}",
        goals::table(&streaming::report::checks(&results))
    );
    print!("{out}");
    Ok(())
}

fn run_scale(options: &ScaleOptions) -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut out = String::new();
    preamble(
        &mut out,
        "mprpc scale figures",
        if options.pin {
            "servers pinned to CPU 0, client to CPU 1"
        } else {
            "not pinned: servers and client share both CPUs"
        },
    );
    if options.pin {
        machine::pin_to_cpu(1).context("pinning the client to CPU 1")?;
    }
    let limit = machine::raise_open_files_limit().context("raising the open-files limit")?;
    let runtime = runner::runtime("bench-client", 1)?;
    let server_cpu = options.pin.then_some(0);
    let uses_targets = options
        .parts
        .iter()
        .any(|p| matches!(p, Part::Idle | Part::Bursts));
    let run_certs = if uses_targets {
        RunCerts::for_targets(options.idle_targets.iter().copied())?
    } else {
        None
    };
    let certs = run_certs.as_ref().map(RunCerts::certs);
    for part in &options.parts {
        match part {
            Part::Zk => {
                let steps = scale::zk::measure(options.zk_instances, &runtime)?;
                let _ = writeln!(out, "\n## ZooKeeper: {} instances\n", options.zk_instances);
                let _ = write!(out, "{}", scale::zk::table(&steps));
            }
            Part::Idle => {
                if options.idle_connections as u64 + 100 > limit {
                    eprintln!(
                        "warning: the open-files limit is {limit}; {} connections may not fit",
                        options.idle_connections
                    );
                }
                let mut figures = Vec::new();
                for &target in &options.idle_targets {
                    if !target.multiplexed() {
                        continue;
                    }
                    eprintln!("idle: {} connections to {target}", options.idle_connections);
                    figures.push(scale::idle::measure(
                        target,
                        options.idle_connections,
                        &runtime,
                        server_cpu,
                        certs,
                    )?);
                }
                let _ = writeln!(out, "\n## Memory per idle connection\n");
                let _ = write!(out, "{}", scale::idle::table(&figures));
            }
            Part::Bursts => {
                let mut figures = Vec::new();
                for &target in &options.idle_targets {
                    if !target.multiplexed() {
                        continue;
                    }
                    figures.push(scale::bursts::measure(
                        target,
                        options.burst_connections,
                        options.bursts,
                        options.burst_settle,
                        &runtime,
                        server_cpu,
                        certs,
                    )?);
                }
                let _ = writeln!(
                    out,
                    "\n## Memory after {} bursts of {} connections\n",
                    options.bursts, options.burst_connections
                );
                let _ = write!(out, "{}", scale::bursts::table(&figures));
            }
            Part::Providers => {
                let setting = runner::Setting {
                    payload: options.provider_payload,
                    concurrency: options.provider_concurrency,
                    warmup: options.warmup,
                    duration: options.duration,
                };
                let figures = scale::providers::measure(
                    options.providers,
                    &setting,
                    options.reps.max(1),
                    &runtime,
                    server_cpu,
                )?;
                let _ = writeln!(
                    out,
                    "\n## Providers behind the registry: {} B, {} in flight, one Channel\n",
                    options.provider_payload, options.provider_concurrency
                );
                let _ = write!(out, "{}", scale::providers::table(&figures));
            }
        }
    }
    if let Some(certs) = run_certs {
        certs.close()?;
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("big").is_err());
        assert!(parse_size("3xb").is_err());
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cli = Cli::parse_from(["bench"]);
        assert!(cli.command.is_none());
        let p = cli.echo.profile().unwrap();
        // Every target but the two over TLS (they would add 32 points, about 5 minutes) and
        // tonic-on-mprpc and mprpc-detect (16 more each).
        let plain: Vec<_> = TargetKind::ALL
            .into_iter()
            .filter(|t| {
                !t.tls() && !matches!(t, TargetKind::TonicOnMprpc | TargetKind::MprpcDetect)
            })
            .collect();
        assert_eq!(p.targets, plain);
        assert_eq!(plain.len(), 5);
        assert_eq!(p.payloads, vec![64, 4096, 1 << 20]);
        assert_eq!(p.concurrency, vec![1, 16, 128, 1024]);
        assert_eq!(p.connections, vec![1, 64]);
        let asked = Cli::parse_from(["bench", "--targets", "tonic,tonic-on-mprpc"]).echo;
        assert_eq!(
            asked.profile().unwrap().targets,
            [TargetKind::Tonic, TargetKind::TonicOnMprpc]
        );
        assert_eq!(
            (p.reps, p.warmup, p.duration),
            (3, Duration::from_secs(1), Duration::from_secs(2))
        );
        let quick = Cli::parse_from(["bench", "--quick", "--reps", "2"]).echo;
        let q = quick.profile().unwrap();
        assert_eq!((q.reps, q.duration), (2, Duration::from_millis(700)));
        let serve = Cli::parse_from(["bench", "serve", "--target", "raw-per-call"]);
        assert!(
            matches!(serve.command, Some(Cmd::Serve(ref s)) if s.target == TargetKind::RawPerCall)
        );
        let serve = Cli::parse_from(["bench", "serve", "--target", "tonic-tls", "--tls-dir", "/d"]);
        assert!(matches!(serve.command, Some(Cmd::Serve(ref s))
            if s.target == TargetKind::TonicTls && s.tls_dir.as_deref() == Some("/d".as_ref())));
        let h = Cli::parse_from(["bench", "handshakes"]);
        let Some(Cmd::Handshakes(h)) = h.command else {
            panic!("not the handshakes command");
        };
        assert_eq!(
            h.targets,
            [
                TargetKind::Mprpc,
                TargetKind::MprpcTls,
                TargetKind::Tonic,
                TargetKind::TonicTls
            ]
        );
        assert_eq!((h.connections, h.parallel, h.reps), (1000, vec![1, 16], 3));
    }
}
