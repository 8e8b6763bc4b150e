//! The deadline on the consumer: a call has the request's own timeout, or the channel's
//! `timeout`. The rest of the stack (finding providers, connecting, every attempt, waiting
//! for the reply) runs until then; past it, the call fails `DeadlineExceeded`, and dropping
//! the attempt tells the provider to cancel. The provider is sent the budget left at each
//! attempt.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::stack::{Call, Outcome};
use crate::Status;

/// Bounds the rest of the stack by the call's deadline, which `next` is given too.
pub(super) async fn run<'a, F, Fut>(default: Duration, call: Call<'a>, next: F) -> Outcome
where
    F: FnOnce(Call<'a>, Instant) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let timeout = call.request.timeout().unwrap_or(default);
    let (service, method) = (call.service, call.method);
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, next(call, deadline)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "{service}/{method}: no reply within {timeout:?}"
        ))),
    }
}
