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
            // Counted from here, so that a provider pauses reading for replies waiting for
            // room too; taken back if the frame is not queued after all, also if this
            // future is dropped while it waits.
            let counted = Counted::new(&self.0.hint, frame.budget_len());
            let frame = match self.0.tx.try_send(frame) {
                Ok(()) => {
                    counted.keep();
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(frame)) => frame,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(NotQueued),
            };
            Box::pin(self.0.tx.send(frame))
                .await
                .map_err(|_| NotQueued)?;
            counted.keep();
            Ok(())
        }
    }

    /// Queues `frame` if there is room now.
    pub fn try_send(&self, frame: OutFrame) -> Result<(), NotQueued> {
        let counted = Counted::new(&self.0.hint, frame.budget_len());
        self.0.tx.try_send(frame).map_err(|_| NotQueued)?;
        counted.keep();
        Ok(())
    }

    /// Queues `frame` if there is room now, or gives it back if the queue is full (a frame
    /// for a closed queue is dropped: the connection is closing).
    // The frame given back is the caller's own, moved back: boxing it would cost an allocation.
    #[allow(clippy::result_large_err)]
    pub fn try_send_or_return(&self, frame: OutFrame) -> Result<(), OutFrame> {
        let counted = Counted::new(&self.0.hint, frame.budget_len());
        match self.0.tx.try_send(frame) {
            Ok(()) => {
                counted.keep();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(frame)) => Err(frame),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
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

/// A frame's bytes counted as queued in the hint, until it is queued ([`Counted::keep`]: the
/// writer then subtracts them) or not (dropped: subtracted here).
struct Counted<'a> {
    hint: &'a BusyHint,
    bytes: usize,
}

impl<'a> Counted<'a> {
    fn new(hint: &'a BusyHint, bytes: usize) -> Counted<'a> {
        hint.queued(bytes);
        Counted { hint, bytes }
    }

    fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.hint.written(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::task::Poll;

    fn ping() -> OutFrame {
        OutFrame::Ping(Bytes::from_static(b"12345678"))
    }

    #[tokio::test]
    async fn a_send_dropped_while_it_waits_for_room_takes_its_bytes_back() {
        let hint = Arc::new(BusyHint::default());
        let (tx, mut rx) = Outbox::new(hint.clone());
        for _ in 0..QUEUE_DEPTH {
            tx.try_send(ping()).expect("room");
        }
        let queued = hint.unwritten();
        assert_eq!(queued, QUEUE_DEPTH * ping().budget_len());
        assert_eq!(tx.try_send(ping()), Err(NotQueued), "past the bound");
        assert_eq!(hint.unwritten(), queued, "a refused frame is not counted");
        {
            let waiting = tx.send(ping());
            tokio::pin!(waiting);
            assert_eq!(futures_util::poll!(waiting.as_mut()), Poll::Pending);
            assert!(hint.unwritten() > queued, "counted while it waits");
        }
        assert_eq!(
            hint.unwritten(),
            queued,
            "taken back when the send is dropped"
        );
        // A send that waits and then gets its place stays counted.
        let waiting = tx.send(ping());
        tokio::pin!(waiting);
        assert_eq!(futures_util::poll!(waiting.as_mut()), Poll::Pending);
        assert!(rx.recv().await.is_some());
        let sent = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
        assert_eq!(sent.expect("a place was freed"), Ok(()));
        assert_eq!(hint.unwritten(), queued + ping().budget_len());
    }
}
