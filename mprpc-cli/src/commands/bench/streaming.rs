//! `mprpc bench` on a streaming method: `--concurrency` drivers, each keeping one stream open
//! at a time until the run's end, opening the next when one ends (well or not).
//!
//! - server-streaming: each stream sends the `--data` request; its replies are counted;
//! - client-streaming: each stream sends the `--data` message over and over, as fast as flow
//!   control lets it, until the end, then half-closes and waits (at most the unary
//!   `--timeout`) for the reply; the requests are counted;
//! - bidirectional: requests as for client streaming, replies counted as for server
//!   streaming; a stream still open at the end is cancelled.
//!
//! Only the messages and failures after the warm-up count; `streams` and `streams ended`
//! count the whole run. A stream that fails counts as an error under
//! its status code (a client stream whose reply does not come in time, as
//! `DeadlineExceeded`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use mprpc::client::Channel;
use mprpc::stream::{EncodedStream, MethodKind, Streaming};
use mprpc::{Body, Code, Request};
use tokio::time::Instant;

use super::stream_summary::{Counts, Failures, StreamSummary};
use super::{progress_bar, Args, Live, Plan};
use crate::commands::request::Prepared;
use crate::target::Target;

/// What every stream of the run carries.
struct StreamCall {
    channel: Channel,
    service: String,
    method: String,
    kind: MethodKind,
    /// The call's metadata and budget; its body is the one request of a server stream.
    request: Request<Body>,
    /// The message a client stream sends, over and over.
    message: Bytes,
    /// How long a client stream waits for its reply after the end.
    grace: Duration,
}

/// Runs the bench of a streaming method of `kind` and prints its summary.
pub(super) async fn run(
    target: &Target,
    args: &Args,
    prepared: Prepared,
    kind: MethodKind,
) -> anyhow::Result<()> {
    let message = prepared.request.into_inner().into_bytes();
    let call = Arc::new(StreamCall {
        channel: prepared.calls,
        service: args.request.service().to_owned(),
        method: args.request.method().to_owned(),
        kind,
        request: args
            .request
            .request(message.clone(), target.stream_timeout()),
        message,
        grace: target.timeout(),
    });
    let start = Instant::now();
    let plan = Plan {
        start,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        rate: None,
    };
    let live = Arc::new(Live::default());
    let counts = Arc::new(Counts::default());
    let progress = progress_bar(plan, live.clone(), "messages");
    let mut drivers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        drivers.spawn(driver(plan, call.clone(), counts.clone(), live.clone()));
    }
    let mut failures = Failures::new();
    while let Some(done) = drivers.join_next().await {
        for (code, n) in done.context("a stream driver failed")? {
            *failures.entry(code).or_default() += n;
        }
    }
    progress.abort();
    // Wait for the bar to be cleared before the summary is printed.
    let _ = progress.await;

    let summary = StreamSummary::new(
        format!("{}/{}", call.service, call.method),
        kind,
        args.concurrency,
        args.duration.as_secs_f64(),
        &counts,
        &failures,
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

/// One stream after another until the end; the failures counted.
async fn driver(
    plan: Plan,
    call: Arc<StreamCall>,
    counts: Arc<Counts>,
    live: Arc<Live>,
) -> Failures {
    let mut failures = Failures::new();
    while Instant::now() < plan.end {
        let Err(code) = one_stream(plan, &call, &counts, &live).await else {
            continue;
        };
        if Instant::now() >= plan.measure_from {
            *failures.entry(code).or_default() += 1;
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    failures
}

/// Opens one stream and drives it to its end, or to the run's.
async fn one_stream(
    plan: Plan,
    call: &StreamCall,
    counts: &Arc<Counts>,
    live: &Arc<Live>,
) -> Result<(), Code> {
    // The progress bar counts what the summary's `messages` does.
    let live_counts_requests = !call.kind.server_streams();
    let requests = call.kind.client_streams().then(|| {
        let live = live_counts_requests.then(|| live.clone());
        repeat(plan, call.message.clone(), counts.clone(), live)
    });
    Counts::add(&counts.streams, 1);
    let open = call.channel.streaming_raw(
        &call.service,
        &call.method,
        call.kind,
        call.request.clone(),
        requests,
    );
    let Ok(opened) = tokio::time::timeout_at(plan.end, open).await else {
        return Ok(());
    };
    let replies = opened.map_err(|status| status.code())?;
    if call.kind.server_streams() {
        read_replies(plan, replies, counts, live).await
    } else {
        await_reply(plan.end + call.grace, replies, counts).await
    }
}

/// Reads and counts replies until the stream ends (then counted as ended) or the run does
/// (then the stream is cancelled).
async fn read_replies(
    plan: Plan,
    mut replies: Streaming<Bytes>,
    counts: &Counts,
    live: &Live,
) -> Result<(), Code> {
    loop {
        let next = tokio::select! {
            () = tokio::time::sleep_until(plan.end) => return Ok(()),
            next = replies.message() => next,
        };
        let now = Instant::now();
        let measured = now >= plan.measure_from && now < plan.end;
        match next {
            Ok(Some(body)) if measured => {
                Counts::add(&counts.received, 1);
                Counts::add(&counts.received_bytes, body.len() as u64);
                live.calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                Counts::add(&counts.ended, 1);
                return Ok(());
            }
            Err(status) => return Err(status.code()),
        }
    }
}

/// Waits until `until` for a client stream's one reply (its requests end at the run's end).
async fn await_reply(
    until: Instant,
    mut replies: Streaming<Bytes>,
    counts: &Counts,
) -> Result<(), Code> {
    match tokio::time::timeout_at(until, replies.message()).await {
        Ok(Ok(_)) => {
            Counts::add(&counts.ended, 1);
            Ok(())
        }
        Ok(Err(status)) => Err(status.code()),
        Err(_) => Err(Code::DeadlineExceeded),
    }
}

/// `message` over and over until the run's end, each counted as sent when the channel's
/// sender takes it (after the warm-up), in `live` too if given.
fn repeat(
    plan: Plan,
    message: Bytes,
    counts: Arc<Counts>,
    live: Option<Arc<Live>>,
) -> EncodedStream {
    Box::pin(futures_util::stream::unfold((), move |()| {
        let message = message.clone();
        let counts = counts.clone();
        let live = live.clone();
        async move {
            let now = Instant::now();
            if now >= plan.end {
                return None;
            }
            if now >= plan.measure_from {
                Counts::add(&counts.sent, 1);
                Counts::add(&counts.sent_bytes, message.len() as u64);
                if let Some(live) = &live {
                    live.calls.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some((Body::from(message), ()))
        }
    }))
}
