//! tower middleware as a client layer: [`from_tower`].
//!
//! As on the provider (`mprpc::server::layer::from_tower`): the tower stack is built once,
//! around an innermost service that runs the rest of the channel's stack, so stateful
//! middleware (a concurrency limit, a rate limit) keeps its state across calls; readiness is
//! honoured; errors come back as a [`Status`] (tower's timeout as `DeadlineExceeded`, load
//! shedding as `ResourceExhausted`). The call travels through tower as an owned
//! [`TowerRequest`], so each call through this layer copies its service and method names.

use std::task::{Context, Poll};

use super::{ClientCall, Layer, LayerFuture, Next, OwnedNext};
use crate::future::BoxFuture;
use crate::tower_stack::TowerStack;
use crate::{Body, Request, Response, Status};

/// A call on its way through a tower stack.
#[derive(Debug)]
pub struct TowerRequest {
    service: String,
    method: String,
    provider: Option<String>,
    request: Request<Body>,
    next: OwnedNext,
}

impl TowerRequest {
    /// The fully qualified service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The provider's address, in an inner layer (see [`ClientCall::provider`]).
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The request, to read or change.
    pub fn request_mut(&mut self) -> &mut Request<Body> {
        &mut self.request
    }
}

/// The innermost service of a tower stack made by [`from_tower`]: runs the rest of the
/// channel's stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestOfStack;

impl tower::Service<TowerRequest> for RestOfStack {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, r: TowerRequest) -> Self::Future {
        Box::pin(async move {
            let mut call = ClientCall::new(&r.service, &r.method, r.request);
            call.provider = r.provider.as_deref();
            r.next.borrow().run(call).await
        })
    }
}

/// A client layer made of a tower layer, e.g.
/// `from_tower(tower::limit::ConcurrencyLimitLayer::new(64))`.
pub fn from_tower<L>(layer: L) -> FromTower<L::Service>
where
    L: tower::Layer<RestOfStack>,
    L::Service: tower::Service<TowerRequest, Response = Response<Body>> + Send + 'static,
    <L::Service as tower::Service<TowerRequest>>::Error: Into<tower::BoxError>,
    <L::Service as tower::Service<TowerRequest>>::Future: Send + 'static,
{
    FromTower(TowerStack::new(layer.layer(RestOfStack)))
}

/// The layer [`from_tower`] makes.
#[derive(Debug)]
pub struct FromTower<S>(TowerStack<S>);

impl<S> Layer for FromTower<S>
where
    S: tower::Service<TowerRequest, Response = Response<Body>> + Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    fn call<'a>(&'a self, call: ClientCall<'a>, next: Next<'a>) -> LayerFuture<'a> {
        let request = TowerRequest {
            service: call.service.to_owned(),
            method: call.method.to_owned(),
            provider: call.provider.map(str::to_owned),
            request: call.request,
            next: next.to_owned(),
        };
        Box::pin(self.0.call(request))
    }
}
