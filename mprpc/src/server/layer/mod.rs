//! Server layers: code that wraps every call a provider serves.
//!
//! A [`Layer`] sees each call before its service does, as a [`ServerCall`] (service, method,
//! metadata, deadline, the caller's address, the encoded request), and decides what happens:
//! it can refuse the call with a [`Status`] (the handler never runs), change its metadata,
//! run code before and after the rest of the stack ([`Next::run`]), or wrap the future that
//! runs it. [`Server::layer`](crate::server::Server::layer) adds one; every service the
//! provider hosts is wrapped, the built-in reflection service included.
//!
//! **Order.** Layers run outermost first, in the order they were added: with
//! `.layer(a).layer(b)`, a call goes `a` → `b` → the service, and its result comes back
//! through `b`, then `a`. The provider's built-in layers (authentication, admission, the
//! adaptive limit, metrics, tracing, deadline, panic catching) enclose them all;
//! `layer/stack.rs` lists the whole order. So a call
//! over a limit is refused before a user layer sees it, a layer that overruns the caller's
//! budget is abandoned like a slow handler, and a layer that panics is answered `Internal`
//! like a handler that panics.
//!
//! **Why this trait and not `tower::Layer`.** A layer here is one object-safe async method
//! that hands the call on through [`Next`]; a stack of them is a slice walked at run time,
//! with no generic service types to name, so a provider's stack can be built from a config
//! file, and a layer costs one boxed future per call. [`from_fn`] makes a layer of an async
//! closure, and [`interceptor`] is the short form for a check before the call.
//!
//! - [`from_fn`]: layers and interceptors from closures;
//! - [`tower`](from_tower): tower middleware as a layer;
//! - the built-ins, one file each: `auth`, `admission`, `inflate`, `metrics`, `trace`, `deadline`,
//!   `catch_panic`, and `adaptive/` (the adaptive concurrency limit: the layer, and its
//!   arithmetic in `estimator.rs`), composed in `stack.rs`.

mod adaptive;
mod admission;
mod auth;
mod catch_panic;
mod deadline;
mod from_fn;
mod inflate;
mod metrics;
pub(crate) mod stack;
mod tower;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;

pub use self::tower::{from_tower, FromTower, RestOfStack, TowerRequest};
pub(crate) use adaptive::AdaptiveLimit;
pub(crate) use admission::Admission;
pub use from_fn::{from_fn, interceptor, FromFn, Interceptor};

use super::service::Service;
use crate::future::BoxFuture;
use crate::{Body, Metadata, Request, Response, Status};

/// One call as a layer sees it.
#[derive(Debug)]
pub struct ServerCall {
    service: &'static str,
    method: &'static str,
    request: Request<Body>,
}

impl ServerCall {
    pub(crate) fn new(service: &'static str, method: &'static str, request: Request<Body>) -> Self {
        ServerCall {
            service,
            method,
            request,
        }
    }

    /// The fully qualified service name, `package.Service`.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The method name as declared in the `.proto` file.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The request: metadata, deadline, the caller's address, and the encoded message.
    pub fn request(&self) -> &Request<Body> {
        &self.request
    }

    /// The request, to change (its metadata, usually).
    pub fn request_mut(&mut self) -> &mut Request<Body> {
        &mut self.request
    }

    /// The request's metadata.
    pub fn metadata(&self) -> &Metadata {
        self.request.metadata()
    }

    /// The request's metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        self.request.metadata_mut()
    }

    /// The caller's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.request.remote_addr()
    }

    /// The method and the request, to hand on.
    pub(crate) fn into_parts(self) -> (&'static str, Request<Body>) {
        (self.method, self.request)
    }
}

/// What wraps the calls of a provider. See the [module documentation](self).
pub trait Layer: Send + Sync + 'static {
    /// Handles `call`: usually some work, then `next.run(call).await`, then some more.
    /// Returning without running `next` refuses the call. The reply's metadata (or a
    /// failure's, [`Status::metadata_mut`]) goes to the caller as response metadata; it
    /// holds what the handler set with [`reply_metadata`](crate::server::reply_metadata).
    fn call(&self, call: ServerCall, next: Next) -> BoxFuture<Result<Response<Body>, Status>>;
}

/// A provider's layers while it is being built, outermost first.
#[derive(Clone, Default)]
pub(crate) struct Layers(pub(crate) Vec<Arc<dyn Layer>>);

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} layer(s)", self.0.len())
    }
}

/// The rest of the stack after a layer: the layers inside it, then the service.
pub struct Next {
    layers: Arc<[Arc<dyn Layer>]>,
    index: usize,
    service: Arc<dyn Service>,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("layers_left", &(self.layers.len() - self.index))
            .field("service", &self.service.name())
            .finish()
    }
}

impl Next {
    /// The whole stack, `layers` (outermost first) around `service`.
    pub(crate) fn new(layers: Arc<[Arc<dyn Layer>]>, service: Arc<dyn Service>) -> Next {
        Next {
            layers,
            index: 0,
            service,
        }
    }

    /// Runs the rest of the stack on `call`.
    pub fn run(self, call: ServerCall) -> BoxFuture<Result<Response<Body>, Status>> {
        match self.layers.get(self.index).cloned() {
            Some(layer) => layer.call(
                call,
                Next {
                    index: self.index + 1,
                    ..self
                },
            ),
            None => Box::pin(super::reply::run_handler(
                self.service.call(call.method, call.request),
            )),
        }
    }
}
