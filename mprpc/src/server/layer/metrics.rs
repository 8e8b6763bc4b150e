//! Metrics: each admitted call is counted per method, with its latency and its code (a call
//! abandoned half-way, its caller gone, counts as `Cancelled`). See [`crate::metrics`].

use std::future::Future;

use super::stack::{Call, Outcome};
use crate::metrics::{Metrics, Side};
use crate::{Code, Status};

/// Counts `call` around the rest of the stack.
pub(super) async fn run<F, Fut>(metrics: &Metrics, call: Call, next: F) -> Outcome
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let record = metrics
        .method(Side::Server, call.service.name(), call.method)
        .start();
    let outcome = next(call).await;
    record.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
    outcome
}
