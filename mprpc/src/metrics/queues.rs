//! The bytes connections hold for peers that have not read them yet, summed when read.
//!
//! Each connection registers its write queue once, as a weak reference; the total is added up
//! only when `/metrics` or `/status` asks, so the call path pays nothing for it.

use std::sync::{Mutex, PoisonError, Weak};

/// Something that holds bytes for a peer: a connection's write queue.
pub trait QueuedBytes: Send + Sync {
    /// Bytes queued and not yet written.
    fn queued_bytes(&self) -> usize;
}

/// The write queues of one side's open connections.
#[derive(Default)]
pub(super) struct Queues {
    queues: Mutex<Vec<Weak<dyn QueuedBytes>>>,
}

impl Queues {
    pub(super) fn track(&self, queue: Weak<dyn QueuedBytes>) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget closed connections now and then: amortised O(1) per connection.
        if queues.len() >= 64 && queues.len().is_power_of_two() {
            queues.retain(|q| q.strong_count() > 0);
        }
        queues.push(queue);
    }

    pub(super) fn total(&self) -> u64 {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .iter()
            .filter_map(Weak::upgrade)
            .map(|q| q.queued_bytes() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Fixed(AtomicUsize);

    impl QueuedBytes for Fixed {
        fn queued_bytes(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn sums_the_open_queues_and_forgets_closed_ones() {
        let queues = Queues::default();
        let kept: Vec<Arc<Fixed>> = (0..3)
            .map(|_| Arc::new(Fixed(AtomicUsize::new(10))))
            .collect();
        for q in &kept {
            let q: Arc<dyn QueuedBytes> = q.clone();
            queues.track(Arc::downgrade(&q));
        }
        for _ in 0..200 {
            let gone: Arc<dyn QueuedBytes> = Arc::new(Fixed(AtomicUsize::new(1_000)));
            queues.track(Arc::downgrade(&gone));
        }
        assert_eq!(queues.total(), 30);
        assert!(queues.queues.lock().unwrap().len() < 203);
    }
}
