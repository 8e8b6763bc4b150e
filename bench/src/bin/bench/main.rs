//! `bench`: mprpc side by side with gRPC (tonic) and a raw TCP echo, in one run.
//!
//! ```text
//! cargo run --release -p mprpc-bench                 # the default profile (about 12 minutes)
//! cargo run --release -p mprpc-bench -- --quick      # one short repetition of each point
//! cargo run --release -p mprpc-bench -- --targets mprpc,tonic --payloads 64 --concurrency 128
//! cargo run --release -p mprpc-bench -- scale        # idle connections, providers, ZooKeeper
//! cargo run --release -p mprpc-bench -- handshakes   # new connections/s, with and without TLS
//! cargo run --release -p mprpc-bench -- streaming    # server and client streams, a stalled reader
//! ```
//!
//! Every server runs in a process of its own (`bench serve`, started by the driver, pinned
//! to CPU 0 with `taskset`); the load client runs in the driver, pinned to CPU 1. Prints
//! markdown: the machine, the command, the table of results and the goal ratios. The default
//! run measures mprpc, tonic and the raw echoes at every point, and the other targets only at
//! the points their goals compare (`matrix::DEFAULT_TARGETS`). When a TLS target runs, the
//! driver makes certificates for the run in a private temporary directory, hands it to the
//! servers (`bench serve --tls-dir`) and removes it at the end. See `docs/BENCHMARKS.md`.
//!
//! | file | what |
//! | --- | --- |
//! | `main.rs` | the command line, `bench serve`, `bench handshakes`, the report's preamble |
//! | `echo.rs` | the side-by-side run (`bench`, `bench echo`) |
//! | `streaming.rs` | `bench streaming` |
//! | `scale.rs` | `bench scale` |

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

mod echo;
mod scale;
mod streaming;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mprpc_bench::certs::{Certs, RunCerts};
use mprpc_bench::handshakes::{self, HandshakeOptions};
use mprpc_bench::scale::ScaleOptions;
use mprpc_bench::streaming::{self as streams, StreamingOptions};
use mprpc_bench::targets::TargetKind;
use mprpc_bench::{machine, process, runner};

use crate::echo::EchoArgs;

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

/// Where and how a server process listens: `bench serve` and `bench serve-raw-stream`.
#[derive(Args, Debug)]
struct Listen {
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

/// `bench serve-raw-stream`.
#[derive(Args, Debug)]
struct RawStreamArgs {
    #[command(flatten)]
    listen: Listen,
}

/// `bench serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Which server.
    #[arg(long, value_enum)]
    target: TargetKind,
    #[command(flatten)]
    listen: Listen,
    /// The directory of the run's certificates (the TLS targets need it; the driver makes it).
    #[arg(long)]
    tls_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Serve(a)) => process::serve_main(
            a.target,
            &a.listen.addr,
            a.listen.threads,
            a.listen.cpu,
            a.tls_dir.map(Certs::in_dir),
        ),
        Some(Cmd::Scale(options)) => scale::run_scale(&options),
        Some(Cmd::Handshakes(options)) => run_handshakes(&options),
        Some(Cmd::Streaming(options)) => streaming::run_streaming(&options),
        Some(Cmd::ServeRawStream(a)) => {
            let Listen { addr, threads, cpu } = a.listen;
            process::serve_on(&addr, threads, cpu, streams::raw::serve)
        }
        Some(Cmd::Echo(args)) => echo::run_echo(&args),
        None => echo::run_echo(&cli.echo),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mprpc_bench::matrix::{self, Coverage};
    use mprpc_bench::parse_size;
    use std::time::Duration;

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
        // Every target: mprpc, tonic and the raw echoes at every point, the others only where
        // their goals compare them.
        assert_eq!(p.targets, matrix::DEFAULT_TARGETS);
        let named: Vec<_> = p.targets.iter().map(|t| t.0).collect();
        assert_eq!(named, TargetKind::ALL);
        let everywhere: Vec<_> = p
            .targets
            .iter()
            .filter(|t| t.1 == Coverage::Every)
            .map(|t| t.0)
            .collect();
        assert_eq!(
            everywhere,
            [
                TargetKind::Mprpc,
                TargetKind::Tonic,
                TargetKind::RawPipelined,
                TargetKind::RawPerCall
            ]
        );
        // 16 points for each of the three multiplexed ones, 11 for raw-per-call, 9 for the
        // goals of the other five.
        let (points, _) = matrix::plan(&p);
        assert_eq!(points.len(), 68);
        // Then server and client streaming, with the matrix's repetitions and window.
        let streams = cli
            .echo
            .streaming(&p)
            .unwrap()
            .expect("streaming in the default run");
        assert_eq!(
            streams.parts,
            [streams::Part::Server, streams::Part::Client]
        );
        assert_eq!((streams.reps, streams.duration), (3, p.duration));
        // About 10.9 + 1.0 minutes: the documented "about 12 min", under 15.
        let all = matrix::estimate(&p, points.len()) + streams.estimate();
        assert!(all > Duration::from_secs(11 * 60) && all < Duration::from_secs(12 * 60));
        for args in [
            &["bench", "--no-streaming"][..],
            &["bench", "--targets", "mprpc"],
        ] {
            let echo = Cli::parse_from(args).echo;
            assert!(echo.streaming(&echo.profile().unwrap()).unwrap().is_none());
        }
        assert_eq!(p.payloads, vec![64, 4096, 1 << 20]);
        assert_eq!(p.concurrency, vec![1, 16, 128, 1024]);
        assert_eq!(p.connections, vec![1, 64]);
        let asked = Cli::parse_from(["bench", "--targets", "tonic,tonic-on-mprpc"]).echo;
        assert_eq!(
            asked.profile().unwrap().targets,
            [
                (TargetKind::Tonic, Coverage::Every),
                (TargetKind::TonicOnMprpc, Coverage::Every)
            ]
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
