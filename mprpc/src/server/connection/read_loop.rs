//! The provider connection's read loop: it takes in every frame already readable (a
//! *batch*) and acts on it, stops reading while the client is behind on its replies, and
//! watches for the connection's end (shutdown, force-close, a failed writer, idleness, a
//! frame trickled in too slowly).
//!
//! The loop's `select!` waits on the socket first, so that a read that wakes it polls nothing
//! else: at one call in flight, polling the force-close and writer-failure tokens and the
//! shutdown watch again on every wake cost about 500 instructions per call. Their futures
//! still wake the loop while it waits; their flags ([`Flags`]) are read at the top of each
//! turn, and again before a batch of frames is acted on, so that no batch starts once the
//! connection has been told to stop, and a batch read as shutdown begins is refused (marked
//! not run).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncRead;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;

use super::call::Step;
use super::{broken, go_away, stream, write_failed, Connection, Ending, Turn};
use crate::protocol::codec::decode_header;
use crate::protocol::direct::{self, Direct};
use crate::protocol::{
    CancelHeader, Frame, FrameDecoder, FrameKind, FrameReader, OutFrame, ProtocolError,
};
use crate::stream::MethodKind;
use crate::sync::lock;
use crate::{Code, Status};

/// Frames taken in one batch before the loop acts on them (and looks at its flags again).
const FRAMES_PER_TURN: usize = 64;
/// Bytes taken in one batch (after its first frame) before the loop acts on it.
const BATCH_BYTES: usize = 1024 * 1024;

