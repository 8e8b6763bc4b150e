//! Tracing across calls: a trace id and a span id travel with each call, so a request that
//! crosses several services can be followed through every provider's log.
//!
//! - A consumer call outside any handler starts a new trace; a call made while a handler runs
//!   (see [`current`]) continues the handler's trace with a new span.
//! - An mprpc consumer sends the trace id (128 bits) and its span id (64 bits: the
//!   provider's parent) in three binary fields of the request header. Other callers (gRPC,
//!   HTTP/JSON) send them as metadata: [`TRACE_ID_KEY`] (32 hex digits) and [`SPAN_ID_KEY`]
//!   (16). A provider reads either ([`TraceContext::from_metadata`]).
//! - `tracing` spans carry the ids: `rpc.client` (debug level) around a call on the consumer,
//!   `rpc.server` around its handling on the provider (with `queue_us`, the time the call
//!   waited between arriving and its handler starting), `handler` around the application's
//!   code, and a `reply` event (debug level) with the code and the elapsed time. Everything a
//!   handler logs is therefore stamped with the trace.

use std::future::Future;

use rand::Rng;

use std::time::{Duration, Instant};

use crate::Metadata;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// Metadata key of the trace id.
pub const TRACE_ID_KEY: &str = "mprpc-trace-id";
/// Metadata key of the caller's span id.
pub const SPAN_ID_KEY: &str = "mprpc-span-id";

/// Where a piece of work sits in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The whole request's id, shared by every call it causes.
    pub trace_id: u128,
    /// This piece of work's id.
    pub span_id: u64,
}

impl TraceContext {
    /// A new trace.
    pub fn new_root() -> TraceContext {
        let mut rng = rand::rng();
        TraceContext {
            trace_id: rng.random::<u128>().max(1),
            span_id: rng.random::<u64>().max(1),
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: rand::rng().random::<u64>().max(1),
        }
    }

    /// The context a caller sent, if it sent a well-formed one: in the request header's
    /// fields (mprpc's consumers), or as [`TRACE_ID_KEY`] and [`SPAN_ID_KEY`] entries.
    pub fn from_metadata(metadata: &Metadata) -> Option<TraceContext> {
        if let Some((trace_id, span_id)) = metadata.trace_ids() {
            return Some(TraceContext { trace_id, span_id });
        }
        let trace_id = u128::from_str_radix(metadata.get(TRACE_ID_KEY)?, 16).ok()?;
        let span_id = u64::from_str_radix(metadata.get(SPAN_ID_KEY)?, 16).ok()?;
        Some(TraceContext { trace_id, span_id })
    }

    /// Attaches this context to an outgoing request's metadata, to travel in the request
    /// header's binary fields (what an mprpc consumer sends).
    pub(crate) fn attach(&self, metadata: &mut Metadata) {
        metadata.set_trace_ids(Some((self.trace_id, self.span_id)));
    }

    /// Writes this context into outgoing metadata as [`TRACE_ID_KEY`] and [`SPAN_ID_KEY`]
    /// entries (replacing any earlier ones), for a caller that is not an mprpc consumer's
    /// call (one to another system, or over gRPC or HTTP).
    pub fn inject(&self, metadata: &mut Metadata) {
        metadata.insert(TRACE_ID_KEY, self.trace_hex());
        metadata.insert(SPAN_ID_KEY, self.span_hex());
    }

    /// The trace id as 32 hex digits.
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 hex digits.
    pub fn span_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// Runs `work` with this trace as [`current`], and no deadline: work of its own (to carry
    /// a handler's deadline too, use [`CallContext::scope`]).
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        CallContext {
            trace: self,
            deadline: None,
        }
        .scope(work)
    }
}

/// The trace of the handler (or [`TraceContext::scope`]) running on this task, if any.
pub fn current() -> Option<TraceContext> {
    current_context().map(|c| c.trace)
}

/// The incoming call a piece of work belongs to: the trace it continues and the time it has
/// (see [`crate::context`], which explains how a handler's calls use it). It lives here,
/// with the trace it extends, so that `context` builds on `trace` and not the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The trace, and this piece of work's span in it.
    pub trace: TraceContext,
    /// When the incoming call's caller stops waiting, if it said.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// Runs `f` with this context current (one poll of a future, say).
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// Runs `work` with this context current: the calls it makes continue the trace and
    /// end by the deadline. For work moved to another task:
    /// `tokio::spawn(mprpc::context::current().unwrap().scope(work))`.
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, work)
    }

    /// The time left before the deadline (zero once it has passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// The context current on this task, if any.
pub(crate) fn current_context() -> Option<CallContext> {
    CURRENT.try_with(|c| *c).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_through_metadata_and_scopes() {
        let root = TraceContext::new_root();
        let mut m = Metadata::new();
        root.inject(&mut m);
        assert_eq!(TraceContext::from_metadata(&m), Some(root));
        assert_eq!(m.get(TRACE_ID_KEY).unwrap().len(), 32);
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_eq!(current(), None);
        let seen = root.scope(async { current() }).await;
        assert_eq!(seen, Some(root));
        m.insert(TRACE_ID_KEY, "not hex");
        assert_eq!(TraceContext::from_metadata(&m), None);
    }

    #[test]
    fn the_header_fields_win_over_the_keys() {
        let sent = TraceContext::new_root();
        let mut m = Metadata::new();
        TraceContext::new_root().inject(&mut m);
        sent.attach(&mut m);
        assert_eq!(TraceContext::from_metadata(&m), Some(sent));
        // Through the request header's fields and back, as a provider reads them.
        let mut header = crate::protocol::RequestHeader::default();
        assert_eq!(header.trace(), None);
        header.set_trace(m.trace_ids());
        let mut read = Metadata::new();
        read.set_trace_ids(header.trace());
        assert_eq!(TraceContext::from_metadata(&read), Some(sent));
    }
}
