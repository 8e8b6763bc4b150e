//! One client connection on the provider side.
//!
//! The read loop decodes frames and starts a task per call; the call tasks hand their replies
//! to the connection's writer task ([`crate::protocol::writer`]), which coalesces them.
//! A malformed stream gets a `GoAway` frame naming the problem, after which the connection is
//! closed once the calls already running on it have answered. Nothing a peer sends can take
//! down anything but its own connection.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::run_call;
use super::Shared;
use crate::metrics::Side;
use crate::protocol::codec::decode_header;
use crate::protocol::writer::{write_loop, BusyHint, QUEUE_DEPTH};
use crate::protocol::{
    CancelHeader, Frame, FrameDecoder, FrameKind, GoAwayHeader, OutFrame, RequestHeader,
    ResponseHeader,
};
use crate::sync::lock;
use crate::trace::TraceContext;
use crate::{Code, Metadata, Request, Status};
use tracing::Instrument;

/// Read buffer size: large enough to take many small frames per read.
const READ_CAPACITY: usize = 64 * 1024;
/// Frames handled in a row before the read loop looks at shutdown and idleness again.
const FRAMES_PER_TURN: usize = 64;

/// Calls running on this connection, by request id, so a `Cancel` can stop one.
type InFlight = Arc<Mutex<HashMap<u64, AbortHandle>>>;

pub(crate) struct Connection {
    peer: SocketAddr,
    /// Calls in flight on this connection, for the writer's batching.
    busy: Arc<BusyHint>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    force_close: CancellationToken,
}

/// Why the read loop ended.
enum Ending {
    /// The peer closed its side: answer what is running, then close.
    PeerClosed,
    /// Shutdown: answer what is running, then close.
    Drained,
    /// A protocol error: tell the peer why, answer what is running, then close.
    Broken(Status),
    /// Nothing happened for too long.
    Idle,
    /// The socket failed or the grace period ran out: stop everything.
    Abort,
}

impl Connection {
    pub(crate) fn new(
        peer: SocketAddr,
        shared: Arc<Shared>,
        shutdown: watch::Receiver<bool>,
        force_close: CancellationToken,
    ) -> Connection {
        Connection {
            peer,
            busy: Arc::default(),
            shared,
            shutdown,
            force_close,
        }
    }

    pub(crate) async fn run(mut self, stream: TcpStream) {
        let peer = self.peer;
        tracing::debug!(%peer, "connection opened");
        let metrics = self.shared.metrics.clone();
        metrics.connection(Side::Server, 1);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer_busy = self.busy.clone();
        let write_timeout = self.shared.config.write_timeout;
        // Cancelled when the writer fails (the peer stopped reading, or the socket broke): the
        // reader then stops too, and the calls are dropped.
        let writer_failed = CancellationToken::new();
        let on_failure = writer_failed.clone();
        let writer = tokio::spawn(async move {
            let written = write_loop(wr, rx, &writer_busy, write_timeout).await;
            if written.is_err() {
                on_failure.cancel();
            }
            written
        });
        let decoder = FrameDecoder::new(self.shared.config.max_frame_size);
        let mut frames = FramedRead::with_capacity(rd, decoder, READ_CAPACITY);
        let calls = TaskTracker::new();
        let in_flight: InFlight = Arc::default();
        let mut draining = false;
        let idle_timeout = self.shared.config.idle_timeout;
        let mut idle_check = tokio::time::interval(idle_check_period(idle_timeout));
        let mut last_activity = Instant::now();
        let unwritten_limit = self.shared.config.max_unwritten_bytes;
        let mut paused = false;

        let force_close = self.force_close.clone().cancelled_owned();
        tokio::pin!(force_close);
        let write_failed = writer_failed.clone().cancelled_owned();
        tokio::pin!(write_failed);
        let ending = 'read: loop {
            // Backpressure: once the client has more than `max_unwritten_bytes` of replies
            // unread, read no more of its calls (TCP then slows it down) until it is back
            // under half of that (watermarks, so that reading resumes in bursts, not one
            // frame at a time); the write timeout ends a client that reads nothing at all.
            let threshold = if paused {
                unwritten_limit / 2
            } else {
                unwritten_limit
            };
            let congested = self.busy.unwritten() > threshold;
            if congested && !paused {
                metrics.read_paused();
                tracing::debug!(%peer, "client has not read {} bytes of replies; pausing reads", self.busy.unwritten());
            }
            paused = congested;
            tokio::select! {
                biased;
                () = &mut force_close => break Ending::Abort,
                () = &mut write_failed => break Ending::Abort,
                _ = self.shutdown.changed(), if !draining => {
                    draining = true;
                    calls.close();
                    let _ = tx.send(go_away(Code::Unavailable, "provider is shutting down")).await;
                }
                () = calls.wait(), if draining => break Ending::Drained,
                () = self.busy.drained_to(unwritten_limit / 2), if congested => {
                    last_activity = Instant::now();
                }
                _ = idle_check.tick() => {
                    if calls.is_empty() && last_activity.elapsed() >= idle_timeout {
                        break Ending::Idle;
                    }
                }
                next = frames.next(), if !congested => {
                    last_activity = Instant::now();
                    // Handle every frame already read before going back to the select: one
                    // read usually brings many.
                    let mut next = next;
                    for turn in 1..=FRAMES_PER_TURN {
                        match next {
                            None => break 'read Ending::PeerClosed,
                            Some(Err(e)) if is_io(&e) => {
                                tracing::debug!(%peer, "read failed: {e}");
                                break 'read Ending::Abort;
                            }
                            Some(Err(e)) => break 'read Ending::Broken(e.to_status()),
                            Some(Ok(frame)) => {
                                let handled = self.on_frame(frame, draining, &tx, &calls, &in_flight).await;
                                if let Err(status) = handled {
                                    break 'read Ending::Broken(status);
                                }
                            }
                        }
                        if turn == FRAMES_PER_TURN || self.busy.unwritten() > unwritten_limit {
                            break;
                        }
                        match frames.next().now_or_never() {
                            Some(more) => next = more,
                            None => break,
                        }
                    }
                }
            }
        };

