//! A stalled reader: what a client that stops reading a server stream costs the server.
//!
//! One repetition: a fresh server process; the client connects and reads one short stream to
//! its end (32 replies of `--stall-size` bytes, so the server's buffers for such replies exist
//! before the baseline), then after 300 ms the server's RSS is read: the **baseline**. The
//! client opens an endless stream of `--stall-size` replies, reads the first, and then does
//! not read for `--stall` (10 s). Meanwhile the driver reads the server's RSS every 50 ms: the
//! **peak** is the highest of those readings and of the server's `VmHWM` if it rose past its
//! value at the baseline (so a peak between two readings still counts); **growth** is peak −
//! baseline. Also reported: the RSS at the end of the stall, the server's CPU time over the
//! stall (a sender that waits for credit uses none), what the mprpc client holds unread
//! (`Streaming::buffered_bytes`), and the RSS 500 ms after the client drops the stream.
//!
//! The sender's credit is the reader's stream window: for mprpc, the client's
//! `stream_window` (2 MiB by default); for tonic, hyper's client default (2 MiB per stream,
//! 5 MiB per connection).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::runtime::Runtime;

use super::server_stream::{mprpc_client, tonic_client};
use super::{StreamTarget, StreamingOptions};
use crate::matrix::median;

/// Replies read to the end before the baseline.
const WARMUP_REPLIES: u64 = 32;
/// How often the server's RSS is read during the stall.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// One repetition's figures, KiB unless said otherwise.
#[derive(Clone, Debug, Default)]
pub struct StallRun {
    /// Server RSS before the stream opened.
    pub baseline_kib: u64,
    /// The highest server RSS during the stall.
    pub peak_kib: u64,
    /// Server RSS at the end of the stall.
    pub end_kib: u64,
    /// Server RSS 500 ms after the client dropped the stream.
    pub after_kib: u64,
    /// Server CPU seconds over the stall.
    pub server_cpu_s: f64,
    /// Bytes the client held unread at the end of the stall (mprpc only).
    pub client_buffered: Option<u64>,
}

impl StallRun {
    /// Peak minus baseline.
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.baseline_kib)
    }
}

/// Every repetition for one target.
#[derive(Clone, Debug)]
pub struct StallFigure {
    /// The system.
    pub target: StreamTarget,
    /// Payload bytes per reply.
    pub size: usize,
    /// The reader's stream window that holds the sender back, bytes.
    pub window: u64,
    /// The repetitions, or why each failed.
    pub runs: Vec<Result<StallRun, String>>,
}

impl StallFigure {
    /// No repetitions yet.
    pub fn new(target: StreamTarget, size: usize) -> StallFigure {
        let window = match target {
            StreamTarget::Mprpc => crate::targets::mprpc::client_config().stream_window as u64,
            // hyper's client default (tonic sets none of its own).
            _ => 2 << 20,
        };
        StallFigure {
            target,
            size,
            window,
            runs: Vec::new(),
        }
    }

    fn ok(&self) -> impl Iterator<Item = &StallRun> {
        self.runs.iter().filter_map(|r| r.as_ref().ok())
    }

    /// The repetition with the median growth.
    pub fn median_run(&self) -> Option<&StallRun> {
        let mut runs: Vec<&StallRun> = self.ok().collect();
        runs.sort_by_key(|r| r.growth_kib());
        runs.get(runs.len().saturating_sub(1) / 2).copied()
    }

    /// The largest growth of any repetition, KiB.
    pub fn max_growth_kib(&self) -> Option<u64> {
        self.ok().map(StallRun::growth_kib).max()
    }

    /// Median server CPU over the stall, s.
    pub fn server_cpu_s(&self) -> Option<f64> {
        median(&self.ok().map(|r| r.server_cpu_s).collect::<Vec<_>>())
    }

    /// Failed repetitions, and the first error.
    pub fn errors(&self) -> (usize, Option<&str>) {
        let mut failed = self.runs.iter().filter_map(|r| r.as_ref().err());
        let first = failed.next().map(String::as_str);
        (usize::from(first.is_some()) + failed.count(), first)
    }
}

