//! Admission: the limits on calls in flight, per connection and for the whole provider
//! (`max_calls_per_connection`, `max_concurrent_calls`). A call over either is refused with
//! `ResourceExhausted` at once, without waiting, and counted as rejected; an admitted call
//! holds its provider-wide permit until the rest of the stack is done (the handler's end,
//! not the reply's write, so a client that reads slowly holds only its own connection's
//! slots).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::stack::Call;
use crate::metrics::Metrics;
use crate::Status;

/// The provider's limits, and its calls running now.
///
/// The provider-wide limit is a count, not a semaphore: a call over it is refused, never
/// queued, so nothing waits for a place, and a place given back is one atomic subtraction
/// (a semaphore's release takes its waiters' lock, about 150 instructions a call).
#[derive(Debug)]
pub(crate) struct Admission {
    running: AtomicUsize,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_calls_per_connection: usize,
}

/// An admitted call's place among the provider's calls, given back when dropped.
#[derive(Debug)]
pub(super) struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl Admission {
    pub(crate) fn new(max_concurrent_calls: usize, max_calls_per_connection: usize) -> Self {
        Admission {
            running: AtomicUsize::new(0),
            max_concurrent_calls,
            max_calls_per_connection,
        }
    }

    /// Calls running now.
    pub(crate) fn in_flight(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// A place for one more call, if the provider is below its limit.
    fn try_enter(&self) -> Option<Permit<'_>> {
        let mut running = self.running.load(Ordering::Relaxed);
        loop {
            if running >= self.max_concurrent_calls {
                return None;
            }
            match self.running.compare_exchange_weak(
                running,
                running + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Permit(&self.running)),
                Err(now) => running = now,
            }
        }
    }
}

/// Admits `call`, or refuses it. The permit is held until the rest of the stack is done.
pub(super) fn admit<'a>(
    admission: &'a Admission,
    metrics: &Metrics,
    call: &Call,
) -> Result<Permit<'a>, Status> {
    let per_connection = admission.max_calls_per_connection;
    let refusal = if call.connection_calls >= per_connection {
        format!("the connection is at its limit of {per_connection} calls in flight")
    } else {
        match admission.try_enter() {
            Some(permit) => return Ok(permit),
            None => format!(
                "provider is at its limit of {} calls in flight",
                admission.max_concurrent_calls
            ),
        }
    };
    let status = Status::overloaded(refusal);
    metrics.rejected(status.code());
    Err(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back_when_dropped() {
        let admission = Admission::new(2, 100);
        let first = admission.try_enter().expect("below the limit");
        let second = admission.try_enter().expect("below the limit");
        assert_eq!(admission.in_flight(), 2);
        assert!(admission.try_enter().is_none(), "at the limit");
        drop(first);
        assert_eq!(admission.in_flight(), 1);
        let third = admission.try_enter().expect("a place was given back");
        drop((second, third));
        assert_eq!(admission.in_flight(), 0);
        assert!(
            Admission::new(0, 100).try_enter().is_none(),
            "a limit of 0 admits nothing"
        );
    }
}
