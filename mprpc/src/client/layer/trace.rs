//! Tracing on the consumer: a call continues the trace of the handler it runs in
//! ([`crate::trace::current`]) or starts one; its trace and span ids go to the provider in
//! the metadata, and the `rpc.client` span (debug level) covers the call. See
//! [`crate::trace`].

use std::future::Future;

use tracing::Instrument;

use super::stack::{Call, Outcome};
use crate::trace::{self, TraceContext};

/// Traces `call` around the rest of the stack.
pub(super) async fn run<'a, F, Fut>(mut call: Call<'a>, next: F) -> Outcome
where
    F: FnOnce(Call<'a>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let trace = trace::current().map_or_else(TraceContext::new_root, |p| p.child());
    trace.inject(call.request.metadata_mut());
    let span = tracing::debug_span!(
        "rpc.client",
        service = %call.service,
        method = %call.method,
        trace_id = %trace.trace_hex(),
        span_id = %trace.span_hex(),
    );
    next(call).instrument(span).await
}