/// One repetition of the stall for `target` (mprpc or tonic).
pub fn measure(
    target: StreamTarget,
    options: &StreamingOptions,
    runtime: &Runtime,
    cpu: Option<usize>,
) -> anyhow::Result<StallRun> {
    let server = target.spawn(cpu)?;
    let address = server.address();
    let size = options.stall_size;
    let client = runtime
        .block_on(runtime.spawn(Client::warm_up(target, address, size)))?
        .context("reading a first stream to its end")?;
    std::thread::sleep(Duration::from_millis(300));
    let baseline_kib = server.rss_kib();
    let baseline_hwm = server.peak_rss_kib();
    let held = runtime
        .block_on(runtime.spawn(client.open(size)))?
        .context("opening the stalled stream")?;
    let cpu_before = server.cpu_ticks();
    let started = Instant::now();
    let mut peak_kib = baseline_kib;
    while started.elapsed() < options.stall {
        std::thread::sleep(SAMPLE_EVERY);
        peak_kib = peak_kib.max(server.rss_kib());
    }
    let end_kib = server.rss_kib();
    let hwm = server.peak_rss_kib();
    if hwm > baseline_hwm {
        peak_kib = peak_kib.max(hwm);
    }
    let server_cpu_s =
        server.cpu_ticks().saturating_sub(cpu_before) as f64 / crate::machine::TICKS_PER_SECOND;
    let client_buffered = match &held {
        Held::Mprpc { replies, .. } => Some(replies.buffered_bytes() as u64),
        Held::Tonic { .. } => None,
    };
    // Dropped on the runtime: dropping a stream cancels its call.
    runtime.block_on(runtime.spawn(async move { drop(held) }))?;
    std::thread::sleep(Duration::from_millis(500));
    let after_kib = server.rss_kib();
    server.stop()?;
    Ok(StallRun {
        baseline_kib,
        peak_kib: peak_kib.max(end_kib),
        end_kib,
        after_kib,
        server_cpu_s,
        client_buffered,
    })
}

/// A connected client of one target.
enum Client {
    Mprpc(crate::proto::bench_client::BenchClient),
    Tonic(crate::grpc::bench_client::BenchClient<::tonic::transport::Channel>),
}

/// A stream read once and then left alone, with its client (both kept until dropped).
enum Held {
    Mprpc {
        replies: ::mprpc::stream::Streaming<crate::proto::EchoResponse>,
        _client: crate::proto::bench_client::BenchClient,
    },
    Tonic {
        _replies: Box<::tonic::Streaming<crate::grpc::EchoResponse>>,
        _client: crate::grpc::bench_client::BenchClient<::tonic::transport::Channel>,
    },
}

fn failed(s: impl std::fmt::Debug, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {s:?}")
}

impl Client {
    /// Connects and reads [`WARMUP_REPLIES`] replies of `size` bytes to the stream's end.
    async fn warm_up(
        target: StreamTarget,
        address: SocketAddr,
        size: usize,
    ) -> anyhow::Result<Client> {
        let size = u32::try_from(size)?;
        let client = match target {
            StreamTarget::Mprpc => Client::Mprpc(mprpc_client(address)),
            StreamTarget::Tonic => Client::Tonic(tonic_client(address).await?),
            StreamTarget::Raw => anyhow::bail!("the stall part has no raw target"),
        };
        let mut read = 0;
        match &client {
            Client::Mprpc(c) => {
                let request = crate::proto::SubscribeRequest {
                    count: WARMUP_REPLIES,
                    size,
                };
                let mut replies = c.subscribe(request).await.map_err(|s| failed(s, "open"))?;
                while replies
                    .message()
                    .await
                    .map_err(|s| failed(s, "read"))?
                    .is_some()
                {
                    read += 1;
                }
            }
            Client::Tonic(c) => {
                let request = crate::grpc::SubscribeRequest {
                    count: WARMUP_REPLIES,
                    size,
                };
                let mut replies = c
                    .clone()
                    .subscribe(request)
                    .await
                    .map_err(|s| failed(s, "open"))?
                    .into_inner();
                while replies
                    .message()
                    .await
                    .map_err(|s| failed(s, "read"))?
                    .is_some()
                {
                    read += 1;
                }
            }
        }
        anyhow::ensure!(read == WARMUP_REPLIES, "{read} replies of {WARMUP_REPLIES}");
        Ok(client)
    }

    /// Opens an endless stream of `size`-byte replies and reads its first.
    async fn open(self, size: usize) -> anyhow::Result<Held> {
        let size = u32::try_from(size)?;
        match self {
            Client::Mprpc(c) => {
                let request = crate::proto::SubscribeRequest {
                    count: u64::MAX,
                    size,
                };
                let mut replies = c.subscribe(request).await.map_err(|s| failed(s, "open"))?;
                replies
                    .message()
                    .await
                    .map_err(|s| failed(s, "read"))?
                    .context("the stream ended at once")?;
                Ok(Held::Mprpc {
                    replies,
                    _client: c,
                })
            }
            Client::Tonic(mut c) => {
                let request = crate::grpc::SubscribeRequest {
                    count: u64::MAX,
                    size,
                };
                let mut replies = c
                    .subscribe(request)
                    .await
                    .map_err(|s| failed(s, "open"))?
                    .into_inner();
                replies
                    .message()
                    .await
                    .map_err(|s| failed(s, "read"))?
                    .context("the stream ended at once")?;
                Ok(Held::Tonic {
                    _replies: Box::new(replies),
                    _client: c,
                })
            }
        }
    }
}
