//! Client layers: code that wraps every call made through a channel.
//!
//! A [`Layer`] sees each call as a [`ClientCall`] (service, method, metadata, time budget,
//! the encoded request) and hands it on with [`Next::run`]. It can refuse the call with a
//! [`Status`] (nothing is sent), add metadata (a token), run the rest of the stack more than
//! once (a retry), or wrap it (a timer), and it sees the result: the reply with its response
//! metadata, or the `Status` (with its metadata). [`Channel::layer`] and
//! [`Channel::layer_inner`] add one and return a handle that shares the channel's
//! connections, so a layered and a plain handle can live side by side.
//!
//! **Two positions**, as in Volo:
//!
//! - **Outer** ([`Channel::layer`]): around the logical call, before the channel's own work.
//!   One run of [`Next::run`] is one call, which the channel then traces, counts in its
//!   metrics, bounds by the call's deadline and sends to a provider chosen by the balancer.
//!   A layer that runs `next` twice makes two calls, each with its own span, metrics and
//!   deadline: retries and hedging belong here.
//! - **Inner** ([`Channel::layer_inner`]): around each attempt on a provider the balancer
//!   chose, inside the deadline; [`ClientCall::provider`] names the provider. When the
//!   balancer tries a second provider because the first could not be reached, the inner
//!   layers run once per attempt. A failure from an inner layer that never reached the wire
//!   (a refusal) counts as not sent, so the balancer moves on to the next provider:
//!   per-provider statistics and circuit breakers belong here.
//!
//! Within each position, layers run outermost first, in the order they were added.
//!
//! - [`from_fn`]: layers and interceptors from closures;
//! - [`tower`](from_tower): tower middleware as a layer.

mod auth;
mod deadline;
mod from_fn;
mod metrics;
mod stack;
mod stream;
mod tower;
mod trace;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::tower::{from_tower, FromTower, RestOfStack, TowerRequest};
pub use from_fn::{from_fn, interceptor, FromFn, Interceptor};

use super::connection::CallError;
use super::endpoint::Endpoint;
use super::Channel;
use crate::{Body, Metadata, Request, Response, Status};

/// The future a client layer returns: it may borrow the call's names and the channel.
pub type LayerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send + 'a>>;

/// One call as a client layer sees it.
#[derive(Debug)]
pub struct ClientCall<'a> {
    service: &'a str,
    method: &'a str,
    provider: Option<&'a str>,
    request: Request<Body>,
}

impl<'a> ClientCall<'a> {
    pub(crate) fn new(service: &'a str, method: &'a str, request: Request<Body>) -> Self {
        ClientCall {
            service,
            method,
            provider: None,
            request,
        }
    }

    /// The fully qualified service name, `package.Service`.
    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The method name.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The address of the provider this attempt goes to: set for inner layers
    /// ([`Channel::layer_inner`]), `None` for outer ones, which run before a provider is
    /// chosen.
    pub fn provider(&self) -> Option<&'a str> {
        self.provider
    }

    /// The request: metadata, time budget and the encoded message.
    pub fn request(&self) -> &Request<Body> {
        &self.request
    }

    /// The request, to change.
    pub fn request_mut(&mut self) -> &mut Request<Body> {
        &mut self.request
    }

    /// The request's metadata.
    pub fn metadata(&self) -> &Metadata {
        self.request.metadata()
    }

    /// The request's metadata, to change (a token, a tenant).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        self.request.metadata_mut()
    }

    /// The call's time budget: in an outer layer, the call's own if it set one (else the
    /// channel's `timeout` applies); in an inner layer, what is left of it for this attempt.
    pub fn timeout(&self) -> Option<Duration> {
        self.request.timeout()
    }
}

impl Clone for ClientCall<'_> {
    /// A copy of the call, to send again (the encoded request is shared, not copied).
    fn clone(&self) -> Self {
        // Everything: metadata, extensions, timeout, hash key, idempotency.
        let request = self.request.clone();
        ClientCall { request, ..*self }
    }
}

/// What wraps the calls of a channel. See the [module documentation](self).
pub trait Layer: Send + Sync + 'static {
    /// Handles `call`: usually some work, then `next.run(call).await`, then some more.
    /// Returning without running `next` refuses the call; nothing is sent.
    fn call<'a>(&'a self, call: ClientCall<'a>, next: Next<'a>) -> LayerFuture<'a>;
}

/// One attempt on a chosen provider, as the inner layers run it.
pub(crate) struct Attempt {
    pub(crate) channel: Channel,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) deadline: tokio::time::Instant,
    /// Whether the innermost step put the request on the wire.
    sent: AtomicBool,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("provider", &self.endpoint.address())
            .finish_non_exhaustive()
    }
}

impl Attempt {
    pub(crate) fn new(
        channel: Channel,
        endpoint: Arc<Endpoint>,
        deadline: tokio::time::Instant,
    ) -> Arc<Attempt> {
        Arc::new(Attempt {
            channel,
            endpoint,
            deadline,
            sent: AtomicBool::new(false),
        })
    }

