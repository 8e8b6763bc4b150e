//! The test service's streaming methods: a server stream on demand, an upload that counts,
//! and a bidirectional echo. Each counts in the service's [`crate::Counters`]: `started`
//! when a stream starts, `finished` when it ends by itself, `abandoned` when it is dropped
//! before that (the caller cancelled, or the deadline passed).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mprpc::stream::{BoxStream, Streaming};
use mprpc::{Code, Status};

use crate::{Counters, EchoService, StreamReply, StreamRequest};

/// Counts a stream that is dropped before it finished.
struct Watch {
    counters: Arc<Counters>,
    done: bool,
}

impl Watch {
    fn start(service: &EchoService) -> Watch {
        service.counters.started.fetch_add(1, Ordering::SeqCst);
        Watch {
            counters: service.counters.clone(),
            done: false,
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.counters.finished.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.counters.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `count` replies of `size` bytes, every `interval_ms`, then `fail_code` if set.
pub fn subscribe(service: &EchoService, request: StreamRequest) -> BoxStream<StreamReply> {
    let mut watch = Watch::start(service);
    let name = service.name.clone();
    let payload = bytes::Bytes::from(vec![b'x'; request.size as usize]);
    Box::pin(async_stream(move |tx| async move {
        for seq in 0..u64::from(request.count) {
            if request.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(request.interval_ms))).await;
            }
            let reply = StreamReply {
                payload: payload.to_vec(),
                seq,
                served_by: name.clone(),
                ..StreamReply::default()
            };
            if tx.send(Ok(reply)).await.is_err() {
                return;
            }
        }
        watch.finish();
        if request.fail_code != 0 {
            let status = Status::new(Code::from_i32(request.fail_code), request.fail_message);
            let _ = tx.send(Err(status)).await;
        }
    }))
}

/// Counts the requests and their payload bytes.
pub async fn upload(
    service: &EchoService,
    mut requests: Streaming<StreamRequest>,
) -> Result<StreamReply, Status> {
    let mut watch = Watch::start(service);
    let (mut messages, mut bytes) = (0, 0);
    while let Some(request) = requests.message().await? {
        if request.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(request.interval_ms))).await;
        }
        if request.fail_code != 0 {
            watch.finish();
            return Err(Status::new(
                Code::from_i32(request.fail_code),
                request.fail_message,
            ));
        }
        messages += 1;
        bytes += request.payload.len() as u64;
    }
    watch.finish();
    Ok(StreamReply {
        messages,
        bytes,
        served_by: service.name.clone(),
        ..StreamReply::default()
    })
}

/// Answers each request with its payload, `count` times (at least once).
pub fn chat(
    service: &EchoService,
    mut requests: Streaming<StreamRequest>,
) -> BoxStream<StreamReply> {
    let mut watch = Watch::start(service);
    let name = service.name.clone();
    Box::pin(async_stream(move |tx| async move {
        let mut seq = 0;
        while let Some(request) = requests.next().await {
            let request = match request {
                Ok(request) => request,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if request.fail_code != 0 {
                watch.finish();
                let status = Status::new(Code::from_i32(request.fail_code), request.fail_message);
                let _ = tx.send(Err(status)).await;
                return;
            }
            for _ in 0..request.count.max(1) {
                let reply = StreamReply {
                    payload: request.payload.clone(),
                    seq,
                    served_by: name.clone(),
                    ..StreamReply::default()
                };
                seq += 1;
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
        }
        watch.finish();
    }))
}

/// A stream fed by a task-less producer: `body` sends into a channel of one slot, and the
/// stream yields what it sends (the producer runs as the stream is polled).
fn async_stream<F, Fut>(body: F) -> impl futures_util::Stream<Item = Result<StreamReply, Status>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<StreamReply, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let producer = body(tx);
    let replies = tokio_stream_from(rx);
    // The producer is polled together with the stream: no task of its own, so dropping the
    // stream drops the producer.
    futures_util::stream::select(
        futures_util::stream::once(producer).filter_map(|()| async { None }),
        replies,
    )
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
