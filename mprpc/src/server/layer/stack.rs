//! The provider's whole stack: the built-in layers around the user's, and the handler.
//!
//! **Order, outermost first** (the one place it is written down):
//!
//! 0. [`auth`](super::auth), with `[server.auth]`: who is calling, and may they call this
//!    method; a refusal is `Unauthenticated` or `PermissionDenied`.
//! 1. [`admission`](super::admission): the per-connection and provider-wide limits on calls
//!    in flight; a call over either is refused `ResourceExhausted` and counted as rejected.
//! 2. [`adaptive`](super::adaptive), with `[server.adaptive_limit]`: the limit that follows
//!    the latency; a call over it is shed, refused `ResourceExhausted` and counted as
//!    rejected and as shed. It samples each admitted call's latency, from its arrival to
//!    the end of the rest of the stack.
//! 3. [`inflate`](super::inflate), for a compressed request: its body decompressed (at most
//!    `max_frame_size`), in the call's own task.
//! 3. [`metrics`](super::metrics): the call's count, latency and code per method.
//! 4. [`trace`](super::trace): the `rpc.server` span and the trace the handler continues.
//! 5. [`deadline`](super::deadline): the caller's remaining budget; past it the rest of the
//!    stack is dropped and the call answered `DeadlineExceeded`.
//! 6. [`catch_panic`](super::catch_panic): a panic below answers `Internal`; the provider
//!    carries on.
//! 7. The user's layers ([`Server::layer`](crate::server::Server::layer)), in the order they
//!    were added.
//! 8. The handler, with its response-metadata slot
//!    ([`reply_metadata`](crate::server::reply_metadata)).
//!
//! Before the stack, the connection only reads the wire: it refuses a call to an unknown
//! service or method, metadata over its limits, and calls that arrive while the provider
//! drains, and drops without a reply a call whose caller already left or whose deadline
//! passed while it waited in buffers.
//!
//! **Why the built-ins are not boxed [`Layer`]s.** Each is a module with what it does before
//! the call, the future it wraps around the rest of the stack, and what it does after,
//! composed here at compile time into one future: no allocation and no virtual call per
//! built-in (and one branch for each optional one that is off). As [`Layer`] objects, the five
//! would cost five boxed futures per call (measured: about 660 instructions per layer and
//! side, `bench/src/bin/callcount.rs`), over a tenth of a small call's cost.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::Either;

use super::adaptive::AdaptiveLimit;
use super::admission::Admission;
use super::deadline::Deadline;
use super::trace::Traced;
use super::{
    adaptive, admission, auth, catch_panic, deadline, inflate, metrics, trace, Layer, Next,
    ServerCall,
};
use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::server::reply::run_handler;
use crate::server::service::Service;
use crate::{Body, Request, Response, Status};

/// What a layer (built-in or not) answers.
pub(crate) type Outcome = Result<Response<Body>, Status>;

/// One call on its way down the stack, with what the built-ins need to know about it.
pub(crate) struct Call {
    pub(crate) service: Arc<dyn Service>,
    pub(crate) method: &'static str,
    /// Its metadata, deadline and caller's address, and the encoded message.
    pub(crate) request: Request<Body>,
    /// When the connection read it.
    pub(crate) arrived: Instant,
    /// Calls in flight on its connection when it arrived.
    pub(crate) connection_calls: usize,
    /// How its body is compressed, if it is.
    pub(crate) encoding: Option<crate::compression::Encoding>,
}

/// The stack of a provider, built once.
pub(crate) struct Stack {
    pub(crate) admission: Admission,
    /// The limit that follows the latency, with `[server.adaptive_limit]`.
    pub(crate) adaptive: Option<AdaptiveLimit>,
    /// Tokens and allow lists, with `[server.auth]`.
    pub(crate) auth: Option<Auth>,
    pub(crate) metrics: Metrics,
    /// The largest request body, decompressed (`max_frame_size`).
    pub(crate) max_message: usize,
    /// The user's layers, outermost first.
    pub(crate) layers: Arc<[Arc<dyn Layer>]>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("user_layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Runs `call` through the whole stack to its outcome.
    ///
    /// Each built-in is in its own module: what it does before the call, its part of each
    /// poll of the rest ([`Guarded`]), what it does after. They are composed here rather
    /// than nested as futures: nested async functions each keep a copy of the call, and
    /// nested combinators move the rest of the stack once per layer; both made a call's
    /// future larger and every call slower (measured with callgrind).
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn serve(
        self: Arc<Self>,
        mut call: Call,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        async move {
            if let Some(auth) = &self.auth {
                auth::check(auth, &self.metrics, &mut call)?;
            }
            let permit = admission::admit(&self.admission, &self.metrics, &call)?;
            let slot = match &self.adaptive {
                Some(limit) => Some(adaptive::admit(limit, &self.metrics, call.arrived)?),
                None => None,
            };
            if inflate::needed(&call) {
                // Off the connection's reader (which polls a call's start inline) first.
                tokio::task::yield_now().await;
                inflate::inflate(&mut call, self.max_message, &self.metrics)?;
            }
            let record = metrics::start(&self.metrics, &call);
            let guarded = Guarded {
                traced: Some(trace::start(&call)),
                deadline: Deadline::new(call.request.deadline()),
                service: call.service.name(),
                method: call.method,
                rest: self.user_layers(call),
            };
            let (outcome, traced) = guarded.await;
            drop(slot);
            traced.finish(&outcome);
            metrics::finish(record, &outcome);
            drop(permit);
            outcome
        }
    }

    /// The user's layers, then the handler.
    fn user_layers(&self, call: Call) -> impl Future<Output = Outcome> + Send + 'static {
        let Call {
            service,
            method,
            request,
            ..
        } = call;
        if self.layers.is_empty() {
            return Either::Left(run_handler(service.call(method, request)));
        }
        let next = Next::new(self.layers.clone(), service.clone());
        let call = ServerCall::new(service.name(), method, request);
        // Inside a future, so that the panic guard catches a layer that panics while it builds
        // its future too.
        Either::Right(Box::pin(async move { next.run(call).await }))
    }
}

pin_project_lite::pin_project! {
    /// The rest of the stack (the user's layers and the handler) under the built-ins that
    /// act on each of its polls: [`trace`] enters the call's spans and makes its trace
    /// current, [`catch_panic`] turns a panic into `Internal`, and [`deadline`] ends the call
    /// when the caller's budget runs out. Resolves to the outcome and the trace, for its
    /// `reply` event.
    pub(super) struct Guarded<F> {
        #[pin]
        rest: F,
        traced: Option<Traced>,
        #[pin]
        deadline: Deadline,
        service: &'static str,
        method: &'static str,
    }
}

impl<F: Future<Output = Outcome>> Future for Guarded<F> {
    type Output = (Outcome, Traced);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let traced = this.traced.as_ref().expect("polled after completion");
        let (service, method) = (*this.service, *this.method);
        let rest = this.rest;
        let polled = traced.enter(|| catch_panic::catch(service, method, || rest.poll(cx)));
        let outcome = match polled {
            Ok(Poll::Ready(outcome)) => outcome,
            Err(panicked) => Err(panicked),
            Ok(Poll::Pending) if this.deadline.poll_expired(cx) => {
                Err(deadline::exceeded(service, method))
            }
            Ok(Poll::Pending) => return Poll::Pending,
        };
        let traced = this.traced.take().expect("polled after completion");
        Poll::Ready((outcome, traced))
    }
}
