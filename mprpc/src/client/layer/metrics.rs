//! Metrics on the consumer: each call is counted per method, with its latency and its code
//! (a call dropped by its caller counts as `Cancelled`). See [`crate::metrics`].

use std::future::Future;

use super::stack::{Call, Outcome};
use crate::metrics::{Metrics, Side};
use crate::{Code, Status};

/// Counts `call` around the rest of the stack.
pub(super) async fn run<'a, F, Fut>(metrics: &Metrics, call: Call<'a>, next: F) -> Outcome
where
    F: FnOnce(Call<'a>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let record = metrics
        .method(Side::Client, call.service, call.method)
        .start();
    let outcome = next(call).await;
    record.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
    outcome
}
