//! `bench scale`: idle connections, bursts, providers behind the registry, ZooKeeper.

use anyhow::Context;
use mprpc_bench::certs::RunCerts;
use mprpc_bench::scale::{self, Part, ScaleOptions};
use mprpc_bench::{machine, runner};

use crate::preamble;

pub(crate) fn run_scale(options: &ScaleOptions) -> anyhow::Result<()> {
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
