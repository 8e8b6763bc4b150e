//! Flow-control credit: what a sender may still send, and what a receiver has granted.
//!
//! The rule (the same on both sides, for a stream and for the connection): **a sender may
//! send a message while its credit is above zero**, and the message's size is then taken
//! from it, even if that takes it below zero. A message larger than the window therefore
//! still goes (alone), and a receiver never holds more than its window plus one message per
//! level. The receiver keeps its own view of the sender's credit (granted minus received):
//! the sender's is never larger, since grants in flight only make it smaller, so a message
//! that arrives while the receiver's view is at or below zero is a sender ignoring its
//! credit.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::sync::lock;

/// The flow-control window a receiver starts a stream with when nothing else was said:
/// the sender's credit for a stream's first messages (the receiver then raises it with a
/// `WindowUpdate`).
pub const INITIAL_STREAM_WINDOW: u64 = 64 * 1024;
/// The flow-control window of a connection's streams, all together, before the receiver
/// raises it.
pub const INITIAL_CONNECTION_WINDOW: u64 = 1024 * 1024;

/// A sender's credit.
#[derive(Debug)]
pub(crate) struct SendWindow {
    state: Mutex<Credit>,
    changed: Notify,
}

#[derive(Debug)]
struct Credit {
    available: i64,
    closed: bool,
}

/// What every `Message` and `MessageBatch` frame costs in credit besides its body: so that
/// empty (or tiny) messages cannot be queued without limit by a receiver that does not
/// read. A window of `w` bytes holds at most `w / FRAME_CHARGE` frames.
pub(crate) const FRAME_CHARGE: usize = 64;

/// The credit a frame with a body of `len` bytes costs.
pub(crate) fn charged(len: usize) -> usize {
    len + FRAME_CHARGE
}

/// The window was closed: the stream or the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl SendWindow {
    /// A window with `initial` bytes of credit.
    pub(crate) fn new(initial: u64) -> SendWindow {
        SendWindow {
            state: Mutex::new(Credit {
                available: to_i64(initial),
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    /// Takes `size` bytes of credit if any is left now.
    pub(crate) fn try_take(&self, size: usize) -> Result<bool, Closed> {
        let mut credit = lock(&self.state);
        if credit.closed {
            return Err(Closed);
        }
        if credit.available > 0 {
            credit.available -= to_i64(size as u64);
            return Ok(true);
        }
        Ok(false)
    }

    /// Waits until there is credit, then takes `size` bytes of it.
    pub(crate) async fn take(&self, size: usize) -> Result<(), Closed> {
        // Most of the time there is credit: no waiter is set up for it.
        if self.try_take(size)? {
            return Ok(());
        }
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a grant between the two is not missed.
            changed.as_mut().enable();
            if self.try_take(size)? {
                return Ok(());
            }
            changed.await;
        }
    }

    /// Waits until there is credit, then takes it for the leading messages of `sizes` that
    /// may go: each while the credit before it is above zero (the rule a receiver checks
    /// message by message). Returns how many (at least one, for a non-empty `sizes`).
    pub(crate) async fn take_leading(&self, sizes: &[usize]) -> Result<usize, Closed> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            {
                let mut credit = lock(&self.state);
                if credit.closed {
                    return Err(Closed);
                }
                let mut n = 0;
                while n < sizes.len() && credit.available > 0 {
                    credit.available -= to_i64(sizes[n] as u64);
                    n += 1;
                }
                if n > 0 || sizes.is_empty() {
                    return Ok(n);
                }
            }
            // Registered, then checked again: a grant or a close between the two is seen.
            changed.as_mut().enable();
            {
                let credit = lock(&self.state);
                if credit.available > 0 || credit.closed {
                    continue;
                }
            }
            changed.await;
        }
    }

    /// Adds credit the receiver granted.
    pub(crate) fn grant(&self, increment: u64) {
        let mut credit = lock(&self.state);
        credit.available = credit.available.saturating_add(to_i64(increment));
        drop(credit);
        self.changed.notify_waiters();
    }

    /// Ends the window: every waiting and later [`take`](Self::take) fails.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_waiters();
    }

    /// Credit left (below zero after a message larger than what was left).
    #[cfg(test)]
    pub(crate) fn available(&self) -> i64 {
        lock(&self.state).available
    }
}

