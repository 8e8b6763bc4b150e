//! One client connection on the provider side.
//!
//! The read loop takes in every frame already readable (a *batch*), then acts on it: cancels
//! first, then calls, so that a call whose caller cancelled it, or went away, in the same
//! read never starts ([`call`] admits and starts each call). Call tasks hand their replies to
//! the connection's writer task ([`crate::protocol::writer`]) through an
//! [`Outbox`], which counts every byte queued against the connection's budget
//! (`max_unwritten_bytes`): past it the loop reads nothing more until the client has read.
//!
//! A malformed stream, or a frame trickled in too slowly, gets a `GoAway` frame naming the
//! problem (logged within a rate limit, see [`super::complaints`]), after which the
//! connection is closed once the calls already running on it have answered. A client that
//! closes its connection has given up: its calls are dropped at their next await point.
//! Nothing a peer sends can take down anything but its own connection.

mod call;
mod flags;
mod grpc;
mod http;
mod legacy;
mod stream;
mod unary;

pub(crate) use self::http::Descriptors;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::call::Step;
use self::flags::Flags;
use super::transport::Protocol;
use super::Shared;
use crate::config::CallerClock;
use crate::hash::IdMap;
use crate::metrics::{QueuedBytes, Side};
use crate::protocol::codec::decode_header;
use crate::protocol::writer::{write_loop, BusyHint};
use crate::protocol::{
    CancelHeader, Frame, FrameDecoder, FrameKind, FrameReader, GoAwayHeader, OutFrame, Outbox,
    ProtocolError,
};
use crate::stream::{StreamTable, Windows};
use crate::sync::lock;
use crate::tls::PeerIdentity;
use crate::{Code, Status};

/// What a connection runs on: TCP, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Read buffer size to start with; it grows for larger frames.
const READ_CAPACITY: usize = 16 * 1024;
/// Frames taken in one batch before the loop acts on them (and looks at its flags again).
const FRAMES_PER_TURN: usize = 64;
/// Bytes taken in one batch (after its first frame) before the loop acts on it.
const BATCH_BYTES: usize = 1024 * 1024;

/// Calls running on this connection, by request id, so a `Cancel` can stop one.
type InFlight = Arc<Mutex<IdMap<AbortHandle>>>;

pub(crate) struct Connection {
    peer: SocketAddr,
    /// Calls in flight and bytes queued on this connection.
    busy: Arc<BusyHint>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    force_close: CancellationToken,
    /// Whether the caller's clock may tell how long a request waited before it was read.
    trust_caller_clock: bool,
    /// The client's identity, under mutual TLS.
    identity: Option<PeerIdentity>,
}

/// What a batch of frames works with.
struct Turn<'a> {
    tx: &'a Outbox,
    /// The connection's open streaming calls.
    streams: &'a Arc<StreamTable>,
    calls: &'a TaskTracker,
    in_flight: &'a InFlight,
    draining: bool,
}

/// Why the read loop ended.
enum Ending {
    /// The peer closed its side: it has given up on its calls.
    PeerClosed,
    /// Shutdown: answer what is running, then close.
    Drained,
    /// A protocol error (its kind, for metrics and logs): tell the peer why, answer what is
    /// running, then close.
    Broken(&'static str, Status),
    /// Nothing happened for too long.
    Idle,
    /// The socket failed or the grace period ran out: stop everything.
    Abort,
}

impl QueuedBytes for BusyHint {
    fn queued_bytes(&self) -> usize {
        self.unwritten()
    }
}

impl Connection {
    pub(crate) fn new(
        peer: SocketAddr,
        local: Option<SocketAddr>,
        shared: Arc<Shared>,
        shutdown: watch::Receiver<bool>,
        force_close: CancellationToken,
    ) -> Connection {
        let same_host = peer.ip().is_loopback() || local.is_some_and(|l| l.ip() == peer.ip());
        let trust_caller_clock = match shared.config.caller_clock {
            CallerClock::SameHost => same_host,
            CallerClock::Synchronized => true,
            CallerClock::Ignore => false,
        };
        Connection {
            peer,
            busy: Arc::default(),
            shared,
            shutdown,
            force_close,
            trust_caller_clock,
            identity: None,
        }
    }