    /// Runs the inner layers and the send on `call`; a failure that never reached the wire
    /// is [`CallError::NotSent`], so the balancer may try another provider.
    pub(crate) async fn run(
        self: &Arc<Attempt>,
        mut call: ClientCall<'_>,
    ) -> Result<Response<Body>, CallError> {
        call.provider = Some(self.endpoint.address());
        let remaining = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        call.request.set_timeout(remaining);
        let next = Next {
            stack: Stack::Inner(self),
            index: 0,
        };
        match next.run(call).await {
            Ok(reply) => Ok(reply),
            Err(status) if self.sent.load(Ordering::Relaxed) => Err(CallError::Failed(status)),
            Err(status) => Err(CallError::NotSent(status)),
        }
    }
}

/// Which stack a [`Next`] walks.
#[derive(Clone, Copy)]
enum Stack<'a> {
    /// The outer layers, then the channel's call.
    Outer(&'a Channel),
    /// The inner layers, then the send on the attempt's provider.
    Inner(&'a Arc<Attempt>),
}

/// The rest of the stack after a layer: the layers inside it, then the channel (outer
/// layers) or the send to the chosen provider (inner layers).
#[derive(Clone, Copy)]
pub struct Next<'a> {
    stack: Stack<'a>,
    /// The next layer to run, an index into the position's layers.
    index: usize,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("layers_left", &(self.layers().len() - self.index))
            .finish_non_exhaustive()
    }
}

impl<'a> Next<'a> {
    pub(crate) fn new(channel: &'a Channel) -> Next<'a> {
        Next {
            stack: Stack::Outer(channel),
            index: 0,
        }
    }

    fn layers(&self) -> &'a [Arc<dyn Layer>] {
        match self.stack {
            Stack::Outer(channel) => &channel.layers.outer,
            Stack::Inner(attempt) => &attempt.channel.layers.inner,
        }
    }

    /// Runs the rest of the stack on `call`.
    pub fn run(self, call: ClientCall<'a>) -> LayerFuture<'a> {
        if let Some(layer) = self.layers().get(self.index) {
            let next = Next {
                index: self.index + 1,
                ..self
            };
            return layer.call(call, next);
        }
        match self.stack {
            Stack::Outer(channel) => {
                let mut request = call.request;
                match request.extensions_mut().remove::<stream::StreamOpening>() {
                    Some(opening) => {
                        let names = (call.service, call.method);
                        Box::pin(channel.stream_innermost(names, request, opening))
                    }
                    None => Box::pin(channel.unary_unlayered(call.service, call.method, request)),
                }
            }
            Stack::Inner(attempt) => Box::pin(async move {
                let (metadata, body) = (call.request.metadata().clone(), call.request.into_inner());
                let sent = attempt.channel.send(
                    attempt.endpoint.clone(),
                    call.service,
                    call.method,
                    metadata,
                    body,
                    attempt.deadline,
                );
                match sent.await {
                    Ok(reply) => {
                        attempt.sent.store(true, Ordering::Relaxed);
                        Ok(reply)
                    }
                    Err(CallError::NotSent(status)) => Err(status),
                    Err(CallError::Failed(status)) => {
                        attempt.sent.store(true, Ordering::Relaxed);
                        Err(status)
                    }
                }
            }),
        }
    }

    /// The same, owning what it needs, for a future that must not borrow (tower's).
    fn to_owned(self) -> OwnedNext {
        OwnedNext {
            stack: match self.stack {
                Stack::Outer(channel) => OwnedStack::Outer(channel.clone()),
                Stack::Inner(attempt) => OwnedStack::Inner(attempt.clone()),
            },
            index: self.index,
        }
    }
}

/// [`Next`] that owns what it refers to.
#[derive(Clone, Debug)]
struct OwnedNext {
    stack: OwnedStack,
    index: usize,
}

#[derive(Clone, Debug)]
enum OwnedStack {
    Outer(Channel),
    Inner(Arc<Attempt>),
}

impl OwnedNext {
    fn borrow(&self) -> Next<'_> {
        Next {
            stack: match &self.stack {
                OwnedStack::Outer(channel) => Stack::Outer(channel),
                OwnedStack::Inner(attempt) => Stack::Inner(attempt),
            },
            index: self.index,
        }
    }
}

/// A channel's layers, outermost first in each position.
#[derive(Clone, Default)]
pub(crate) struct Layers {
    pub(crate) outer: Arc<[Arc<dyn Layer>]>,
    pub(crate) inner: Arc<[Arc<dyn Layer>]>,
}

impl Layers {
    /// The same with `layer` innermost among the outer layers (`inner` false) or the inner
    /// ones.
    pub(crate) fn with(&self, layer: Arc<dyn Layer>, inner: bool) -> Layers {
        let add = |layers: &Arc<[Arc<dyn Layer>]>| {
            let mut layers = layers.to_vec();
            layers.push(layer.clone());
            layers.into()
        };
        if inner {
            Layers {
                outer: self.outer.clone(),
                inner: add(&self.inner),
            }
        } else {
            Layers {
                outer: add(&self.outer),
                inner: self.inner.clone(),
            }
        }
    }
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} outer and {} inner layer(s)",
            self.outer.len(),
            self.inner.len()
        )
    }
}
