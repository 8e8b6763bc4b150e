//! Server streaming: one stream of small replies on one connection, read as fast as they
//! come.
//!
//! One repetition: a fresh server process; the client (one task on the driver's runtime)
//! connects, opens one endless stream (`Subscribe` with `count` = 2^64 − 1 and `size` =
//! `--message-size`; raw: the `S` command) and reads it, checking each reply's size and
//! counting it. Once the first reply is in, the driver lets it run for `--warmup`, reads the
//! count and the CPU counters, waits `--duration`, reads them again, and stops the reader,
//! which drops the stream (mprpc sends `Cancel`, tonic `RST_STREAM`, raw closes). Messages/s
//! is the count's growth over the window; the server's and client's CPU is over the same
//! window. The reader stores its count in an atomic after each message (raw: after each
//! `read`), which the driver's thread reads: nothing else is added per message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::runtime::Runtime;

use super::{raw, Probe, RateRun, StreamTarget, StreamingOptions};

/// How long the first reply may take (connecting included).
const FIRST_REPLY: Duration = Duration::from_secs(10);

/// One repetition of the server-streaming part for `target`.
pub fn measure(
    target: StreamTarget,
    options: &StreamingOptions,
    runtime: &Runtime,
    cpu: Option<usize>,
) -> anyhow::Result<RateRun> {
    let server = target.spawn(cpu)?;
    let pid = server.pid();
    let size = options.message_size;
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = runtime.spawn(read(
        target,
        server.address(),
        size,
        counter.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    while counter.load(Ordering::Relaxed) == 0 {
        if reader.is_finished() {
            let outcome = runtime.block_on(reader)?;
            bail!("the stream ended before its first reply: {outcome:?}");
        }
        if started.elapsed() > FIRST_REPLY {
            reader.abort();
            bail!("no reply within {FIRST_REPLY:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(options.warmup);
    let (first, from) = (counter.load(Ordering::Relaxed), Probe::take(pid));
    std::thread::sleep(options.duration);
    let (last, to) = (counter.load(Ordering::Relaxed), Probe::take(pid));
    stop.store(true, Ordering::Relaxed);
    let finished = runtime.block_on(async {
        let abort = reader.abort_handle();
        match tokio::time::timeout(Duration::from_secs(5), reader).await {
            Ok(joined) => joined.ok(),
            Err(_) => {
                abort.abort();
                None
            }
        }
    });
    let mut run = from.until(&to, last - first, (last - first) * size as u64);
    run.server_peak_kib = server.peak_rss_kib();
    server.stop()?;
    if let Some(Err(e)) = finished {
        run.error = Some(e);
    }
    Ok(run)
}

/// Reads one endless stream of `size`-byte replies from `address`, counting them in
/// `counter`, until `stop`.
async fn read(
    target: StreamTarget,
    address: SocketAddr,
    size: usize,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    match target {
        StreamTarget::Mprpc => read_mprpc(address, size, &counter, &stop).await,
        StreamTarget::Tonic => read_tonic(address, size, &counter, &stop).await,
        StreamTarget::Raw => raw::read_stream(address, size, &counter, &stop).await,
    }
}

/// The request for an endless stream of `size`-byte replies.
fn endless(size: usize) -> (u64, u32) {
    (u64::MAX, u32::try_from(size).unwrap_or(u32::MAX))
}

async fn read_mprpc(
    address: SocketAddr,
    size: usize,
    counter: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), String> {
    use crate::proto::SubscribeRequest;
    let client = mprpc_client(address);
    let (count, size32) = endless(size);
    let request = SubscribeRequest {
        count,
        size: size32,
    };
    let mut replies = client
        .subscribe(request)
        .await
        .map_err(|s| format!("opening the stream: {:?} {}", s.code(), s.message()))?;
    let mut read = 0;
    while !stop.load(Ordering::Relaxed) {
        match replies.message().await {
            Ok(Some(reply)) if reply.payload.len() == size => {
                read += 1;
                counter.store(read, Ordering::Relaxed);
            }
            Ok(Some(reply)) => return Err(format!("a reply of {} bytes", reply.payload.len())),
            Ok(None) => return Err("the stream ended".to_owned()),
            Err(s) => return Err(format!("{:?} {}", s.code(), s.message())),
        }
    }
    Ok(())
}

async fn read_tonic(
    address: SocketAddr,
    size: usize,
    counter: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), String> {
    use crate::grpc::SubscribeRequest;
    let mut client = tonic_client(address)
        .await
        .map_err(|e| format!("connect: {e:#}"))?;
    let (count, size32) = endless(size);
    let request = SubscribeRequest {
        count,
        size: size32,
    };
    let mut replies = client
        .subscribe(request)
        .await
        .map_err(|s| format!("opening the stream: {:?} {}", s.code(), s.message()))?
        .into_inner();
    let mut read = 0;
    while !stop.load(Ordering::Relaxed) {
        match replies.message().await {
            Ok(Some(reply)) if reply.payload.len() == size => {
                read += 1;
                counter.store(read, Ordering::Relaxed);
            }
            Ok(Some(reply)) => return Err(format!("a reply of {} bytes", reply.payload.len())),
            Ok(None) => return Err("the stream ended".to_owned()),
            Err(s) => return Err(format!("{:?} {}", s.code(), s.message())),
        }
    }
    Ok(())
}

/// The generated mprpc client over one channel to `address`, with the side-by-side run's
/// client settings (`stream_window` and `connection_window` at their defaults).
pub(crate) fn mprpc_client(address: SocketAddr) -> crate::proto::bench_client::BenchClient {
    let channel = ::mprpc::client::Channel::to_addresses(
        vec![address.to_string()],
        crate::targets::mprpc::client_config(),
    );
    crate::proto::bench_client::BenchClient::new(channel)
}

/// The generated tonic client over one HTTP/2 connection to `address` (tonic's defaults,
/// `TCP_NODELAY`, as the side-by-side run's).
pub(crate) async fn tonic_client(
    address: SocketAddr,
) -> anyhow::Result<crate::grpc::bench_client::BenchClient<::tonic::transport::Channel>> {
    let channel = ::tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(crate::grpc::bench_client::BenchClient::new(channel))
}
