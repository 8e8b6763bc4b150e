//! Client layers from closures: [`from_fn`] for a whole layer, [`interceptor`] for a step
//! before each call (add a token, refuse a call).

use std::future::Future;

use super::{ClientCall, Layer, LayerFuture, Next};
use crate::Status;

/// A layer made of a closure over the call and the rest of the stack, returning the future
/// that runs them.
///
/// ```
/// use mprpc::client::layer::{from_fn, ClientCall, Next};
///
/// // Try a call once more if the first attempt found no provider ready.
/// let retry_once = from_fn(|call: ClientCall<'_>, next: Next<'_>| {
///     Box::pin(async move {
///         match next.run(call.clone()).await {
///             Err(status) if status.code() == mprpc::Code::Unavailable => next.run(call).await,
///             other => other,
///         }
///     })
/// });
/// # let _ = retry_once;
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F>
where
    F: for<'a> Fn(ClientCall<'a>, Next<'a>) -> LayerFuture<'a> + Send + Sync + 'static,
{
    FromFn(f)
}

/// The layer [`from_fn`] makes.
#[derive(Clone, Copy, Debug)]
pub struct FromFn<F>(F);

impl<F> Layer for FromFn<F>
where
    F: for<'a> Fn(ClientCall<'a>, Next<'a>) -> LayerFuture<'a> + Send + Sync + 'static,
{
    fn call<'a>(&'a self, call: ClientCall<'a>, next: Next<'a>) -> LayerFuture<'a> {
        (self.0)(call, next)
    }
}

/// A step before every call: `f` sees the call (and may change its metadata) and returns a
/// future that says whether it goes on. An `Err` fails the call with that status, and nothing
/// is sent.
///
/// ```
/// use mprpc::client::layer::interceptor;
///
/// let token = std::sync::Arc::new(String::from("Bearer let-me-in"));
/// let auth = interceptor(move |call| {
///     call.metadata_mut().insert("authorization", token.as_str());
///     async { Ok(()) }
/// });
/// # let _ = auth;
/// ```
pub fn interceptor<F, Fut>(f: F) -> Interceptor<F>
where
    F: Fn(&mut ClientCall<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    Interceptor(f)
}

/// The layer [`interceptor`] makes.
#[derive(Clone, Copy, Debug)]
pub struct Interceptor<F>(F);

impl<F, Fut> Layer for Interceptor<F>
where
    F: Fn(&mut ClientCall<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    fn call<'a>(&'a self, mut call: ClientCall<'a>, next: Next<'a>) -> LayerFuture<'a> {
        let check = (self.0)(&mut call);
        Box::pin(async move {
            check.await?;
            next.run(call).await
        })
    }
}