    /// Serves a plaintext connection until it ends.
    pub(crate) async fn run_tcp(self, stream: TcpStream) {
        let (rd, wr) = stream.into_split();
        self.run(rd, wr).await;
    }

    /// The connection of a client with this identity (under mutual TLS): every request
    /// carries it in its extensions.
    pub(crate) fn with_identity(mut self, identity: Option<PeerIdentity>) -> Connection {
        self.identity = identity;
        self
    }

    /// Serves a connection in `protocol` until it ends.
    pub(crate) async fn run_protocol<S: Io>(self, protocol: Protocol, stream: S) {
        match protocol {
            Protocol::Mprpc => {
                let (rd, wr) = tokio::io::split(stream);
                self.run(rd, wr).await;
            }
            Protocol::Legacy => self.run_legacy(stream).await,
            Protocol::Http => self.run_http(stream).await,
            Protocol::Grpc => self.run_grpc(stream).await,
        }
    }

    /// A request of this connection's: its peer, and its client's identity under mutual TLS.
    fn request(
        &self,
        body: bytes::Bytes,
        metadata: crate::Metadata,
        deadline: Option<Instant>,
    ) -> crate::Request<crate::Body> {
        let mut request =
            crate::Request::from_parts(body.into(), metadata, deadline, Some(self.peer));
        if let Some(identity) = &self.identity {
            request.extensions_mut().insert(identity.clone());
        }
        request
    }

    async fn run<R, W>(mut self, rd: R, wr: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        tracing::debug!(%peer, "connection opened");
        let metrics = self.shared.metrics.clone();
        metrics.connection(Side::Server, 1);
        let _queue = metrics.track_server_queue(self.busy.clone());
        let (tx, rx) = Outbox::new(self.busy.clone());
        // Cancelled when the writer fails (the peer stopped reading, or the socket broke): the
        // reader then stops too, and the calls are dropped.
        let writer_failed = CancellationToken::new();
        let writer = self.spawn_writer(wr, rx, writer_failed.clone());
        let decoder = FrameDecoder::new(self.shared.config.max_frame_size);
        let mut frames = FrameReader::with_capacity(rd, decoder, READ_CAPACITY);
        let calls = TaskTracker::new();
        let in_flight: InFlight = Arc::default();
        let windows = Windows {
            stream: self.shared.config.stream_window as u64,
            connection: self.shared.config.connection_window as u64,
        };
        let streams = Arc::new(StreamTable::new(tx.clone(), windows));
        let turn = Turn {
            tx: &tx,
            streams: &streams,
            calls: &calls,
            in_flight: &in_flight,
            draining: false,
        };
        let ending = self.read_loop(&mut frames, turn, &writer_failed).await;
        self.end(ending, &tx, &calls, &in_flight, &streams).await;
        // The writer ends once the last sender (ours, the stream table's and the call
        // tasks') is gone.
        drop(tx);
        drop(streams);
        calls.close();
        calls.wait().await;
        self.join_writer(writer).await;
        metrics.connection(Side::Server, -1);
        tracing::debug!(%peer, "connection closed");
    }

    /// Starts the connection's writer task; `failed` is cancelled if writing fails.
    fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
        &self,
        wr: W,
        rx: mpsc::Receiver<OutFrame>,
        failed: CancellationToken,
    ) -> JoinHandle<std::io::Result<()>> {
        let busy = self.busy.clone();
        let write_timeout = self.shared.config.write_timeout;
        tokio::spawn(async move {
            let written = write_loop(wr, rx, &busy, write_timeout).await;
            if written.is_err() {
                failed.cancel();
            }
            written
        })
    }

