//! The deadline on the consumer: a call has the request's own timeout, or the channel's
//! `timeout`; made inside a handler, no more than the incoming call has left
//! ([`crate::context`]). The rest of the stack (finding providers, connecting, every attempt, waiting
//! for the reply) runs until then; past it, the call fails `DeadlineExceeded`, and dropping
//! the attempt tells the provider to cancel. The provider is sent the budget left at each
//! attempt.

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use super::stack::Outcome;
use crate::Status;

/// The budget of a call whose own is `own`, and whether the incoming call's deadline (the
/// handler this call is made in) cut it.
pub(super) fn budget(own: Duration) -> (Duration, bool) {
    crate::context::budget(own)
}

/// `rest`, bounded by `deadline`, `timeout` from the call's start (`inherited`: what was
/// left of the incoming call's budget).
pub(super) fn bound<'a, F>(
    deadline: Instant,
    (timeout, inherited): (Duration, bool),
    service: &'a str,
    method: &'a str,
    rest: F,
) -> impl Future<Output = Outcome> + 'a
where
    F: Future<Output = Outcome> + 'a,
{
    tokio::time::timeout_at(deadline, rest).map(move |outcome| {
        outcome.unwrap_or_else(|_| {
            let whose = if inherited {
                ", what was left of the incoming call's budget"
            } else {
                ""
            };
            Err(Status::deadline_exceeded(format!(
                "{service}/{method}: no reply within {timeout:?}{whose}"
            )))
        })
    })
}
