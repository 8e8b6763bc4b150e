//! Tracing: the `rpc.server` span around a call (with its trace and span ids and the time it
//! waited before it started, `queue_us`), the `handler` span inside it, the trace the
//! handler's own calls continue ([`crate::trace::current`]), and a `reply` event at debug
//! level with the code and the elapsed time. See [`crate::trace`].

use std::future::Future;

use tracing::Instrument;

use super::stack::{Call, Outcome};
use crate::trace::TraceContext;
use crate::{Code, Status};

/// Traces `call` around the rest of the stack.
pub(super) async fn run<F, Fut>(call: Call, next: F) -> Outcome
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let parent = TraceContext::from_metadata(call.request.metadata());
    let trace = parent.map_or_else(TraceContext::new_root, |p| p.child());
    let arrived = call.arrived;
    let span = tracing::info_span!(
        "rpc.server",
        service = %call.service.name(),
        method = %call.method,
        trace_id = %trace.trace_hex(),
        span_id = %trace.span_hex(),
        parent_span_id = %parent.map(|p| p.span_hex()).unwrap_or_default(),
        queue_us = arrived.elapsed().as_micros() as u64,
    );
    let handler = tracing::info_span!(parent: &span, "handler");
    let outcome = trace
        .scope(next(call).instrument(handler))
        .instrument(span.clone())
        .await;
    let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
    tracing::debug!(
        parent: &span,
        code = %code,
        elapsed_us = arrived.elapsed().as_micros() as u64,
        "reply"
    );
    outcome
}