    /// Reads frames and acts on them until the connection has to end, and says why.
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FrameReader<R>,
        mut turn: Turn<'_>,
        writer_failed: &CancellationToken,
    ) -> Ending {
        let peer = self.peer;
        let metrics = self.shared.metrics.clone();
        let config = &self.shared.config;
        let (idle_timeout, frame_timeout) = (config.idle_timeout, config.frame_timeout);
        let min_frame_rate = config.min_frame_rate;
        let mut idle_check = tokio::time::interval(check_period(idle_timeout.min(frame_timeout)));
        let mut last_activity = Instant::now();
        let unwritten_limit = config.max_unwritten_bytes;
        let mut paused = false;
        let mut batch = Vec::new();
        let force_close = self.force_close.clone().cancelled_owned();
        tokio::pin!(force_close);
        let write_failed = writer_failed.clone().cancelled_owned();
        tokio::pin!(write_failed);
        loop {
            // Backpressure: once the client has more than `max_unwritten_bytes` queued and
            // unread, read nothing more from it (TCP then slows it down) until it is back
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
                tracing::debug!(%peer, "client has not read {} queued bytes; pausing reads", self.busy.unwritten());
            } else if paused && !congested {
                // The time reads were paused is ours, not the peer's.
                frames.decoder_mut().restart_partial_clock();
            }
            paused = congested;
            // The rare events by their flags (`flags.rs`): the socket comes first below.
            match self.flags(&turn, writer_failed) {
                Flags::Go => {}
                Flags::Drain => self.start_draining(&mut turn).await,
                Flags::Stop(ending) => return ending,
            }
            tokio::select! {
                biased;
                next = frames.next(), if !congested => {
                    last_activity = Instant::now();
                    let end = gather(frames, next, &mut batch, peer);
                    match self.flags(&turn, writer_failed) {
                        Flags::Go => {}
                        Flags::Drain => self.start_draining(&mut turn).await,
                        Flags::Stop(ending) => return ending,
                    }
                    // A caller that closed the connection has given up on every call.
                    let caller_gone = matches!(end, Some(Ending::PeerClosed | Ending::Abort));
                    if let Err(ending) = self.on_batch(&mut batch, caller_gone, &turn).await {
                        return ending;
                    }
                    if let Some(end) = end {
                        return end;
                    }
                }
                () = &mut force_close => return Ending::Abort,
                () = &mut write_failed => return Ending::Abort,
                _ = self.shutdown.changed(), if !turn.draining => {
                    self.start_draining(&mut turn).await;
                }
                () = turn.calls.wait(), if turn.draining => return Ending::Drained,
                () = self.busy.drained_to(unwritten_limit / 2), if congested => {
                    last_activity = Instant::now();
                }
                _ = idle_check.tick() => {
                    if let Some(status) = too_slow(frames.decoder(), frame_timeout, min_frame_rate, paused) {
                        return Ending::Broken("slow_frame", status);
                    }
                    if turn.calls.is_empty() && last_activity.elapsed() >= idle_timeout {
                        return Ending::Idle;
                    }
                }
            }
        }
    }

    /// Acts on why the read loop ended: aborts the calls, or tells the peer why it closes.
    async fn end(
        &self,
        ending: Ending,
        tx: &Outbox,
        calls: &TaskTracker,
        in_flight: &InFlight,
        streams: &StreamTable,
    ) {
        match ending {
            Ending::Abort if self.force_close.is_cancelled() => {
                stream::cut_off(tx, streams, in_flight, self.shared.config.shutdown_grace);
                abort_all(in_flight);
            }
            Ending::Abort | Ending::PeerClosed => abort_all(in_flight),
            Ending::Drained => {}
            Ending::Idle => {
                let _ = tx
                    .send(go_away(Code::Unavailable, "idle connection closed"))
                    .await;
            }
            Ending::Broken(kind, status) => {
                self.shared.metrics.protocol_error(kind);
                self.shared.complaints.warn(kind, self.peer, &status);
                let _ = tx.send(go_away(status.code(), status.message())).await;
                let closed = Status::unavailable(format!(
                    "the connection was closed for a protocol error: {}",
                    status.message()
                ));
                stream::end_all(tx, streams, in_flight, &closed);
                calls.close();
                tokio::select! {
                    () = calls.wait() => {}
                    () = self.force_close.cancelled() => {
                        stream::cut_off(tx, streams, in_flight, self.shared.config.shutdown_grace);
                        abort_all(in_flight);
                    }
                }
            }
        }
    }

    /// Waits for the writer to finish and reports how it ended.
    async fn join_writer(&self, writer: JoinHandle<std::io::Result<()>>) {
        let peer = self.peer;
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.shared.metrics.write_timed_out(Side::Server);
                self.shared.complaints.warn("write_timeout", peer, &e);
            }
            Ok(Err(e)) => tracing::debug!(%peer, "write failed: {e}"),
            Err(e) => tracing::error!(%peer, "writer task failed: {e}"),
        }
    }

    /// Acts on a batch of frames, emptying it. Cancels come first, so that a call cancelled
    /// in the same batch never starts, and no call starts if its caller is gone. An `Err`
    /// means the stream is unusable and the connection must close.
    async fn on_batch(
        &self,
        batch: &mut Vec<Frame>,
        caller_gone: bool,
        turn: &Turn<'_>,
    ) -> Result<(), Ending> {
        let mut cancelled = Vec::new();
        for frame in batch.iter().filter(|f| f.kind == FrameKind::Cancel) {
            let header: CancelHeader = decode_header(frame).map_err(broken)?;
            let handle = lock(turn.in_flight).remove(&header.request_id);
            match handle {
                Some(handle) => handle.abort(),
                None => cancelled.push(header.request_id),
            }
        }
        for frame in batch.drain(..) {
            match frame.kind {
                FrameKind::Request => {
                    match self.on_request(frame, caller_gone, &cancelled, turn)? {
                        Step::Nothing => {}
                        Step::Reply(reply) => {
                            let _ = turn.tx.send(reply).await;
                        }
                        Step::Start(id, work) => self.start(work, id, turn).await,
                    }
                }
                FrameKind::Ping if !caller_gone => {
                    let _ = turn.tx.send(OutFrame::Pong(frame.body)).await;
                }
                FrameKind::Message
                | FrameKind::MessageBatch
                | FrameKind::HalfClose
                | FrameKind::WindowUpdate => stream::on_frame(frame, turn)?,
                FrameKind::Cancel | FrameKind::Ping | FrameKind::Pong | FrameKind::GoAway => {}
                FrameKind::Response => {
                    return Err(Ending::Broken(
                        "unexpected_frame",
                        Status::internal("protocol error: a client sent a response frame"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Takes `first` and every further frame already readable into `batch`, up to a bound.
/// Returns how the stream ended, if it did.
fn gather<R>(
    frames: &mut FrameReader<R>,
    first: Option<Result<Frame, ProtocolError>>,
    batch: &mut Vec<Frame>,
    peer: SocketAddr,
) -> Option<Ending>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut next = first;
    let mut bytes = 0;
    loop {
        match next {
            None => return Some(Ending::PeerClosed),
            Some(Err(ProtocolError::Io(e))) => {
                tracing::debug!(%peer, "read failed: {e}");
                return Some(Ending::Abort);
            }
            Some(Err(e)) => return Some(broken(e)),
            Some(Ok(frame)) => {
                bytes += frame.header.len() + frame.body.len();
                batch.push(frame);
            }
        }
        if batch.len() >= FRAMES_PER_TURN || bytes >= BATCH_BYTES {
            return None;
        }
        next = frames.next().now_or_never()?;
    }
}

/// The status for a frame that has been arriving for longer than its size allows, if one has.
fn too_slow(
    decoder: &FrameDecoder,
    frame_timeout: Duration,
    min_frame_rate: usize,
    paused: bool,
) -> Option<Status> {
    let partial = decoder.partial_frame().filter(|_| !paused)?;
    let size = partial.size.unwrap_or(0);
    let allowed = frame_timeout + Duration::from_secs_f64(size as f64 / min_frame_rate as f64);
    let waited = partial.since.elapsed();
    (waited > allowed).then(|| {
        Status::deadline_exceeded(format!(
            "a frame of {size} bytes was still incomplete after {waited:.1?} (frame_timeout plus \
             its size at min_frame_rate allow {allowed:.1?})"
        ))
    })
}

fn broken(e: ProtocolError) -> Ending {
    Ending::Broken(e.kind(), e.to_status())
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

fn check_period(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(10))
}
