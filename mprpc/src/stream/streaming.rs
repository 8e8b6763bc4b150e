//! [`Streaming`]: the stream of messages a handler reads from its caller, or a caller from
//! its provider.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use prost::DecodeError;

use super::in_place::InPlace;
use super::inbound::{Chunk, End, Inbound, Next};
use super::window::{charged, FRAME_CHARGE};
use crate::metrics::{CallRecord, MethodMetrics};
use crate::protocol::batch::{message_at, LEN_PREFIX};
use crate::{Metadata, Status};

/// How a stream ended, as its end hook is told: its trailers, or its failure.
pub(crate) type Ending = Result<Metadata, Status>;

/// Messages handed on per unit of the task's cooperative budget.
const CHARGE_EVERY: u32 = 16;

/// How a stream's messages are decoded: from the bytes of one message, in place in the buffer
/// they came in (so a message of a run costs no buffer of its own); and what a
/// message that does not decode fails the stream with. Kept apart, so that `decode` can hand
/// on prost's own result as it is: the failure is built only when one happens.
pub(crate) struct Decode<T> {
    pub(crate) decode: fn(&mut InPlace<'_>) -> Result<T, DecodeError>,
    pub(crate) invalid: fn(DecodeError) -> Status,
}

impl<T> Clone for Decode<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Decode<T> {}

/// [`Decode`] for a stream of encoded messages: each message's bytes, as they are.
pub(crate) fn encoded() -> Decode<Bytes> {
    fn bytes(message: &mut InPlace<'_>) -> Result<Bytes, DecodeError> {
        let len = message.remaining();
        Ok(message.copy_to_bytes(len))
    }
    Decode {
        decode: bytes,
        // Never called: taking the bytes as they are cannot fail.
        invalid: |e| Status::internal(e.to_string()),
    }
}

/// A stream of messages from the other side of a call: a handler's requests, or a caller's
/// replies. Each item is a message, or the failure that ended the stream; after the last
/// item the stream ends (`None`). Reading a message returns its flow-control credit to the
/// sender: a stream nobody reads holds the sender back, not memory.
///
/// Dropping a caller's stream before its end cancels the call (the provider drops the
/// handler).
pub struct Streaming<T> {
    inbound: Arc<Inbound>,
    /// Chunks taken from the queue in one go and not handed on yet (their credit is
    /// returned as their messages are).
    local: VecDeque<Chunk>,
    /// The `MessageBatch` run being read, a message at a time, in place...
    run: Bytes,
    /// ... from here (its next message's length prefix).
    at: usize,
    /// The credit and the count of the run's messages handed on, returned and counted
    /// together as its last one is.
    run_read: (usize, u64),
    decode: Decode<T>,
    /// The call's end on this side (a deadline), if it has one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    trailers: Option<Metadata>,
    done: bool,
    /// Messages handed on since the task's cooperative budget was last charged.
    uncharged: u32,
    hooks: Hooks,
    /// Whether dropping this value lets go of the queue (not when it was only retyped).
    owns_inbound: bool,
}

/// What a stream does besides reading, on either side.
#[derive(Default)]
struct Hooks {
    /// What happens if the stream is dropped before its end (a caller cancels the call).
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// Told how the stream ended, however it did (a drop is `Cancelled`).
    on_end: Option<Box<dyn FnOnce(Ending) + Send + Sync>>,
    /// Dropped with the stream (a caller's: what stops the task sending its requests).
    guard: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The method's counters: each message read is counted.
    counters: Option<Arc<MethodMetrics>>,
    /// A caller's record of the call, finished at the stream's end.
    record: Option<CallRecord>,
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T> Streaming<T> {
    pub(crate) fn new(inbound: Arc<Inbound>, decode: Decode<T>) -> Self {
        Streaming {
            inbound,
            local: VecDeque::new(),
            run: Bytes::new(),
            at: 0,
            run_read: (0, 0),
            decode,
            deadline: None,
            trailers: None,
            done: false,
            uncharged: 0,
            hooks: Hooks::default(),
            owns_inbound: true,
        }
    }

    /// Keeps `guard` until the stream is dropped.
    pub(crate) fn hold(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.hooks.guard = Some(Box::new(guard));
        self
    }

    /// Counts each message read in `counters`, and finishes `record` (if any) at the end.
    pub(crate) fn counted(
        mut self,
        counters: Arc<MethodMetrics>,
        record: Option<CallRecord>,
    ) -> Self {
        self.hooks.counters = Some(counters);
        self.hooks.record = record;
        self
    }

    /// Ends the stream with `DeadlineExceeded` at `deadline`.
    pub(crate) fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
        self
    }

    /// Runs `f` if the stream is dropped before its end.
    pub(crate) fn on_drop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.hooks.on_drop = Some(Box::new(f));
        self
    }

    /// Tells `f` how the stream ended, however it ends.
    pub(crate) fn on_end(mut self, f: impl FnOnce(Ending) + Send + Sync + 'static) -> Self {
        self.hooks.on_end = Some(Box::new(f));
        self
    }

    /// The same stream, its messages decoded by `decode`.
    pub(crate) fn retype<U>(mut self, decode: Decode<U>) -> Streaming<U> {
        self.owns_inbound = false;
        Streaming {
            inbound: self.inbound.clone(),
            local: std::mem::take(&mut self.local),
            run: std::mem::take(&mut self.run),
            at: std::mem::take(&mut self.at),
            run_read: std::mem::take(&mut self.run_read),
            decode,
            deadline: self.deadline.take(),
            trailers: self.trailers.take(),
            done: self.done,
            uncharged: self.uncharged,
            hooks: std::mem::take(&mut self.hooks),
            owns_inbound: true,
        }
    }

