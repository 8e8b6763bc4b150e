//! Layers from closures: [`from_fn`] for a whole layer, [`interceptor`] for a check that
//! runs before the call (and may change its metadata).

use std::future::Future;

use super::{Layer, Next, ServerCall};
use crate::future::BoxFuture;
use crate::{Body, Response, Status};

/// A layer made of an async closure over the call and the rest of the stack.
///
/// ```
/// use mprpc::server::layer::{from_fn, Next, ServerCall};
///
/// let timing = from_fn(|call: ServerCall, next: Next| async move {
///     let started = std::time::Instant::now();
///     let (service, method) = (call.service(), call.method());
///     let outcome = next.run(call).await;
///     tracing::debug!(service, method, elapsed = ?started.elapsed(), ok = outcome.is_ok());
///     outcome
/// });
/// # let _ = timing;
/// ```
pub fn from_fn<F, Fut>(f: F) -> FromFn<F>
where
    F: Fn(ServerCall, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Status>> + Send + 'static,
{
    FromFn(f)
}

/// The layer [`from_fn`] makes.
#[derive(Clone, Copy, Debug)]
pub struct FromFn<F>(F);

impl<F, Fut> Layer for FromFn<F>
where
    F: Fn(ServerCall, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Status>> + Send + 'static,
{
    fn call(&self, call: ServerCall, next: Next) -> BoxFuture<Result<Response<Body>, Status>> {
        Box::pin((self.0)(call, next))
    }
}

/// A check before every call: `f` looks at the call (and may change its metadata), and
/// returns a future that says whether the call goes on. An `Err` refuses the call with that
/// status; the handler never runs.
///
/// ```
/// use mprpc::server::layer::interceptor;
/// use mprpc::Status;
///
/// let auth = interceptor(|call| {
///     let token = call.metadata().get("authorization").map(str::to_owned);
///     async move {
///         match token.as_deref() {
///             Some("Bearer let-me-in") => Ok(()),
///             _ => Err(Status::unauthenticated("a valid token is needed")),
///         }
///     }
/// });
/// # let _ = auth;
/// ```
pub fn interceptor<F, Fut>(f: F) -> Interceptor<F>
where
    F: Fn(&mut ServerCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    Interceptor(f)
}

/// The layer [`interceptor`] makes.
#[derive(Clone, Copy, Debug)]
pub struct Interceptor<F>(F);

impl<F, Fut> Layer for Interceptor<F>
where
    F: Fn(&mut ServerCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    fn call(&self, mut call: ServerCall, next: Next) -> BoxFuture<Result<Response<Body>, Status>> {
        let check = (self.0)(&mut call);
        Box::pin(async move {
            check.await?;
            next.run(call).await
        })
    }
}
