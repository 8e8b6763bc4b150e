//! Admission: the limits on calls in flight, per connection and for the whole provider
//! (`max_calls_per_connection`, `max_concurrent_calls`). A call over either is refused with
//! `ResourceExhausted` at once, without waiting, and counted as rejected; an admitted call
//! holds its provider-wide permit until the rest of the stack is done (the handler's end,
//! not the reply's write, so a client that reads slowly holds only its own connection's
//! slots).

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::stack::Call;
use crate::metrics::Metrics;
use crate::Status;

/// The provider's limits and its permits.
#[derive(Debug)]
pub(crate) struct Admission {
    /// One permit per call allowed to run at once.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_calls_per_connection: usize,
}

impl Admission {
    pub(crate) fn new(max_concurrent_calls: usize, max_calls_per_connection: usize) -> Self {
        Admission {
            permits: Arc::new(Semaphore::new(max_concurrent_calls)),
            max_concurrent_calls,
            max_calls_per_connection,
        }
    }

    /// Calls running now.
    pub(crate) fn in_flight(&self) -> usize {
        self.max_concurrent_calls - self.permits.available_permits()
    }
}

/// Admits `call`, or refuses it. The permit is held until the rest of the stack is done.
pub(super) fn admit<'a>(
    admission: &'a Admission,
    metrics: &Metrics,
    call: &Call,
) -> Result<SemaphorePermit<'a>, Status> {
    let per_connection = admission.max_calls_per_connection;
    let refusal = if call.connection_calls >= per_connection {
        format!("the connection is at its limit of {per_connection} calls in flight")
    } else {
        match admission.permits.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(_) => format!(
                "provider is at its limit of {} calls in flight",
                admission.max_concurrent_calls
            ),
        }
    };
    let status = Status::overloaded(refusal);
    metrics.rejected(status.code());
    Err(status)
}
