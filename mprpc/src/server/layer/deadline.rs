//! Deadline: the rest of the stack runs until the caller's deadline
//! ([`Request::deadline`](crate::Request::deadline), its budget less the time the request
//! waited, see `docs/PROTOCOL.md`). Past it, the layers and the handler below are dropped,
//! which stops their work at their next await point, and the call is answered
//! `DeadlineExceeded`.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant;

use tokio::time::Sleep;

use crate::Status;

pin_project_lite::pin_project! {
    /// The caller's deadline, as the stack's [`Guarded`](super::stack::Guarded) future polls
    /// it.
    #[derive(Debug)]
    pub(super) struct Deadline {
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl Deadline {
    /// A timer for `deadline`, if the caller sent one.
    pub(super) fn new(deadline: Option<Instant>) -> Deadline {
        Deadline {
            sleep: deadline.map(|d| tokio::time::sleep_until(d.into())),
        }
    }

    /// Whether the deadline has passed (and if not, wakes the task when it does).
    pub(super) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        self.project()
            .sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }
}

/// The answer to a call whose deadline passed.
pub(super) fn exceeded(service: &str, method: &str) -> Status {
    Status::deadline_exceeded(format!(
        "{service}/{method}: the caller's time budget ran out; the call was abandoned"
    ))
}
