//! `bench streaming`: server and client streams side by side, and a stalled reader; and the
//! streaming section of the side-by-side run.

use std::fmt::Write;

use anyhow::{bail, Context};
use mprpc_bench::goals::{self, Check};
use mprpc_bench::matrix::size;
use mprpc_bench::streaming::{self, StreamingOptions};
use mprpc_bench::{machine, runner};

use crate::preamble;

pub(crate) fn run_streaming(options: &StreamingOptions) -> anyhow::Result<()> {
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
    let cpu_before = machine::MachineCpu::take();
    let results = streaming::run(options, &runtime, pin);
    let cpu_after = machine::MachineCpu::take();
    let _ = writeln!(
        out,
        "- the run took {:.0} s; the host took {:.1}% of the machine's CPU time (steal: above a \
         few percent, the figures moved with the host's load)",
        started.elapsed().as_secs_f64(),
        cpu_before.steal_percent(&cpu_after),
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
    if let Some(warning) = cpu_before.steal_warning(&cpu_after) {
        let _ = writeln!(out, "{warning}\n");
    }
    let _ = write!(
        out,
        "{}",
        goals::table(&streaming::report::checks(&results))
    );
    print!("{out}");
    Ok(())
}

/// The side-by-side run's streaming section, after its matrix: measures `options`' parts
/// (the client already pinned to CPU 1 when `pin`), writes the throughput table to `out`, and
/// returns the streaming goals for the run's goal table.
pub(crate) fn after_matrix(
    out: &mut String,
    options: &StreamingOptions,
    pin: bool,
) -> anyhow::Result<Vec<Check>> {
    let runtime = runner::runtime("bench-stream", 1)?;
    let started = std::time::Instant::now();
    let results = streaming::run(options, &runtime, pin);
    let _ = writeln!(out, "\n## Streaming: one stream\n");
    let _ = writeln!(
        out,
        "Server streaming of {} replies and client streaming of {} chunks, as `bench streaming \
         --parts server,client` measures them: a fresh server process (1 worker) per part, target \
         and repetition, the client on 1 worker; warm-up {:?}, window {:?}, {} repetition(s), the \
         median reported; {:.0} s. The stalled reader is `bench streaming --parts stall`'s alone.\n",
        size(options.message_size),
        size(options.chunk_size),
        options.warmup,
        options.duration,
        options.reps,
        started.elapsed().as_secs_f64()
    );
    let _ = write!(out, "{}", streaming::report::rates(&results.rates));
    Ok(streaming::report::checks(&results))
}
