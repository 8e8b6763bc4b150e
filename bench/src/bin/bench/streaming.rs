//! `bench streaming`: server and client streams side by side, and a stalled reader.

use anyhow::{bail, Context};
use mprpc_bench::streaming::{self, StreamingOptions};
use mprpc_bench::{goals, machine, runner};

use crate::preamble;

pub(crate) fn run_streaming(options: &StreamingOptions) -> anyhow::Result<()> {
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
