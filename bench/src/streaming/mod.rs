//! Streaming calls (`bench streaming`): mprpc's server and client streams side by side with
//! tonic's and with a raw TCP stream, and what a stalled reader costs the sender.
//!
//! | part | what one repetition does | module |
//! | --- | --- | --- |
//! | `server` | one stream of `--message-size` replies (64 B), read as fast as they come: messages/s over the window | [`server_stream`] |
//! | `client` | one upload of `--chunk-size` chunks (1 MiB) for the window, then the server's count: MiB/s from the first chunk to the reply | [`client_stream`] |
//! | `stall` | a stream of `--stall-size` replies (64 KiB) read once, then not for `--stall` (10 s): the server's RSS growth | [`stall`] |
//!
//! Every repetition of every part and target runs against a **fresh server process** with one
//! tokio worker, pinned to CPU 0 (as the side-by-side run's, [`crate::process`]); the client
//! runs in the driver on one worker pinned to CPU 1. The mprpc and tonic servers are the
//! `bench serve` ones (the `Bench` service's `Subscribe` and `Upload`); the raw one is
//! `bench serve-raw-stream` ([`raw`]). Repetitions are the outer loop. [`report`] prints the
//! tables and the goals as ratios.

pub mod client_stream;
mod figures;
pub mod raw;
pub mod report;
pub mod server_stream;
pub mod stall;

use std::time::{Duration, Instant};

use crate::process::{ServerProcess, ServerSpec};
use crate::targets::TargetKind;
use crate::{parse_duration, parse_size};

pub(crate) use self::figures::Probe;
pub use self::figures::{RateFigure, RateRun};

/// The parts of `bench streaming`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Part {
    /// Server streaming: messages/s on one stream.
    Server,
    /// Client streaming: MiB/s of one upload.
    Client,
    /// A reader that stops reading: the sender's memory.
    Stall,
}

/// The systems under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum StreamTarget {
    /// mprpc's streaming calls (the `bench serve --target mprpc` provider).
    Mprpc,
    /// gRPC streams: tonic (the `bench serve --target tonic` server).
    Tonic,
    /// Length-prefixed frames on a bare TCP connection (`bench serve-raw-stream`).
    Raw,
}

impl StreamTarget {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            StreamTarget::Mprpc => "mprpc",
            StreamTarget::Tonic => "tonic",
            StreamTarget::Raw => "raw",
        }
    }

    /// Starts this target's server in a process of its own (1 worker), pinned to `cpu`.
    pub fn spawn(self, cpu: Option<usize>) -> anyhow::Result<ServerProcess> {
        let spec = |target| ServerSpec {
            target,
            threads: 1,
            cpu,
            certs: None,
        };
        match self {
            StreamTarget::Mprpc => ServerProcess::spawn(spec(TargetKind::Mprpc)),
            StreamTarget::Tonic => ServerProcess::spawn(spec(TargetKind::Tonic)),
            StreamTarget::Raw => {
                ServerProcess::spawn_with("raw stream", &["serve-raw-stream".to_owned()], 1, cpu)
            }
        }
    }
}

impl std::fmt::Display for StreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of `bench streaming`.
#[derive(Clone, Debug, clap::Args)]
pub struct StreamingOptions {
    /// Parts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "server,client,stall"
    )]
    pub parts: Vec<Part>,
    /// Targets, comma-separated (`stall` skips raw: it has no flow control of its own).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "mprpc,tonic,raw"
    )]
    pub targets: Vec<StreamTarget>,
    /// Payload bytes of each reply of the server stream.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub message_size: usize,
    /// Payload bytes of each chunk of the upload.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub chunk_size: usize,
    /// Payload bytes of each reply of the stalled stream.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub stall_size: usize,
    /// How long the stalled reader does not read.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stall: Duration,
    /// Repetitions of every part and target (each with a fresh server process).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Streaming before each window, not measured.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The measurement window.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Do not pin the servers to CPU 0 and the client to CPU 1.
    #[arg(long)]
    pub no_pin: bool,
}

impl StreamingOptions {
    /// `bench streaming`'s defaults, as its flags give them (the side-by-side run starts from
    /// these for the streaming parts it adds).
    pub fn defaults() -> Result<StreamingOptions, clap::Error> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            options: StreamingOptions,
        }
        <Defaults as clap::Parser>::try_parse_from(["streaming"]).map(|d| d.options)
    }

    /// Roughly how long the run takes.
    pub fn estimate(&self) -> Duration {
        let targets = self.targets.len() as u32;
        let stall_targets = self
            .targets
            .iter()
            .filter(|t| **t != StreamTarget::Raw)
            .count() as u32;
        let rate = self.warmup + self.duration + Duration::from_millis(300);
        let mut one_rep = Duration::ZERO;
        for part in &self.parts {
            one_rep += match part {
                Part::Server | Part::Client => rate * targets,
                Part::Stall => (self.stall + Duration::from_secs(1)) * stall_targets,
            };
        }
        one_rep * u32::try_from(self.reps.max(1)).unwrap_or(u32::MAX)
    }
}

/// Everything `bench streaming` measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// Server and client streaming, per target.
    pub rates: Vec<RateFigure>,
    /// The stalled reader, per target.
    pub stalls: Vec<stall::StallFigure>,
}

/// Runs every part for every target, `options.reps` times (repetitions the outer loop),
/// printing progress on stderr. The client runs on `runtime`.
pub fn run(options: &StreamingOptions, runtime: &tokio::runtime::Runtime, pin: bool) -> Results {
    let cpu = pin.then_some(0);
    let mut results = Results::default();
    for &part in &options.parts {
        for &target in &options.targets {
            match part {
                Part::Server | Part::Client => results.rates.push(RateFigure {
                    part,
                    target,
                    size: if part == Part::Server {
                        options.message_size
                    } else {
                        options.chunk_size
                    },
                    runs: Vec::new(),
                }),
                Part::Stall if target != StreamTarget::Raw => {
                    results
                        .stalls
                        .push(stall::StallFigure::new(target, options.stall_size));
                }
                Part::Stall => {}
            }
        }
    }
    let started = Instant::now();
    for rep in 1..=options.reps.max(1) {
        for figure in &mut results.rates {
            eprintln!(
                "[{:.0} s] {:?} streaming, {}, rep {rep}",
                started.elapsed().as_secs_f64(),
                figure.part,
                figure.target
            );
            let run = match figure.part {
                Part::Server => server_stream::measure(figure.target, options, runtime, cpu),
                _ => client_stream::measure(figure.target, options, runtime, cpu),
            }
            .unwrap_or_else(|e| RateRun::failed(format!("{e:#}")));
            match &run.error {
                Some(e) => eprintln!("  failed: {e}"),
                None => eprintln!(
                    "  {:.0} messages/s, {:.1} MiB/s",
                    run.per_second(),
                    run.bytes as f64 / f64::from(1 << 20) / run.seconds.max(1e-9)
                ),
            }
            figure.runs.push(run);
        }
        for figure in &mut results.stalls {
            eprintln!(
                "[{:.0} s] stalled reader, {}, rep {rep}",
                started.elapsed().as_secs_f64(),
                figure.target
            );
            let run = stall::measure(figure.target, options, runtime, cpu);
            match &run {
                Ok(r) => eprintln!("  server RSS growth {} KiB", r.growth_kib()),
                Err(e) => eprintln!("  failed: {e:#}"),
            }
            figure.runs.push(run.map_err(|e| format!("{e:#}")));
        }
    }
    results
}

#[cfg(test)]
mod tests;
