//! The bytes connections hold for peers that have not read them yet, summed when read.
//!
//! Each connection registers its write queue when it opens and takes it out when it closes
//! (the [`QueueRegistration`] guard); the total is added up only when `/metrics` or `/status`
//! asks, so the call path pays nothing for it. Nothing of a closed connection is kept.

use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Something that holds bytes for a peer: a connection's write queue.
pub trait QueuedBytes: Send + Sync {
    /// Bytes queued and not yet written.
    fn queued_bytes(&self) -> usize;
}

/// The write queues of one side's open connections.
#[derive(Default)]
pub(super) struct Queues {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    queues: Vec<Option<Arc<dyn QueuedBytes>>>,
    free: Vec<usize>,
}

/// Keeps a queue counted until dropped.
#[must_use = "the queue is counted only while the registration lives"]
pub struct QueueRegistration {
    queues: Arc<Queues>,
    slot: usize,
}

impl std::fmt::Debug for QueueRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRegistration")
            .field("slot", &self.slot)
            .finish()
    }
}

impl Drop for QueueRegistration {
    fn drop(&mut self) {
        let mut slots = lock(&self.queues.slots);
        slots.queues[self.slot] = None;
        slots.free.push(self.slot);
    }
}

impl Queues {
    pub(super) fn track(self: &Arc<Self>, queue: Arc<dyn QueuedBytes>) -> QueueRegistration {
        let mut slots = lock(&self.slots);
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.queues[slot] = Some(queue);
                slot
            }
            None => {
                slots.queues.push(Some(queue));
                slots.queues.len() - 1
            }
        };
        QueueRegistration {
            queues: self.clone(),
            slot,
        }
    }

    pub(super) fn total(&self) -> u64 {
        let slots = lock(&self.slots);
        slots
            .queues
            .iter()
            .flatten()
            .map(|q| q.queued_bytes() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fixed(AtomicUsize);

    impl QueuedBytes for Fixed {
        fn queued_bytes(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn sums_the_open_queues_and_forgets_closed_ones_at_once() {
        let queues = Arc::new(Queues::default());
        let kept: Vec<_> = (0..3)
            .map(|_| queues.track(Arc::new(Fixed(AtomicUsize::new(10)))))
            .collect();
        let gone = Arc::new(Fixed(AtomicUsize::new(1_000)));
        let registration = queues.track(gone.clone());
        assert_eq!(queues.total(), 1_030);
        drop(registration);
        assert_eq!(queues.total(), 30);
        assert_eq!(Arc::strong_count(&gone), 1, "nothing of it is kept");
        // Its slot is reused.
        let again = queues.track(Arc::new(Fixed(AtomicUsize::new(5))));
        assert_eq!(lock(&queues.slots).queues.len(), 4);
        assert_eq!(queues.total(), 35);
        drop((kept, again));
        assert_eq!(queues.total(), 0);
    }
}
