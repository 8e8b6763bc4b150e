//! The channel's own stack: what every call goes through after the outer layers.
//!
//! **Order, outermost first** (the one place it is written down):
//!
//! 1. The outer layers ([`Channel::layer`]), in the order they were added.
//! 2. The request's size: one larger than `max_frame_size` is refused `ResourceExhausted`,
//!    nothing sent, nothing counted; then the bearer token of `[client.auth]`, if any, goes
//!    into its metadata.
//! 3. [`trace`](super::trace): the `rpc.client` span and the trace ids sent to the provider.
//! 4. [`metrics`](super::metrics): the call's count, latency and code per method.
//! 5. [`deadline`](super::deadline): the call's budget, its own, its method's
//!    (`[client.methods]`) or the channel's `timeout`,
//!    or less if it is made inside a handler whose incoming call has less left
//!    ([`crate::context`]).
//! 6. The balancer (`client/attempt.rs`): the chosen provider, then the others while the call
//!    could not be sent, with ejected providers passed over; for an idempotent method, the
//!    retries and hedges of `client/resilience/` within the retry budget.
//! 7. Around each attempt, the inner layers ([`Channel::layer_inner`]), then the send.
//!
//! As on the provider, each built-in is a module with what it does before the call, around
//! the rest and after, composed here at compile time, with no allocation per built-in.

use std::future::Future;
use tracing::Instrument;

use super::{auth, deadline, metrics, trace};
use crate::client::Channel;
use crate::status::{DOWNSTREAM, FAILURE_KEY};
use crate::{Body, Request, Response, Status};

/// What a step of the stack answers.
pub(crate) type Outcome = Result<Response<Body>, Status>;

impl Channel {
    /// A call past the outer layers: sized, traced, counted, bounded by its deadline, and
    /// sent to a provider. One async function with the built-ins' steps in it, not one async
    /// function each: nested async functions each keep a copy of the call.
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn unary_unlayered<'a>(
        &'a self,
        service: &'a str,
        method: &'a str,
        mut request: Request<Body>,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        async move {
            let max = self.inner.config.max_frame_size;
            if request.get_ref().len() > max {
                return Err(Status::resource_exhausted(format!(
                    "the request of {} bytes exceeds the maximum frame size of {max} bytes",
                    request.get_ref().len()
                )));
            }
            auth::add_token(&self.inner.token, &mut request)?;
            let span = trace::start(service, method, &mut request);
            // One reading of the clock for the call's latency and its deadline. (Under
            // tokio's paused test clock the latency is then off; nothing measures it there.)
            let now = tokio::time::Instant::now();
            let record = metrics::start(&self.inner.metrics, service, method, now.into_std());
            let own = request
                .timeout()
                .or_else(|| self.inner.resilience.timeout(service, method))
                .unwrap_or(self.inner.config.timeout);
            let (timeout, inherited) = deadline::budget(own);
            let deadline = now + timeout;
            let rest = self.call(service, method, request, deadline);
            let outcome = deadline::bound(deadline, (timeout, inherited), service, method, rest)
                .instrument(span)
                .await;
            metrics::finish(record, &outcome);
            // Marked as a downstream failure for whoever passes it on (`Status::is_downstream`).
            outcome.map_err(|mut status| {
                status.metadata_mut().insert(FAILURE_KEY, DOWNSTREAM);
                status
            })
        }
    }
}
