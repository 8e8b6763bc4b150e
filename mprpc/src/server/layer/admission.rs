//! Admission: the limits on calls in flight, per connection and for the whole provider
//! (`max_calls_per_connection`, `max_concurrent_calls`). A call over either is refused with
//! `ResourceExhausted` at once, without waiting, and counted as rejected; an admitted call
//! holds its provider-wide permit until the rest of the stack is done (the handler's end,
//! not the reply's write, so a client that reads slowly holds only its own connection's
//! slots).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::stack::{Call, Outcome};
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

/// Admits `call` and runs the rest of the stack, or refuses it.
pub(super) async fn run<F, Fut>(
    admission: &Admission,
    metrics: &Metrics,
    call: Call,
    next: F,
) -> Outcome
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let per_connection = admission.max_calls_per_connection;
    if call.connection_calls >= per_connection {
        let status = Status::resource_exhausted(format!(
            "the connection is at its limit of {per_connection} calls in flight"
        ));
        metrics.rejected(status.code());
        return Err(status);
    }
    let Ok(permit) = admission.permits.try_acquire() else {
        let status = Status::resource_exhausted(format!(
            "provider is at its limit of {} calls in flight",
            admission.max_concurrent_calls
        ));
        metrics.rejected(status.code());
        return Err(status);
    };
    let outcome = next(call).await;
    drop(permit);
    outcome
}
