//! tower middleware as a server layer: [`from_tower`].
//!
//! The tower stack is built once, around an innermost service that runs the rest of the
//! mprpc stack, so middleware that keeps state between calls (`ConcurrencyLimitLayer`'s
//! semaphore, `RateLimitLayer`'s window) works as it does anywhere in tower. Its request is a
//! [`TowerRequest`] (the [`ServerCall`], and the rest of the stack to run), its response the
//! encoded reply. tower's readiness is honoured: a call waits for `poll_ready` (calls take
//! their turn for it one at a time), then runs. Errors come back as a [`Status`]: a
//! `Status` as it is, tower's `Elapsed` (timeout) as `DeadlineExceeded`, `Overloaded`
//! (load shedding) as `ResourceExhausted`, anything else as `Internal`.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower::ServiceExt;

use super::{Layer, Next, ServerCall};
use crate::future::BoxFuture;
use crate::status::from_tower_error as to_status;
use crate::Status;

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
    type Response = Bytes;
    type Error = Status;
    type Future = BoxFuture<Result<Bytes, Status>>;

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
    L::Service: tower::Service<TowerRequest, Response = Bytes> + Send + 'static,
    <L::Service as tower::Service<TowerRequest>>::Error: Into<tower::BoxError>,
    <L::Service as tower::Service<TowerRequest>>::Future: Send + 'static,
{
    FromTower {
        service: Arc::new(tokio::sync::Mutex::new(layer.layer(RestOfStack))),
    }
}

/// The layer [`from_tower`] makes.
pub struct FromTower<S> {
    service: Arc<tokio::sync::Mutex<S>>,
}

impl<S> std::fmt::Debug for FromTower<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FromTower").finish_non_exhaustive()
    }
}

impl<S> Layer for FromTower<S>
where
    S: tower::Service<TowerRequest, Response = Bytes> + Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    fn call(&self, call: ServerCall, next: Next) -> BoxFuture<Result<Bytes, Status>> {
        let service = self.service.clone();
        Box::pin(async move {
            let reply = {
                let mut service = service.lock().await;
                let ready = service.ready().await.map_err(to_status)?;
                ready.call(TowerRequest { call, next })
            };
            reply.await.map_err(to_status)
        })
    }
}