        match ending {
            Ending::Abort => abort_all(&in_flight),
            Ending::Drained => {}
            Ending::Idle => {
                let _ = tx
                    .send(go_away(Code::Unavailable, "idle connection closed"))
                    .await;
            }
            Ending::PeerClosed | Ending::Broken(_) => {
                if let Ending::Broken(status) = &ending {
                    tracing::warn!(%peer, "closing connection: {status}");
                    let _ = tx.send(go_away(status.code(), status.message())).await;
                }
                calls.close();
                tokio::select! {
                    () = calls.wait() => {}
                    () = self.force_close.cancelled() => abort_all(&in_flight),
                }
            }
        }
        // The writer ends once the last sender (ours and the call tasks') is gone.
        drop(tx);
        calls.close();
        calls.wait().await;
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                metrics.write_timed_out(Side::Server);
                tracing::warn!(%peer, "closing connection: {e}");
            }
            Ok(Err(e)) => tracing::debug!(%peer, "write failed: {e}"),
            Err(e) => tracing::error!(%peer, "writer task failed: {e}"),
        }
        metrics.connection(Side::Server, -1);
        tracing::debug!(%peer, "connection closed");
    }

    /// Handles one frame. An `Err` means the stream is unusable and the connection must close.
    async fn on_frame(
        &self,
        frame: Frame,
        draining: bool,
        tx: &mpsc::Sender<OutFrame>,
        calls: &TaskTracker,
        in_flight: &InFlight,
    ) -> Result<(), Status> {
        match frame.kind {
            FrameKind::Request => {
                let header: RequestHeader = decode_header(&frame).map_err(|e| e.to_status())?;
                self.on_request(header, frame.body, draining, tx, calls, in_flight)
                    .await;
            }
            FrameKind::Cancel => {
                let header: CancelHeader = decode_header(&frame).map_err(|e| e.to_status())?;
                let handle = lock(in_flight).remove(&header.request_id);
                if let Some(handle) = handle {
                    handle.abort();
                }
            }
            FrameKind::Ping => {
                let _ = tx.send(OutFrame::Pong(frame.body)).await;
            }
            FrameKind::Pong | FrameKind::GoAway => {}
            FrameKind::Response => {
                return Err(Status::internal(
                    "protocol error: a client sent a response frame",
                ))
            }
        }
        Ok(())
    }

    async fn on_request(
        &self,
        header: RequestHeader,
        body: Bytes,
        draining: bool,
        tx: &mpsc::Sender<OutFrame>,
        calls: &TaskTracker,
        in_flight: &InFlight,
    ) {
        let id = header.request_id;
        let metrics = &self.shared.metrics;
        let refuse = |status: Status| {
            metrics.rejected(status.code());
            OutFrame::Response(error_header(id, &status), Bytes::new())
        };
        if draining {
            let status = Status::unavailable("provider is shutting down; the call was not run");
            let _ = tx.send(refuse(status)).await;
            return;
        }
        let Some(service) = self.shared.router.get(&header.service).cloned() else {
            let status = self.shared.router.unknown_service(&header.service);
            let _ = tx.send(refuse(status)).await;
            return;
        };
        if !service.methods().contains(&header.method.as_str()) {
            let status = Status::unimplemented(format!(
                "service `{}` has no method `{}`",
                header.service, header.method
            ));
            let _ = tx.send(refuse(status)).await;
            return;
        }
        let per_connection = self.shared.config.max_calls_per_connection;
        if self.busy.count() >= per_connection {
            let status = Status::resource_exhausted(format!(
                "the connection is at its limit of {per_connection} calls in flight"
            ));
            let _ = tx.send(refuse(status)).await;
            return;
        }
        let Ok(permit) = self.shared.calls.clone().try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "provider is at its limit of {} calls in flight",
                self.shared.config.max_concurrent_calls
            ));
            let _ = tx.send(refuse(status)).await;
            return;
        };
        let record = metrics
            .method(Side::Server, &header.service, &header.method)
            .start();
        let deadline = (header.timeout_us > 0)
            .then(|| Instant::now() + Duration::from_micros(header.timeout_us));
        let metadata = Metadata::from_entries(
            header
                .metadata
                .into_iter()
                .map(|e| (e.key, e.value))
                .collect(),
        );
        let parent = TraceContext::from_metadata(&metadata);
        let trace = parent.map_or_else(TraceContext::new_root, |p| p.child());
        let span = tracing::info_span!(
            "rpc.server",
            service = %header.service,
            method = %header.method,
            trace_id = %trace.trace_hex(),
            span_id = %trace.span_hex(),
            parent_span_id = %parent.map(|p| p.span_hex()).unwrap_or_default(),
            queue_us = tracing::field::Empty,
        );
        let arrived = Instant::now();
        let request = Request::from_parts(body, metadata, deadline, Some(self.peer));
        let max_frame_size = self.shared.config.max_frame_size;
        let tx = tx.clone();
        let task_in_flight = in_flight.clone();
        let method = header.method;

        let call_span = span.clone();
        let busy = BusyGuard::enter(self.busy.clone());
        let work = async move {
            let busy = busy;
            call_span.record("queue_us", arrived.elapsed().as_micros() as u64);
            let handler = tracing::info_span!(parent: &call_span, "handler");
            let outcome = trace
                .scope(run_call(service, method, request, deadline).instrument(handler))
                .await;
            lock(&task_in_flight).remove(&id);
            let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
            tracing::debug!(
                parent: &call_span,
                code = %code,
                elapsed_us = arrived.elapsed().as_micros() as u64,
                "reply"
            );
            record.finish(code);
            // The handler is done: its permit goes back now, not once the reply is written,
            // so a client that reads slowly holds only its own connection's slots.
            drop(permit);
            let reply = match outcome {
                Ok(body) if body.len() + 64 > max_frame_size => {
                    let status = Status::resource_exhausted(format!(
                        "the reply of {} bytes exceeds the maximum frame size of {max_frame_size} bytes",
                        body.len()
                    ));
                    OutFrame::Response(error_header(id, &status), Bytes::new())
                }
                Ok(body) => {
                    busy.0.reply_queued(body.len());
                    OutFrame::Response(ok_header(id), body)
                }
                Err(status) => OutFrame::Response(error_header(id, &status), Bytes::new()),
            };
            let _ = tx.send(reply).await;
        };
        // A deliberate choice: the call's first poll runs right here, on the connection's
        // reader. A handler that answers without waiting (most do) then costs no task spawn
        // and no extra wake-up; one that waits is moved to a task of its own and runs in
        // parallel with the rest. (A handler that computes for long without awaiting
        // should use `spawn_blocking`, as anywhere in tokio.)
        let mut work = Box::pin(work.instrument(span));
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        if first.is_ready() {
            return;
        }
        // Spawn while holding the lock, so the task cannot remove its entry before it exists.
        let mut guard = lock(in_flight);
        let handle = calls.spawn(work);
        guard.insert(id, handle.abort_handle());
    }
}

