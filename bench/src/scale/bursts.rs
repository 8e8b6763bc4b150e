//! Memory after bursts of connections: one server process gets `rounds` bursts of thousands
//! of connections, each used for one call and then closed, and its resident memory is read
//! after every burst has closed and settled.
//!
//! A server that frees what a connection held shows a flat line after the first burst; one
//! whose allocator keeps freed memory scattered over many half-used pages climbs round after
//! round. The figure that matters is the last round's resident memory over the first's.

use std::fmt::Write;
use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Runtime;

use crate::certs::Certs;
use crate::matrix::connect_all;
use crate::process::{ServerProcess, ServerSpec};
use crate::targets::TargetKind;
use crate::with_target;

/// What one target's server showed.
#[derive(Clone, Debug)]
pub struct BurstFigure {
    /// The target.
    pub target: TargetKind,
    /// Connections per burst.
    pub connections: usize,
    /// Server RSS before any connection, KiB.
    pub before_kib: u64,
    /// Server RSS after each burst closed and settled, KiB.
    pub after_round_kib: Vec<u64>,
}

impl BurstFigure {
    /// The last round's RSS over the first's.
    pub fn growth(&self) -> f64 {
        match (self.after_round_kib.first(), self.after_round_kib.last()) {
            (Some(&first), Some(&last)) if first > 0 => last as f64 / first as f64,
            _ => 0.0,
        }
    }
}

/// Gives a fresh server of `target` `rounds` bursts of `connections` connections.
pub fn measure(
    target: TargetKind,
    connections: usize,
    rounds: usize,
    settle: Duration,
    runtime: &Runtime,
    server_cpu: Option<usize>,
    certs: Option<&Certs>,
) -> anyhow::Result<BurstFigure> {
    let server = ServerProcess::spawn(ServerSpec {
        target,
        threads: 1,
        cpu: server_cpu,
        certs: certs.cloned(),
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let before_kib = server.rss_kib();
    let address = server.address();
    let mut after_round_kib = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        with_target!(target, T => {
            let callers = runtime
                .block_on(connect_all::<T>(address, connections, certs))
                .with_context(|| format!("round {round}: opening {connections} {target} connections"))?;
            drop(callers);
        });
        // Let the server see every close and drop what the connections held.
        std::thread::sleep(settle);
        let kib = server.rss_kib();
        eprintln!(
            "bursts: {target} round {round}: {:.1} MiB",
            kib as f64 / 1024.0
        );
        after_round_kib.push(kib);
    }
    server.stop()?;
    Ok(BurstFigure {
        target,
        connections,
        before_kib,
        after_round_kib,
    })
}

/// The figures as a markdown table.
pub fn table(figures: &[BurstFigure]) -> String {
    let mut out = String::new();
    let rounds = figures
        .iter()
        .map(|f| f.after_round_kib.len())
        .max()
        .unwrap_or(0);
    let _ = write!(out, "| target | connections per burst | RSS before |");
    for r in 1..=rounds {
        let _ = write!(out, " after {r} |");
    }
    let _ = writeln!(out, " last / first |");
    let _ = write!(out, "| --- | ---: | ---: |");
    for _ in 0..rounds {
        let _ = write!(out, " ---: |");
    }
    let _ = writeln!(out, " ---: |");
    for f in figures {
        let _ = write!(
            out,
            "| {} | {} | {:.1} MiB |",
            f.target,
            crate::report::thousands(f.connections as f64),
            f.before_kib as f64 / 1024.0
        );
        for kib in &f.after_round_kib {
            let _ = write!(out, " {:.1} MiB |", *kib as f64 / 1024.0);
        }
        let _ = writeln!(out, " {:.2}x |", f.growth());
    }
    out
}