    /// The next message: `Ok(None)` at the end of the stream, `Err` if it failed.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// The trailing metadata the provider sent with its final status, once the stream has
    /// ended well (a failure carries its own, in [`Status::metadata`]).
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }

    /// Bytes received and not read yet (at most the flow-control window, and one message).
    pub fn buffered_bytes(&self) -> usize {
        self.inbound.queued_bytes()
            + self.local.iter().map(|c| c.body.len()).sum::<usize>()
            + (self.run.len() - self.at)
    }

    /// The next message already taken from the queue, decoded, if any: off the run being
    /// read, else the next chunk's.
    fn next_local(&mut self) -> Option<Result<T, Status>> {
        loop {
            if let Some(std::ops::Range { start, end }) = message_at(&self.run, self.at) {
                self.at = end;
                let message = (self.decode.decode)(&mut InPlace::new(&self.run, start, end))
                    .map_err(self.decode.invalid);
                self.run_read.0 += LEN_PREFIX + (end - start);
                self.run_read.1 += 1;
                if end == self.run.len() {
                    // Its last message: the run's credit goes back as it is handed on.
                    self.settle_run();
                }
                return Some(message);
            }
            self.settle_run();
            let chunk = self.local.pop_front()?;
            if chunk.batched {
                self.run = chunk.body;
                self.at = 0;
                // The frame's own charge goes back with the run's last message.
                self.run_read.0 += FRAME_CHARGE;
            } else {
                self.inbound.returned(charged(chunk.body.len()));
                self.count(1);
                return Some(self.decode_whole(&chunk.body));
            }
        }
    }

    /// Decodes all of `body`, one message.
    fn decode_whole(&self, body: &Bytes) -> Result<T, Status> {
        (self.decode.decode)(&mut InPlace::whole(body)).map_err(self.decode.invalid)
    }

    /// Returns the credit of the run's messages handed on, and counts them; what is left of
    /// the run (nothing, for a run the reader checked) is dropped with its credit.
    fn settle_run(&mut self) {
        let (credit, count) = std::mem::take(&mut self.run_read);
        let credit = credit + std::mem::take(&mut self.run).len() - std::mem::take(&mut self.at);
        if credit > 0 {
            self.inbound.returned(credit);
        }
        if count > 0 {
            self.count(count);
        }
    }

    fn count(&self, n: u64) {
        if let Some(counters) = &self.hooks.counters {
            counters.stream_messages_received(n);
        }
    }

    fn end(&mut self, ending: Ending) {
        let code = ending
            .as_ref()
            .map_or_else(Status::code, |_| crate::Code::Ok);
        if let Some(record) = self.hooks.record.take() {
            record.finish(code);
        }
        if let Some(on_end) = self.hooks.on_end.take() {
            on_end(ending);
        }
        self.done = true;
        self.hooks.on_drop = None;
        self.deadline = None;
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<T, Status>>> {
        // A failure on this side (the deadline): the other side is told, as by a drop.
        if let Some(cancel) = self.hooks.on_drop.take() {
            cancel();
        }
        self.end(Err(status.clone()));
        Poll::Ready(Some(Err(status)))
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // Messages already here are handed on without a yield, however many: the task is
        // charged one unit of its budget per few of them, so that it lets the others on its
        // thread run in time (the connection's writer, with the credit it returns). The
        // deadline is looked at as often, and whenever the stream has to wait (which
        // registers its timer): not per message, since polling a timer costs a good part of
        // a small message's handling.
        if this.uncharged >= CHARGE_EVERY {
            if this.deadline_passed(cx) {
                return this.deadline_exceeded();
            }
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            coop.made_progress();
            this.uncharged = 0;
        }
        loop {
            if let Some(message) = this.next_local() {
                this.uncharged += 1;
                return Poll::Ready(Some(message));
            }
            match this.inbound.poll_chunks(cx, &mut this.local) {
                Poll::Ready(Next::Chunks) => {}
                Poll::Ready(Next::End(end)) => return this.ended(end),
                Poll::Pending if this.deadline_passed(cx) => return this.deadline_exceeded(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> Streaming<T> {
    /// Whether the stream's deadline has passed; if not, `cx` is woken when it does.
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    fn deadline_exceeded(&mut self) -> Poll<Option<Result<T, Status>>> {
        self.fail(Status::deadline_exceeded(
            "the stream's deadline passed before it ended",
        ))
    }

    /// The stream's end, read.
    fn ended(&mut self, end: End) -> Poll<Option<Result<T, Status>>> {
        match end {
            End::Failed(status) => {
                self.end(Err(status.clone()));
                Poll::Ready(Some(Err(status)))
            }
            End::Finished { trailers, body } => {
                self.end(Ok(trailers.clone()));
                self.trailers = Some(trailers);
                match body {
                    Some(body) => Poll::Ready(Some(self.decode_whole(&body))),
                    None => Poll::Ready(None),
                }
            }
        }
    }
}
impl<T> Drop for Streaming<T> {
    fn drop(&mut self) {
        if !self.owns_inbound {
            return;
        }
        self.settle_run();
        let held: usize = self.local.drain(..).map(|c| charged(c.body.len())).sum();
        if held > 0 {
            self.inbound.returned(held);
        }
        self.inbound.detach();
        if let Some(cancel) = self.hooks.on_drop.take() {
            cancel();
        }
        if let Some(on_end) = self.hooks.on_end.take() {
            on_end(Err(Status::cancelled(
                "the stream was dropped before its end",
            )));
        }
    }
}