/// Accepts and closes a connection over the `max_connections` limit, saying why.
pub(crate) async fn refuse(mut stream: TcpStream, limit: usize) {
    let mut buf = bytes::BytesMut::new();
    go_away(
        Code::ResourceExhausted,
        &format!("provider is at its limit of {limit} connections"),
    )
    .encode(&mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&buf).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Counts a call in flight on the connection until dropped (also when the call is aborted).
struct BusyGuard(Arc<BusyHint>);

impl BusyGuard {
    fn enter(hint: Arc<BusyHint>) -> BusyGuard {
        hint.enter();
        BusyGuard(hint)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn ok_header(request_id: u64) -> ResponseHeader {
    ResponseHeader {
        request_id,
        code: 0,
        message: String::new(),
        metadata: Vec::new(),
    }
}

fn error_header(request_id: u64, status: &Status) -> ResponseHeader {
    ResponseHeader {
        request_id,
        code: status.code().as_i32(),
        message: status.message().to_owned(),
        metadata: Vec::new(),
    }
}

fn go_away(code: Code, message: &str) -> OutFrame {
    OutFrame::GoAway(GoAwayHeader {
        code: code.as_i32(),
        message: message.to_owned(),
    })
}

fn abort_all(in_flight: &InFlight) {
    for (_, handle) in lock(in_flight).drain() {
        handle.abort();
    }
}

fn is_io(e: &crate::protocol::ProtocolError) -> bool {
    matches!(e, crate::protocol::ProtocolError::Io(_))
}

fn idle_check_period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).max(Duration::from_millis(10))
}