impl Connection {
    /// Reads frames and acts on them until the connection has to end, and says why.
    pub(super) async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FrameReader<R>,
        mut turn: Turn<'_>,
        (writer_failed, socket): (&CancellationToken, Option<&Arc<OwnedWriteHalf>>),
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
        let mut direct = Direct::new(self.busy.clone());
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
            // The rare events by their flags (see the module's header): the socket comes first below.
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
                    let mut replies = Replies { direct: &mut direct, socket };
                    let acted = self.on_batch(&mut batch, caller_gone, &turn, &mut replies).await;
                    // What the batch answered goes out before anything the loop does next
                    // (a go-away included).
                    if let Err(ending) = self.flush(&mut replies, &turn, writer_failed).await {
                        return ending;
                    }
                    if let Err(ending) = acted {
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

    /// Acts on a batch of frames, emptying it. Cancels come first, so that a call cancelled
    /// in the same batch never starts, and no call starts if its caller is gone. An `Err`
    /// means the stream is unusable and the connection must close.
    async fn on_batch(
        &self,
        batch: &mut Vec<Frame>,
        caller_gone: bool,
        turn: &Turn<'_>,
        replies: &mut Replies<'_>,
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
                FrameKind::Request | FrameKind::CompactRequest => {
                    match self.on_request(frame, caller_gone, &cancelled, turn)? {
                        Step::Nothing => {}
                        Step::Reply(reply) => self.reply(reply, turn, replies).await,
                        Step::Start(id, work, kind) => {
                            if let Some(reply) = self.start(work, id, turn).await {
                                self.answer(reply, (id, kind), turn, replies);
                            }
                        }
                    }
                }
                FrameKind::Ping if !caller_gone => {
                    self.reply(OutFrame::Pong(frame.body), turn, replies).await;
                }
                FrameKind::Message
                | FrameKind::MessageBatch
                | FrameKind::HalfClose
                | FrameKind::WindowUpdate => stream::on_frame(frame, turn)?,
                FrameKind::Cancel | FrameKind::Ping | FrameKind::Pong | FrameKind::GoAway => {}
                FrameKind::Response | FrameKind::CompactResponse => {
                    return Err(Ending::Broken(
                        "unexpected_frame",
                        Status::internal("protocol error: a client sent a response frame"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sends `frame`, written by the reader at the end of the batch if it can be.
    async fn reply(&self, frame: OutFrame, turn: &Turn<'_>, replies: &mut Replies<'_>) {
        if let Err(frame) = replies.put(frame) {
            let _ = turn.tx.send(frame).await;
        }
    }

    /// Sends the reply of a call answered in its first poll: written by the reader at the end
    /// of the batch if it can be (a unary call's: a stream's final reply goes after its
    /// messages, which are queued), else queued, and if the queue is full, handed to a task
    /// that waits for room (the call then stays in flight on the connection, as one that
    /// waits does, and the reader reads on).
    fn answer(
        &self,
        reply: OutFrame,
        (id, kind): (u64, MethodKind),
        turn: &Turn<'_>,
        replies: &mut Replies<'_>,
    ) {
        let reply = match kind {
            MethodKind::Unary => match replies.put(reply) {
                Ok(()) => return,
                Err(reply) => reply,
            },
            _ => reply,
        };
        if let Err(reply) = turn.tx.try_send_or_return(reply) {
            turn.tx.hint().enter();
            self.wait_for(Box::pin(std::future::ready(reply)), id, turn);
        }
    }

    /// Writes what the reader gathered in a batch ([`Direct`]), or queues it if the writer
    /// task is writing or has frames queued. A failure ends the connection (one in the task
    /// that finishes a partial write stops the loop as a failed writer does).
    async fn flush(
        &self,
        replies: &mut Replies<'_>,
        turn: &Turn<'_>,
        writer_failed: &CancellationToken,
    ) -> Result<(), Ending> {
        let Some(socket) = replies.socket else {
            return Ok(());
        };
        let stall_limit = self.shared.config.write_timeout;
        let failed = || -> direct::Failed {
            let (shared, peer, writer_failed) =
                (self.shared.clone(), self.peer, writer_failed.clone());
            Box::new(move |e| {
                write_failed(&shared, peer, &e);
                writer_failed.cancel();
            })
        };
        match replies.direct.finish(socket, stall_limit, failed) {
            Ok(None) => Ok(()),
            Ok(Some(frames)) => {
                let _ = turn.tx.send(frames).await;
                Ok(())
            }
            Err(e) => {
                write_failed(&self.shared, self.peer, &e);
                Err(Ending::Abort)
            }
        }
    }

    /// Looks at what happened since the loop last looked (a plain function: it runs twice
    /// per turn, and an `async fn` would cost a future each time).
    fn flags(&self, turn: &Turn<'_>, writer_failed: &CancellationToken) -> Flags {
        if self.force_close.is_cancelled() || writer_failed.is_cancelled() {
            return Flags::Stop(Ending::Abort);
        }
        if turn.draining {
            if turn.calls.is_empty() {
                return Flags::Stop(Ending::Drained);
            }
        } else if self.shutdown.has_changed().unwrap_or(true) {
            return Flags::Drain;
        }
        Flags::Go
    }

    /// Shutdown has begun: no new calls (those read from now on are refused, marked not run),
    /// the client is told so, and the loop ends once the running calls have answered.
    async fn start_draining(&mut self, turn: &mut Turn<'_>) {
        self.shutdown.mark_unchanged();
        turn.draining = true;
        turn.calls.close();
        let _ = turn
            .tx
            .send(go_away(Code::Unavailable, "provider is shutting down"))
            .await;
    }
}

/// Where a batch's replies go: written by the reader itself when it reads a plain TCP
/// socket ([`Direct`]), else queued for the writer task.
struct Replies<'a> {
    direct: &'a mut Direct,
    socket: Option<&'a Arc<OwnedWriteHalf>>,
}

impl Replies<'_> {
    /// Takes `frame` to write at the end of the batch, or gives it back to be queued.
    // The frame given back is the caller's own, moved back: boxing it would cost an allocation.
    #[allow(clippy::result_large_err)]
    fn put(&mut self, frame: OutFrame) -> Result<(), OutFrame> {
        match self.socket {
            Some(_) => self.direct.put(frame),
            None => Err(frame),
        }
    }
}

/// What the flags say.
enum Flags {
    /// Nothing happened: go on.
    Go,
    /// Shutdown began: start draining ([`Connection::start_draining`]), then go on.
    Drain,
    /// The loop ends.
    Stop(Ending),
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

fn check_period(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(10))
}
