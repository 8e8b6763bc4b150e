//! Memory per idle connection: one server process, thousands of client connections, each
//! used for one 64-byte call and then left open and idle.
//!
//! The figure is the server's resident memory (`VmRSS`) once the connections are open and
//! have settled, minus what it was before any connection, divided by the number of
//! connections. The client's own growth is shown too (it holds the other end).

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::runtime::Runtime;

use crate::certs::Certs;
use crate::machine;
use crate::matrix::connect_all;
use crate::process::{ServerProcess, ServerSpec};
use crate::targets::TargetKind;
use crate::with_target;

/// What one target's server showed.
#[derive(Clone, Debug)]
pub struct IdleFigure {
    /// The target.
    pub target: TargetKind,
    /// Connections opened.
    pub connections: usize,
    /// Time to open them (and make one call on each), 64 at a time.
    pub connect_time: Duration,
    /// Server RSS before any connection, KiB.
    pub server_before_kib: u64,
    /// Server RSS with every connection open and idle, KiB.
    pub server_after_kib: u64,
    /// Client RSS growth, KiB.
    pub client_growth_kib: u64,
}

impl IdleFigure {
    /// Server KiB per connection.
    pub fn server_per_connection_kib(&self) -> f64 {
        self.server_after_kib.saturating_sub(self.server_before_kib) as f64
            / self.connections.max(1) as f64
    }
}

/// Opens `connections` connections of `target` to a fresh server and measures.
pub fn measure(
    target: TargetKind,
    connections: usize,
    runtime: &Runtime,
    server_cpu: Option<usize>,
    certs: Option<&Certs>,
) -> anyhow::Result<IdleFigure> {
    let server = ServerProcess::spawn(ServerSpec {
        target,
        threads: 1,
        cpu: server_cpu,
        certs: certs.cloned(),
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let server_before_kib = server.rss_kib();
    let client_before = machine::rss_kib(None).unwrap_or(0);
    let address = server.address();
    let started = Instant::now();
    with_target!(target, T => {
        let callers = runtime
            .block_on(connect_all::<T>(address, connections, certs))
            .with_context(|| format!("opening {connections} {target} connections"))?;
        let connect_time = started.elapsed();
        // Let both sides settle (buffers shrink, tasks park).
        std::thread::sleep(Duration::from_secs(2));
        let figure = IdleFigure {
            target,
            connections: callers.len(),
            connect_time,
            server_before_kib,
            server_after_kib: server.rss_kib(),
            client_growth_kib: machine::rss_kib(None)
                .unwrap_or(0)
                .saturating_sub(client_before),
        };
        drop(callers);
        server.stop()?;
        Ok(figure)
    })
}

/// The figures as a markdown table.
pub fn table(figures: &[IdleFigure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | connections | time to open | server RSS before | server RSS after | server KiB per connection | client growth KiB per connection |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} | {:.1} |",
            f.target,
            crate::report::thousands(f.connections as f64),
            f.connect_time.as_secs_f64(),
            f.server_before_kib as f64 / 1024.0,
            f.server_after_kib as f64 / 1024.0,
            f.server_per_connection_kib(),
            f.client_growth_kib as f64 / f.connections.max(1) as f64,
        );
    }
    out
}