/// A receiver's side of a window: its view of the sender's credit, and what it has taken in
/// since it last granted more. Atomics, not a lock: it is touched twice per message.
#[derive(Debug)]
pub(crate) struct RecvWindow {
    /// The window the receiver keeps the sender at.
    window: u64,
    /// Granted minus received.
    credit: AtomicI64,
    /// Received and consumed (or discarded) since the last grant.
    consumed: AtomicU64,
}

/// A message arrived while the sender had no credit left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow {
    /// The receiver's window.
    pub(crate) window: u64,
}

impl RecvWindow {
    /// A window whose sender starts with `initial` bytes of credit and is to be kept at
    /// `window` (the difference is granted with the first [`consumed`](Self::consumed)).
    pub(crate) fn new(initial: u64, window: u64) -> RecvWindow {
        RecvWindow {
            window: window.max(1),
            credit: AtomicI64::new(to_i64(initial)),
            // Raising the window is owed from the start.
            consumed: AtomicU64::new(window.saturating_sub(initial)),
        }
    }

    /// A message of `size` bytes arrived. (Called by the connection's reader alone, so the
    /// check and the subtraction need not be one step.)
    pub(crate) fn received(&self, size: usize) -> Result<(), Overflow> {
        if self.credit.load(Ordering::Acquire) <= 0 {
            return Err(Overflow {
                window: self.window,
            });
        }
        self.credit.fetch_sub(to_i64(size as u64), Ordering::AcqRel);
        Ok(())
    }

    /// `size` bytes were consumed (or discarded): the grant to send now, if one is due. A
    /// grant is made once half the window has been consumed, so that credit is returned in
    /// a few frames, not one per message.
    pub(crate) fn consumed(&self, size: usize) -> Option<u64> {
        let total = self.consumed.fetch_add(size as u64, Ordering::AcqRel) + size as u64;
        if total < self.window / 2 {
            return None;
        }
        self.grant_consumed()
    }

    /// The grant owed at once, before anything is consumed (the raise from the initial
    /// window to the configured one), if any.
    pub(crate) fn initial_grant(&self) -> Option<u64> {
        self.grant_consumed()
    }

    /// Turns what was consumed into credit: the grant, if any (one caller of several racing
    /// gets it).
    fn grant_consumed(&self) -> Option<u64> {
        let grant = self.consumed.swap(0, Ordering::AcqRel);
        (grant > 0).then(|| {
            self.credit.fetch_add(to_i64(grant), Ordering::AcqRel);
            grant
        })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sender_waits_for_credit_and_may_overshoot_by_one_message() {
        let window = std::sync::Arc::new(SendWindow::new(10));
        window.take(100).await.unwrap();
        assert_eq!(window.available(), -90);
        assert!(!window.try_take(1).unwrap());
        let waiting = tokio::spawn({
            let window = window.clone();
            async move { window.take(5).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        window.grant(50);
        assert!(!waiting.is_finished() || window.available() == -40);
        window.grant(50);
        waiting.await.unwrap().unwrap();
        assert_eq!(window.available(), 5);
        window.close();
        assert_eq!(window.take(1).await, Err(Closed));
    }

    #[tokio::test]
    async fn a_batch_takes_the_messages_that_start_with_credit() {
        let window = SendWindow::new(100);
        // 60 + 50 leaves -10: the third does not start with credit.
        assert_eq!(window.take_leading(&[60, 50, 10]).await, Ok(2));
        assert_eq!(window.available(), -10);
        assert_eq!(window.try_take(1), Ok(false));
        window.grant(11);
        assert_eq!(window.take_leading(&[10, 10]).await, Ok(1));
        window.close();
        assert_eq!(window.take_leading(&[1]).await, Err(Closed));
    }

    #[test]
    fn a_receiver_finds_a_sender_over_its_credit_and_grants_in_halves() {
        let window = RecvWindow::new(10, 100);
        assert_eq!(window.initial_grant(), Some(90));
        assert_eq!(window.initial_grant(), None);
        window.received(150).unwrap();
        assert_eq!(window.received(1), Err(Overflow { window: 100 }));
        assert_eq!(window.consumed(30), None);
        assert_eq!(window.consumed(30), Some(60));
        window.received(1).unwrap();
    }
}
