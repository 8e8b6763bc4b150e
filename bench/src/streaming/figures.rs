//! The figures of the throughput parts: one repetition ([`RateRun`]), every repetition of
//! one part and target ([`RateFigure`], medians and spreads), and the CPU counters read at
//! the edges of a window ([`Probe`]).

use std::time::Instant;

use super::{Part, StreamTarget};
use crate::machine::{self, MachineCpu};
use crate::matrix::median;

/// One repetition of a throughput part (server or client streaming).
#[derive(Clone, Debug, Default)]
pub struct RateRun {
    /// Messages delivered in the window.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The window's length, s.
    pub seconds: f64,
    /// CPU seconds of the server process over the window.
    pub server_cpu_s: f64,
    /// CPU seconds of this (client) process over the window.
    pub client_cpu_s: f64,
    /// Share of the machine's CPU other processes used over the window, %.
    pub others_percent: f64,
    /// The server process's peak RSS over its life, KiB.
    pub server_peak_kib: u64,
    /// What went wrong, if the repetition failed.
    pub error: Option<String>,
}

impl RateRun {
    /// A repetition that could not be measured.
    pub fn failed(error: String) -> RateRun {
        RateRun {
            error: Some(error),
            ..RateRun::default()
        }
    }

    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

/// Every repetition of one throughput part for one target.
#[derive(Clone, Debug)]
pub struct RateFigure {
    /// Server or client streaming.
    pub part: Part,
    /// The system.
    pub target: StreamTarget,
    /// Payload bytes per message.
    pub size: usize,
    /// The repetitions.
    pub runs: Vec<RateRun>,
}

impl RateFigure {
    fn ok(&self) -> impl Iterator<Item = &RateRun> {
        self.runs.iter().filter(|r| r.error.is_none())
    }

    /// Median messages/s over the successful repetitions.
    pub fn per_second(&self) -> Option<f64> {
        median(&self.ok().map(RateRun::per_second).collect::<Vec<_>>())
    }

    /// Lowest and highest messages/s.
    pub fn spread(&self) -> Option<(f64, f64)> {
        let rates: Vec<f64> = self.ok().map(RateRun::per_second).collect();
        let min = rates.iter().copied().reduce(f64::min)?;
        Some((min, rates.iter().copied().fold(min, f64::max)))
    }

    /// Median MiB/s of payload.
    pub fn mib_per_second(&self) -> Option<f64> {
        let rates: Vec<f64> = self
            .ok()
            .map(|r| r.bytes as f64 / f64::from(1 << 20) / r.seconds.max(1e-9))
            .collect();
        median(&rates)
    }

    /// Median CPU µs per message: (server, client).
    pub fn cpu_us_per_message(&self) -> Option<(f64, f64)> {
        let per: Vec<(f64, f64)> = self
            .ok()
            .filter(|r| r.messages > 0)
            .map(|r| {
                let n = r.messages as f64;
                (r.server_cpu_s * 1e6 / n, r.client_cpu_s * 1e6 / n)
            })
            .collect();
        let server = median(&per.iter().map(|p| p.0).collect::<Vec<_>>())?;
        let client = median(&per.iter().map(|p| p.1).collect::<Vec<_>>())?;
        Some((server, client))
    }

    /// Median peak RSS of the server, KiB.
    pub fn server_peak_kib(&self) -> Option<f64> {
        median(
            &self
                .ok()
                .map(|r| r.server_peak_kib as f64)
                .collect::<Vec<_>>(),
        )
    }

    /// The most CPU other processes used in any window, %.
    pub fn others_percent(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.others_percent)
            .fold(0.0, f64::max)
    }

    /// Failed repetitions, and the first error.
    pub fn errors(&self) -> (usize, Option<&str>) {
        let mut failed = self.runs.iter().filter_map(|r| r.error.as_deref());
        let first = failed.next();
        (usize::from(first.is_some()) + failed.count(), first)
    }
}

/// CPU counters of the server, this process and the machine at one instant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    pub(crate) at: Instant,
    server: u64,
    client: u64,
    machine: MachineCpu,
}

impl Probe {
    /// The counters now, `pid` being the server's.
    pub(crate) fn take(pid: u32) -> Probe {
        Probe {
            at: Instant::now(),
            server: machine::cpu_ticks(Some(pid)).unwrap_or(0),
            client: machine::cpu_ticks(None).unwrap_or(0),
            machine: MachineCpu::take(),
        }
    }

    /// A repetition's figures from this probe to `end`, over which `messages` of `bytes`
    /// were delivered.
    pub(crate) fn until(&self, end: &Probe, messages: u64, bytes: u64) -> RateRun {
        let server = end.server.saturating_sub(self.server);
        let client = end.client.saturating_sub(self.client);
        RateRun {
            messages,
            bytes,
            seconds: end.at.duration_since(self.at).as_secs_f64(),
            server_cpu_s: server as f64 / machine::TICKS_PER_SECOND,
            client_cpu_s: client as f64 / machine::TICKS_PER_SECOND,
            others_percent: self.machine.others_percent(&end.machine, server + client),
            server_peak_kib: 0,
            error: None,
        }
    }
}
