//! `echo_bench`: closed-loop echo calls over one connection, at several payload sizes and
//! numbers of calls in flight; prints a markdown table of throughput and latency.
//!
//! The server and the load client run in this one process, each on a tokio runtime of its
//! own (one worker each by default), talking over TCP on 127.0.0.1. Build with `--release`:
//!
//! ```text
//! cargo run --release -p mprpc-bench --bin echo_bench
//! cargo run --release -p mprpc-bench --bin echo_bench -- --payload 64,4096 --concurrency 1,16,128
//! ```
//!
//! See `docs/BENCHMARKS.md` for what is measured and for results.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use mprpc_bench::machine;
use mprpc_bench::report::{self, Row};
use mprpc_bench::runner::{self, Setting};
use mprpc_bench::target::{Mprpc, Target};
use tokio::runtime::Runtime;

/// Closed-loop echo benchmark: N tasks on one connection, each sending a call and waiting for
/// its reply before sending the next. Prints a markdown table (latencies in µs).
#[derive(Parser, Debug)]
#[command(name = "echo_bench", version)]
struct Args {
    /// Calls in flight (closed-loop tasks), one row per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128")]
    concurrency: Vec<usize>,
    /// Payload bytes per request (echoed back), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    payload: Vec<usize>,
    /// Load before each measurement, not recorded (e.g. 500ms, 1s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measurement window of each row (e.g. 3s).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// Worker threads of the load client's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Pin the server runtime's threads to CPU 0 and the client runtime's to CPU 1.
    #[arg(long)]
    pin: bool,
    /// Systems to measure, comma-separated, one after the other.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mprpc")]
    targets: Vec<TargetKind>,
}

/// The systems `--targets` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// mprpc's provider and channel.
    Mprpc,
}

/// `250ms`, `1s`, `1.5s`, `2m` (or a bare number of seconds) as a duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms or 3s"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "" | "s" => number,
        "m" => number * 60.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use us, ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Runtimes for the server and the load client.
struct Runtimes {
    server: Runtime,
    client: Runtime,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency.contains(&0) {
        bail!("--concurrency levels must be at least 1");
    }
    if args.server_threads == 0 || args.client_threads == 0 {
        bail!("--server-threads and --client-threads must be at least 1");
    }
    let machine = machine::describe();
    let command = machine::command_line();
    let (server_cpu, client_cpu) = if args.pin {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    let runtimes = Runtimes {
        server: runner::runtime("bench-server", args.server_threads, server_cpu)
            .context("starting the server runtime")?,
        client: runner::runtime("bench-client", args.client_threads, client_cpu)
            .context("starting the client runtime")?,
    };

    let cpu_before = machine::CpuSnapshot::take();
    let mut rows = Vec::new();
    for kind in &args.targets {
        match kind {
            TargetKind::Mprpc => rows.extend(run_target(&Mprpc, &runtimes, &args)?),
        }
    }
    let cpu_after = machine::CpuSnapshot::take();

    println!("# echo_bench");
    println!();
    if cfg!(debug_assertions) {
        println!("**Debug build: these figures mean little; use `--release`.**");
        println!();
    }
    println!("- machine: {machine}");
    println!("- command: `{command}`");
    println!(
        "- setup: server runtime {} worker(s), client runtime {} worker(s), {}; one connection; \
         closed loop; warm-up {:?}, window {:?} per row",
        args.server_threads,
        args.client_threads,
        if args.pin {
            "server pinned to CPU 0, client to CPU 1"
        } else {
            "not pinned (they share the CPUs with each other and everything else)"
        },
        args.warmup,
        args.duration,
    );
    println!();
    print!("{}", report::table(&rows));
    println!();
    println!("Latencies in µs, from sending a call to its decoded reply; calls/s counts successful calls.");
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let (own, others) = before.shares_until(&after);
        println!(
            "CPU time during the run, as a share of all {} CPUs: this process {own:.0}%, \
             other processes {others:.0}% (more than a few % means the figures are noisy).",
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
    }
    match machine::peak_rss_kib() {
        Some(kib) => println!(
            "Peak RSS of the process (server and client together; VmHWM): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("Peak RSS: unknown (no /proc/self/status)"),
    }
    Ok(())
}

/// Starts `target`'s server, measures every setting through one client, stops the server.
fn run_target<T: Target>(target: &T, runtimes: &Runtimes, args: &Args) -> anyhow::Result<Vec<Row>> {
    let (address, server) = target.start_server(&runtimes.server)?;
    let caller = target.connect(&runtimes.client, address)?;
    let mut rows = Vec::new();
    for &payload in &args.payload {
        for &concurrency in &args.concurrency {
            let setting = Setting {
                payload,
                concurrency,
                warmup: args.warmup,
                duration: args.duration,
            };
            eprintln!(
                "{}: {payload} B, {concurrency} in flight: warming up {:?}, measuring {:?}",
                target.name(),
                args.warmup,
                args.duration
            );
            let measurement = runner::measure(&runtimes.client, &caller, &setting);
            rows.push(Row {
                target: target.name(),
                measurement,
            });
        }
    }
    drop(caller);
    target.stop_server(&runtimes.server, server)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn default_arguments_are_the_documented_ones() {
        let args = Args::parse_from(["echo_bench"]);
        assert_eq!(args.concurrency, vec![1, 16, 128]);
        assert_eq!(args.payload, vec![64]);
        assert_eq!(args.warmup, Duration::from_secs(1));
        assert_eq!(args.duration, Duration::from_secs(3));
        assert_eq!((args.server_threads, args.client_threads), (1, 1));
        assert_eq!(args.targets, vec![TargetKind::Mprpc]);
        let args = Args::parse_from(["echo_bench", "--payload", "64,4096"]);
        assert_eq!(args.payload, vec![64, 4096]);
    }
}
