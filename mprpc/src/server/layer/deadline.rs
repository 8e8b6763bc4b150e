//! Deadline: the rest of the stack runs until the caller's deadline
//! ([`Request::deadline`](crate::Request::deadline), its budget less the time the request
//! waited, see `docs/PROTOCOL.md`). Past it, the layers and the handler below are dropped,
//! which stops their work at their next await point, and the call is answered
//! `DeadlineExceeded`.

use std::future::Future;
use std::time::Instant;

use futures_util::future::Either;
use futures_util::FutureExt;

use super::stack::Outcome;
use crate::Status;

/// `rest`, bounded by the caller's deadline, if it sent one.
pub(super) fn bound<F>(
    deadline: Option<Instant>,
    service: &'static str,
    method: &'static str,
    rest: F,
) -> impl Future<Output = Outcome>
where
    F: Future<Output = Outcome>,
{
    let Some(deadline) = deadline else {
        return Either::Left(rest);
    };
    let bounded = tokio::time::timeout_at(deadline.into(), rest).map(move |outcome| {
        outcome.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "{service}/{method}: the caller's time budget ran out; the call was abandoned"
            )))
        })
    });
    Either::Right(bounded)
}
