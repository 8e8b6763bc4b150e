//! tower middleware as a server layer: [`from_tower`].
//!
//! The tower stack is built once, around an innermost service that runs the rest of the
//! mprpc stack, so middleware that keeps state between calls (`ConcurrencyLimitLayer`'s
//! semaphore, `RateLimitLayer`'s window) works as it does anywhere in tower. Its request is a
//! [`TowerRequest`] (the [`ServerCall`], and the rest of the stack to run), its response the
//! encoded reply with its metadata. tower's readiness is honoured: a call waits for `poll_ready` (calls take
//! their turn for it one at a time), then runs. Errors come back as a [`Status`]: a
//! `Status` as it is, tower's `Elapsed` (timeout) as `DeadlineExceeded`, `Overloaded`
//! (load shedding) as `ResourceExhausted`, anything else as `Internal`.

use std::task::{Context, Poll};

use super::{Layer, Next, ServerCall};
use crate::future::BoxFuture;
use crate::tower_stack::TowerStack;
use crate::{Body, Response, Status};

/// A call on its way through a tower stack.
#[derive(Debug)]
pub struct TowerRequest {
    call: ServerCall,
    next: Next,
}

impl TowerRequest {
    /// The call.
    pub fn call(&self) -> &ServerCall {
        &self.call
    }

    /// The call, to change.
    pub fn call_mut(&mut self) -> &mut ServerCall {
        &mut self.call
    }
}

/// The innermost service of a tower stack made by [`from_tower`]: runs the rest of the
/// mprpc stack.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestOfStack;

impl tower::Service<TowerRequest> for RestOfStack {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: TowerRequest) -> Self::Future {
        request.next.run(request.call)
    }
}

/// A server layer made of a tower layer, e.g.
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
    fn call(&self, call: ServerCall, next: Next) -> BoxFuture<Result<Response<Body>, Status>> {
        Box::pin(self.0.call(TowerRequest { call, next }))
    }
}
