//! Client streaming: one upload of large chunks on one connection, as fast as the receiver
//! lets it go.
//!
//! One repetition: a fresh server process; the client (one task on the driver's runtime)
//! connects and makes one untimed upload for `--warmup`, then the timed one: it reads the CPU
//! counters, uploads a stream of `--chunk-size` chunks (all sharing one buffer) that ends once
//! `--duration` has passed since the start, waits for the server's reply (the count of
//! messages and bytes it read), and reads the counters again. MiB/s is the bytes the server
//! counted over the time from the first chunk to the reply, so every target is measured to
//! the same point: everything received and read by the handler (for raw: by the server's
//! reading loop). A stream's requests are pulled as credit allows: mprpc and tonic take the
//! next chunk only when their flow control lets it go, raw when the socket takes it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use tokio::runtime::Runtime;

use super::server_stream::{mprpc_client, tonic_client};
use super::{raw, Probe, RateRun, StreamTarget, StreamingOptions};

/// One repetition of the client-streaming part for `target`.
pub fn measure(
    target: StreamTarget,
    options: &StreamingOptions,
    runtime: &Runtime,
    cpu: Option<usize>,
) -> anyhow::Result<RateRun> {
    let server = target.spawn(cpu)?;
    let pid = server.pid();
    let address = server.address();
    let size = options.chunk_size;
    let (warmup, duration) = (options.warmup, options.duration);
    let timed = runtime.spawn(async move {
        let mut uploader = Uploader::connect(target, address, size).await?;
        uploader.upload(Instant::now() + warmup).await?;
        let from = Probe::take(pid);
        let (messages, bytes) = uploader.upload(from.at + duration).await?;
        let to = Probe::take(pid);
        anyhow::Ok(from.until(&to, messages, bytes))
    });
    let outcome = runtime.block_on(async {
        tokio::time::timeout(warmup + duration + Duration::from_secs(30), timed).await
    });
    let mut run = outcome
        .context("the upload did not finish 30 s after its window")?
        .context("the upload task")??;
    run.server_peak_kib = server.peak_rss_kib();
    server.stop()?;
    if run.bytes != run.messages * size as u64 {
        bail!(
            "the server counted {} bytes in {} messages of {size}",
            run.bytes,
            run.messages
        );
    }
    Ok(run)
}

/// One client of one target, on one connection.
enum Uploader {
    Mprpc(crate::proto::bench_client::BenchClient, Bytes),
    Tonic(
        crate::grpc::bench_client::BenchClient<::tonic::transport::Channel>,
        Bytes,
    ),
    Raw(raw::RawUploader, Vec<u8>),
}

impl Uploader {
    /// Connects to `address`, with chunks of `size` bytes.
    async fn connect(
        target: StreamTarget,
        address: SocketAddr,
        size: usize,
    ) -> anyhow::Result<Uploader> {
        let chunk = Bytes::from(vec![0xA5; size]);
        Ok(match target {
            StreamTarget::Mprpc => Uploader::Mprpc(mprpc_client(address), chunk),
            StreamTarget::Tonic => Uploader::Tonic(tonic_client(address).await?, chunk),
            StreamTarget::Raw => {
                Uploader::Raw(raw::RawUploader::connect(address).await?, raw::frame(size))
            }
        })
    }

    /// Uploads chunks until `until`, then ends the stream; returns what the server counted:
    /// (messages, bytes).
    async fn upload(&mut self, until: Instant) -> anyhow::Result<(u64, u64)> {
        match self {
            Uploader::Mprpc(client, chunk) => {
                let chunk = chunk.clone();
                let chunks = until_then(until, move || crate::proto::EchoRequest {
                    payload: chunk.clone(),
                });
                let reply = client
                    .upload(chunks)
                    .await
                    .map_err(|s| anyhow::anyhow!("{:?} {}", s.code(), s.message()))?;
                Ok((reply.messages, reply.bytes))
            }
            Uploader::Tonic(client, chunk) => {
                let chunk = chunk.clone();
                let chunks = until_then(until, move || crate::grpc::EchoRequest {
                    payload: chunk.clone(),
                });
                let reply = client
                    .upload(chunks)
                    .await
                    .map_err(|s| anyhow::anyhow!("{:?} {}", s.code(), s.message()))?
                    .into_inner();
                Ok((reply.messages, reply.bytes))
            }
            Uploader::Raw(uploader, frame) => Ok(uploader.upload(frame, until).await?),
        }
    }
}

/// A stream of `make()`s that ends at `until` (checked as each item is asked for).
fn until_then<T, F>(until: Instant, mut make: F) -> impl futures_util::Stream<Item = T> + Send
where
    F: FnMut() -> T + Send + 'static,
    T: Send,
{
    futures_util::stream::iter(std::iter::from_fn(move || {
        (Instant::now() < until).then(&mut make)
    }))
}
