//! Tracing on the consumer: a call continues the trace of the handler it runs in
//! ([`crate::trace::current`]) or starts one; its trace and span ids go to the provider in
//! the request header's fields, and the `rpc.client` span (debug level) covers the call. See
//! [`crate::trace`].

use tracing::Span;

use crate::trace::{self, TraceContext};
use crate::{Body, Request};

/// Puts the call in the current trace (or a new one), writes its ids into the request's
/// metadata, and returns the call's span.
pub(super) fn start(service: &str, method: &str, request: &mut Request<Body>) -> Span {
    let trace = trace::current().map_or_else(TraceContext::new_root, |p| p.child());
    trace.attach(request.metadata_mut());
    tracing::debug_span!(
        "rpc.client",
        %service,
        %method,
        trace_id = %trace.trace_hex(),
        span_id = %trace.span_hex(),
    )
}
