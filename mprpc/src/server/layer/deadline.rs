//! Deadline: the rest of the stack runs until the caller's deadline
//! ([`Request::deadline`](crate::Request::deadline), its budget less the time the request
//! waited, see `docs/PROTOCOL.md`). Past it, the layers and the handler below are dropped,
//! which stops their work at their next await point, and the call is answered
//! `DeadlineExceeded`.

use std::future::Future;

use super::stack::{Call, Outcome};
use crate::Status;

/// Bounds the rest of the stack by `call`'s deadline.
pub(super) async fn run<F, Fut>(call: Call, next: F) -> Outcome
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let Some(deadline) = call.request.deadline() else {
        return next(call).await;
    };
    let (service, method) = (call.service.name(), call.method);
    match tokio::time::timeout_at(deadline.into(), next(call)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "{service}/{method}: the caller's time budget ran out; the call was abandoned"
        ))),
    }
}
