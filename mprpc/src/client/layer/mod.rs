//! Client layers: code that wraps every call made through a channel.
//!
//! A [`Layer`] sees each call as a [`ClientCall`] (service, method, metadata, time budget,
//! the encoded request) before anything else happens to it, and hands it on with
//! [`Next::run`]. It can refuse the call with a [`Status`] (nothing is sent), add metadata
//! (a token), run the rest of the stack more than once (a retry), or wrap it (a timer), and it
//! sees the result: the encoded reply or the `Status`. [`Channel::layer`] adds one and returns
//! a handle that shares the channel's connections, so a layered and a plain handle can live
//! side by side.
//!
//! **Order and position.** Layers run outermost first, in the order they were added. They
//! sit *outside* the channel's own work: one run of [`Next::run`] is one logical call, which
//! the channel then traces, counts in its metrics, bounds by the call's deadline and sends to
//! a provider chosen by the balancer (trying another if the first could not be reached).
//! So a layer that runs `next` twice makes two calls, each with its own span, metrics and
//! deadline; a layer that needs to see each attempt on a chosen provider (per-provider
//! statistics) belongs inside the balancer, a position this module does not offer yet.
//!
//! - [`from_fn`]: layers and interceptors from closures;
//! - [`tower`](from_tower): tower middleware as a layer.

mod from_fn;
mod tower;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use self::tower::{from_tower, FromTower, RestOfStack, TowerRequest};
pub use from_fn::{from_fn, interceptor, FromFn, Interceptor};

use super::Channel;
use crate::{Metadata, Request, Status};

/// The future a client layer returns: it may borrow the call's names and the channel.
pub type LayerFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, Status>> + Send + 'a>>;

/// One call as a client layer sees it.
#[derive(Debug)]
pub struct ClientCall<'a> {
    service: &'a str,
    method: &'a str,
    request: Request<Bytes>,
}

impl<'a> ClientCall<'a> {
    pub(crate) fn new(service: &'a str, method: &'a str, request: Request<Bytes>) -> Self {
        ClientCall {
            service,
            method,
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

    /// The request: metadata, time budget and the encoded message.
    pub fn request(&self) -> &Request<Bytes> {
        &self.request
    }

    /// The request, to change.
    pub fn request_mut(&mut self) -> &mut Request<Bytes> {
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

    /// The call's own time budget, if it set one (else the channel's `timeout` applies).
    pub fn timeout(&self) -> Option<Duration> {
        self.request.timeout()
    }
}

impl Clone for ClientCall<'_> {
    /// A copy of the call, to send again (the encoded request is shared, not copied).
    fn clone(&self) -> Self {
        let mut request = Request::new(self.request.get_ref().clone());
        *request.metadata_mut() = self.request.metadata().clone();
        if let Some(timeout) = self.request.timeout() {
            request.set_timeout(timeout);
        }
        if let Some(key) = self.request.hash_key() {
            request = request.with_hash_key(key.to_owned());
        }
        ClientCall::new(self.service, self.method, request)
    }
}

/// What wraps the calls of a channel. See the [module documentation](self).
pub trait Layer: Send + Sync + 'static {
    /// Handles `call`: usually some work, then `next.run(call).await`, then some more.
    /// Returning without running `next` refuses the call; nothing is sent.
    fn call<'a>(&'a self, call: ClientCall<'a>, next: Next<'a>) -> LayerFuture<'a>;
}

/// The rest of the stack after a layer: the layers inside it, then the channel.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    channel: &'a Channel,
    /// The next layer to run, an index into the channel's layers.
    index: usize,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("layers_left", &(self.channel.layers.0.len() - self.index))
            .finish_non_exhaustive()
    }
}

impl<'a> Next<'a> {
    pub(crate) fn new(channel: &'a Channel) -> Next<'a> {
        Next { channel, index: 0 }
    }

    /// Runs the rest of the stack on `call`.
    pub fn run(self, call: ClientCall<'a>) -> LayerFuture<'a> {
        match self.channel.layers.0.get(self.index) {
            Some(layer) => layer.call(
                call,
                Next {
                    channel: self.channel,
                    index: self.index + 1,
                },
            ),
            None => Box::pin(
                self.channel
                    .unary_unlayered(call.service, call.method, call.request),
            ),
        }
    }

    /// The same, owning what it needs, for a future that must not borrow (tower's).
    fn to_owned(self) -> OwnedNext {
        OwnedNext {
            channel: self.channel.clone(),
            index: self.index,
        }
    }
}

/// [`Next`] that owns a handle of the channel.
#[derive(Clone, Debug)]
struct OwnedNext {
    channel: Channel,
    index: usize,
}

/// A channel's layers, outermost first.
#[derive(Clone, Default)]
pub(crate) struct Layers(pub(crate) Arc<[Arc<dyn Layer>]>);

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} layer(s)", self.0.len())
    }
}
