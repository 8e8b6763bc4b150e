//! Tracing: the `rpc.server` span around a call (with its trace and span ids and the time it
//! waited before it started, `queue_us`), the `handler` span inside it, the trace the
//! handler's own calls continue ([`crate::trace::current`]), and a `reply` event at debug
//! level with the code and the elapsed time. See [`crate::trace`].

use std::time::Instant;

use tracing::Span;

use super::stack::{Call, Outcome};
use crate::context::CallContext;
use crate::trace::TraceContext;
use crate::{Code, Status};

/// A call's spans and trace, from its start to its reply.
pub(super) struct Traced {
    span: Span,
    handler: Span,
    trace: TraceContext,
    deadline: Option<Instant>,
    arrived: Instant,
}

/// Opens `call`'s span, in the trace its caller sent (or a new one).
pub(super) fn start(call: &Call) -> Traced {
    let parent = TraceContext::from_metadata(call.request.metadata());
    let trace = parent.map_or_else(TraceContext::new_root, |p| p.child());
    let span = tracing::info_span!(
        "rpc.server",
        service = %call.service.name(),
        method = %call.method,
        trace_id = %trace.trace_hex(),
        span_id = %trace.span_hex(),
        parent_span_id = %parent.map(|p| p.span_hex()).unwrap_or_default(),
        queue_us = call.arrived.elapsed().as_micros() as u64,
    );
    let handler = tracing::info_span!(parent: &span, "handler");
    Traced {
        span,
        handler,
        trace,
        deadline: call.request.deadline(),
        arrived: call.arrived,
    }
}

impl Traced {
    /// Runs `poll` (one poll of the rest of the stack) in the call's span, with a `handler`
    /// span inside, and the call's trace and deadline current for the handler
    /// ([`crate::context`]).
    pub(super) fn enter<T>(&self, poll: impl FnOnce() -> T) -> T {
        let _call = self.span.enter();
        let _handler = self.handler.enter();
        let context = CallContext {
            trace: self.trace,
            deadline: self.deadline,
        };
        context.sync_scope(poll)
    }

    /// The `reply` event.
    pub(super) fn finish(self, outcome: &Outcome) {
        let code = outcome.as_ref().map_or_else(Status::code, |_| Code::Ok);
        tracing::debug!(
            parent: &self.span,
            code = %code,
            elapsed_us = self.arrived.elapsed().as_micros() as u64,
            "reply"
        );
    }
}
