//! The receiving end of one stream: the messages the connection's reader has taken in and
//! the consumer has not, the stream's end, and the credit returned as messages are consumed.
//!
//! The queue holds what the frames carried, as they carried it: one message, or the body of
//! a `MessageBatch` frame (a run of messages, checked by the reader), queued with one lock
//! and sliced into messages by the consumer ([`Streaming`](super::Streaming)).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use super::table::Link;
use super::window::{charged, Overflow, RecvWindow};
use crate::sync::lock;
use crate::{Metadata, Status};

/// Messages (and runs of them) below this size are copied out of the read buffer when they
/// have to wait. One this large is a good part of its buffer (a connection's read buffer is
/// reserved 64 KiB at a time, at most doubling), so it pins at most a few times its size; a
/// provider's runs of small replies are about twice as large, and are not copied.
const COPY_BELOW: usize = 32 * 1024;
/// The arena small messages are copied into grows by this much.
const ARENA_CHUNK: usize = 16 * 1024;

/// How a stream ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// The sender finished: a consumer's half-close, or a provider's final reply (with its
    /// trailing metadata, and for a client-streaming call, the reply message).
    Finished {
        trailers: Metadata,
        body: Option<Bytes>,
    },
    /// The stream failed.
    Failed(Status),
}

/// What one frame of the stream carried.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// One message, or a run of them.
    pub(crate) body: Bytes,
    /// `body` is a `MessageBatch` frame's: length-prefixed messages, checked.
    pub(crate) batched: bool,
}

/// What a consumer of the stream gets next.
pub(crate) enum Next {
    /// Chunks were moved to the consumer's queue.
    Chunks,
    End(End),
}

/// One stream's queue of received messages, shared by the connection's reader and the
/// stream's consumer.
#[derive(Debug)]
pub(crate) struct Inbound {
    id: u64,
    link: Arc<Link>,
    window: RecvWindow,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Chunk>,
    end: Option<End>,
    /// The end was handed to the consumer.
    ended: bool,
    waker: Option<Waker>,
    /// The consumer is gone: messages are discarded as they arrive, their credit returned.
    detached: bool,
    /// Where small messages that have to wait are copied.
    arena: BytesMut,
}

impl Inbound {
    pub(super) fn new(id: u64, link: Arc<Link>, window: RecvWindow) -> Inbound {
        Inbound {
            id,
            link,
            window,
            state: Mutex::default(),
        }
    }

    /// The grant owed as soon as the stream opens (its window above the initial one).
    pub(super) fn initial_grant(&self) {
        if let Some(grant) = self.window.initial_grant() {
            self.link.grant(self.id, grant);
        }
    }

    /// A message, or a run of them, arrived (the connection-level credit was checked by the
    /// caller).
    pub(super) fn push(&self, chunk: Chunk) -> Result<(), Overflow> {
        let Chunk { body, batched } = chunk;
        self.window.received(charged(body.len()))?;
        let mut state = lock(&self.state);
        if state.detached || state.end.is_some() {
            drop(state);
            self.returned(charged(body.len()));
            return Ok(());
        }
        // A message (or run) is a slice of the connection's read buffer, and keeps all of it
        // alive: a stream that is not read would hold a 64 KiB buffer per 64-byte message.
        // One that has to wait behind others gets its own copy (a small one: a large message
        // is most of its buffer).
        let body = if !state.queue.is_empty() && body.len() < COPY_BELOW {
            // Copied into this stream's own arena (16 KiB chunks): one allocation for many
            // small messages, and what they pin is this stream's alone.
            if state.arena.capacity() - state.arena.len() < body.len() {
                state.arena = BytesMut::with_capacity(ARENA_CHUNK.max(body.len()));
            }
            state.arena.extend_from_slice(&body);
            state.arena.split().freeze()
        } else {
            body
        };
        state.queue.push_back(Chunk { body, batched });
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The stream ended (the first end counts). Messages already queued are still
    /// delivered before the end, as they were sent before it.
    pub(crate) fn finish(&self, end: End) {
        let mut state = lock(&self.state);
        if state.end.is_some() {
            return;
        }
        state.end = Some(end);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Moves every chunk queued into `more` (empty when called), with one lock, or gives the
    /// end once there is no chunk left, else waits. Their credit is the caller's to return as
    /// it hands their messages on ([`returned`](Self::returned)), so what this side holds
    /// stays within its window. After the end, `Pending` forever (the owner does not poll
    /// again).
    pub(crate) fn poll_chunks(
        &self,
        cx: &mut Context<'_>,
        more: &mut VecDeque<Chunk>,
    ) -> Poll<Next> {
        let mut state = lock(&self.state);
        if !state.queue.is_empty() {
            std::mem::swap(&mut state.queue, more);
            return Poll::Ready(Next::Chunks);
        }
        if !state.ended {
            if let Some(end) = state.end.clone() {
                state.ended = true;
                return Poll::Ready(Next::End(end));
            }
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The consumer is gone: what is queued is discarded and later messages are too, their
    /// credit returned so the sender is not held up by a reader that will never read.
    pub(crate) fn detach(&self) {
        let mut state = lock(&self.state);
        state.detached = true;
        let dropped: usize = state.queue.drain(..).map(|c| charged(c.body.len())).sum();
        drop(state);
        if dropped > 0 {
            self.returned(dropped);
        }
    }

    /// Bytes queued and not consumed.
    pub(crate) fn queued_bytes(&self) -> usize {
        lock(&self.state).queue.iter().map(|c| c.body.len()).sum()
    }

    /// Credit for `size` bytes consumed or discarded goes back to the sender, for the
    /// stream (while it is open) and the connection.
    pub(crate) fn returned(&self, size: usize) {
        if let Some(grant) = self.window.consumed(size) {
            if lock(&self.state).end.is_none() {
                self.link.grant(self.id, grant);
            }
        }
        self.link.returned(size);
    }
}
