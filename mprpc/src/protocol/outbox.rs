//! The sending end of a connection's write queue, and its byte budget.
//!
//! Every frame a connection queues for its writer goes through an [`Outbox`]: replies of any
//! kind, errors, pongs, cancels and go-aways alike. The outbox adds the frame's size to the
//! connection's [`BusyHint`] as it is queued and the writer subtracts it once it is written,
//! so [`BusyHint::unwritten`] is every byte the connection holds for a peer that has not read
//! it yet. A provider stops reading a connection past its budget
//! (`server.max_unwritten_bytes`); nothing a peer sends can make it queue more than that
//! plus what is already running.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::frame::OutFrame;
use super::writer::{BusyHint, QUEUE_DEPTH};

/// Where a connection's frames are queued for its writer task. Cloned for every call that
/// answers from a task of its own: one reference count, however many parts it has.
#[derive(Clone, Debug)]
pub struct Outbox(Arc<Parts>);

#[derive(Debug)]
struct Parts {
    tx: mpsc::Sender<OutFrame>,
    hint: Arc<BusyHint>,
}

/// The frame was not queued: the writer is gone (the connection is closing), or, for
/// [`Outbox::try_send`], the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotQueued;

impl Outbox {
    /// A queue for a new connection, and the receiving end for its writer.
    pub fn new(hint: Arc<BusyHint>) -> (Outbox, mpsc::Receiver<OutFrame>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (Outbox(Arc::new(Parts { tx, hint })), rx)
    }

    /// Queues `frame`, waiting while the queue is full.
    ///
    /// It tries to queue at once, and waits (in a boxed future) only if the queue is full:
    /// tokio's `send` future holds the frame twice and a semaphore wait, about 500 bytes
    /// that would otherwise sit in every call's future and be copied each time it moves.
    // Not an `async fn`, whose argument the future would hold twice (rust-lang/rust#62958).
    #[allow(clippy::manual_async_fn)]
    pub fn send(
        &self,
        frame: OutFrame,
    ) -> impl std::future::Future<Output = Result<(), NotQueued>> + Send + '_ {
        async move {
            let bytes = frame.budget_len();
            self.0.hint.queued(bytes);
            let frame = match self.0.tx.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(frame)) => frame,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.0.hint.written(bytes);
                    return Err(NotQueued);
                }
            };
            Box::pin(self.0.tx.send(frame)).await.map_err(|_| {
                self.0.hint.written(bytes);
                NotQueued
            })
        }
    }

    /// Queues `frame` if there is room now.
    pub fn try_send(&self, frame: OutFrame) -> Result<(), NotQueued> {
        let bytes = frame.budget_len();
        self.0.hint.queued(bytes);
        self.0.tx.try_send(frame).map_err(|_| {
            self.0.hint.written(bytes);
            NotQueued
        })
    }

    /// Bytes queued and not yet written.
    pub fn unwritten(&self) -> usize {
        self.0.hint.unwritten()
    }

    /// The connection's calls in flight and bytes queued, shared with its writer.
    pub fn hint(&self) -> &BusyHint {
        &self.0.hint
    }
}
