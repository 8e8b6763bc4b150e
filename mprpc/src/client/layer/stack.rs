//! The channel's own stack: what every call goes through after the outer layers.
//!
//! **Order, outermost first** (the one place it is written down):
//!
//! 1. The outer layers ([`Channel::layer`]), in the order they were added.
//! 2. The request's size: one larger than `max_frame_size` is refused `ResourceExhausted`,
//!    nothing sent, nothing counted.
//! 3. [`trace`](super::trace): the `rpc.client` span and the trace ids sent to the provider.
//! 4. [`metrics`](super::metrics): the call's count, latency and code per method.
//! 5. [`deadline`](super::deadline): the call's budget, its own or the channel's `timeout`.
//! 6. The balancer (`client/attempt.rs`): the chosen provider, then the others while the call
//!    could not be sent.
//! 7. Around each attempt, the inner layers ([`Channel::layer_inner`]), then the send.
//!
//! As on the provider, the built-ins are async functions of the call and the rest of the
//! stack composed here at compile time, with no allocation per built-in.

use bytes::Bytes;

use super::{deadline, metrics, trace};
use crate::client::Channel;
use crate::{Request, Response, Status};

/// What a step of the stack answers.
pub(crate) type Outcome = Result<Response<Bytes>, Status>;

/// One call on its way down the channel's stack.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) request: Request<Bytes>,
}

impl Channel {
    /// A call past the outer layers: sized, traced, counted, bounded by its deadline, and
    /// sent to a provider.
    pub(crate) async fn unary_unlayered(
        &self,
        service: &str,
        method: &str,
        request: Request<Bytes>,
    ) -> Outcome {
        let max = self.inner.config.max_frame_size;
        if request.get_ref().len() > max {
            return Err(Status::resource_exhausted(format!(
                "the request of {} bytes exceeds the maximum frame size of {max} bytes",
                request.get_ref().len()
            )));
        }
        let call = Call {
            service,
            method,
            request,
        };
        let timeout = self.inner.config.timeout;
        trace::run(call, |call| {
            metrics::run(&self.inner.metrics, call, |call| {
                deadline::run(timeout, call, |call, deadline| {
                    self.call(call.service, call.method, call.request, deadline)
                })
            })
        })
        .await
    }
}
