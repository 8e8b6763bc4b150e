//! Throughput as providers are added: one mprpc `Channel` over 1, 2, 3 provider processes
//! (a static registry listing them; calls go round robin), the same closed-loop load as the
//! side-by-side run.
//!
//! On this 2-CPU machine the providers and the client share the two CPUs, so more providers
//! cannot add capacity: the figure shows what spreading over more connections and processes
//! costs, and how evenly the calls are spread (each provider's share of the providers' CPU).

use std::fmt::Write;

use tokio::runtime::Runtime;

use crate::machine::{self, MachineCpu};
use crate::matrix::{Point, PointResult, Run};
use crate::process::{ServerProcess, ServerSpec};
use crate::report::{micros, sig3, thousands};
use crate::runner::{self, Setting};
use crate::targets::mprpc::MprpcCaller;
use crate::targets::{Caller, TargetKind};

/// What one number of providers showed.
#[derive(Clone, Debug)]
pub struct ProvidersFigure {
    /// The repetitions, as a point of `connections` = providers.
    pub result: PointResult,
    /// Each provider's share of the providers' CPU time over all windows, %.
    pub cpu_shares: Vec<f64>,
}

/// Measures 1..=`max` providers.
pub fn measure(
    max: usize,
    setting: &Setting,
    reps: usize,
    runtime: &Runtime,
    server_cpu: Option<usize>,
) -> anyhow::Result<Vec<ProvidersFigure>> {
    let mut figures = Vec::new();
    for n in 1..=max {
        eprintln!("providers: {n}");
        let servers = (0..n)
            .map(|_| {
                ServerProcess::spawn(ServerSpec {
                    target: TargetKind::Mprpc,
                    threads: 1,
                    cpu: server_cpu,
                    certs: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let addresses: Vec<_> = servers.iter().map(ServerProcess::address).collect();
        let caller = MprpcCaller::over(&addresses);
        // One call per provider opens every connection before measuring.
        for _ in 0..n {
            runtime
                .block_on(caller.call(&bytes::Bytes::from_static(b"hello")))
                .map_err(|e| anyhow::anyhow!("a first call failed: {e}"))?;
        }
        let pids: Vec<u32> = servers.iter().map(ServerProcess::pid).collect();
        let probe = || {
            (
                pids.iter()
                    .map(|&p| machine::cpu_ticks(Some(p)).unwrap_or(0))
                    .collect::<Vec<_>>(),
                machine::cpu_ticks(None).unwrap_or(0),
                MachineCpu::take(),
            )
        };
        let mut runs = Vec::new();
        let mut per_provider = vec![0u64; n];
        for _ in 0..reps {
            let callers = [caller.clone()];
            let (measurement, (start, end)) = runner::measure(runtime, &callers, setting, probe);
            let server_ticks: Vec<u64> = end
                .0
                .iter()
                .zip(&start.0)
                .map(|(e, s)| e.saturating_sub(*s))
                .collect();
            for (total, t) in per_provider.iter_mut().zip(&server_ticks) {
                *total += t;
            }
            let servers_total: u64 = server_ticks.iter().sum();
            let client = end.1.saturating_sub(start.1);
            runs.push(Run {
                measurement,
                server_cpu_s: servers_total as f64 / machine::TICKS_PER_SECOND,
                client_cpu_s: client as f64 / machine::TICKS_PER_SECOND,
                others_percent: start.2.others_percent(&end.2, servers_total + client),
                server_peak_kib: 0,
            });
        }
        let all: u64 = per_provider.iter().sum::<u64>().max(1);
        figures.push(ProvidersFigure {
            result: PointResult {
                point: Point {
                    target: TargetKind::Mprpc,
                    payload: setting.payload,
                    concurrency: setting.concurrency,
                    connections: n,
                },
                runs,
            },
            cpu_shares: per_provider
                .iter()
                .map(|&t| 100.0 * t as f64 / all as f64)
                .collect(),
        });
        drop(caller);
        for server in servers {
            server.stop()?;
        }
    }
    Ok(figures)
}

/// The figures as a markdown table.
pub fn table(figures: &[ProvidersFigure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| providers | calls/s | spread (min–max) | p50 | p99 | providers' CPU s/1k | client CPU s/1k | CPU share per provider | others % | errors |"
    );
    let _ = writeln!(
        out,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
    );
    for f in figures {
        let r = &f.result;
        let (min, max) = r.spread();
        let cpu = r.cpu_per_1k();
        let shares: Vec<String> = f.cpu_shares.iter().map(|s| format!("{s:.0}%")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {}–{} | {} | {} | {} | {} | {} | {:.0} | {} |",
            r.point.connections,
            thousands(r.calls_per_second()),
            thousands(min),
            thousands(max),
            micros(r.latency_us(0.5)),
            micros(r.latency_us(0.99)),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.0)),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.1)),
            shares.join(" / "),
            r.others_percent(),
            r.errors().values().sum::<u64>(),
        );
    }
    out
}
