//! [`Intercepted`]: one service with an interceptor of its own, what the generated
//! `XxxServer::with_interceptor` returns (tonic's `InterceptedService`, but async).
//!
//! The interceptor runs inside the provider's layers ([`Server::layer`](super::Server::layer)),
//! just before the service's handler, and only for this service's calls.

use std::future::Future;
use std::sync::Arc;

use super::layer::ServerCall;
use super::service::{BoxFuture, Service};
use crate::{Body, Request, Status};

/// A service whose calls pass an async check first: `F` looks at the call (and may change
/// its metadata and extensions), and an `Err` refuses it with that status.
pub struct Intercepted<S, F> {
    service: Arc<S>,
    interceptor: F,
}

impl<S: Service, F> Intercepted<S, F> {
    /// `service`, with `interceptor` checking each of its calls.
    pub fn new(service: S, interceptor: F) -> Self {
        Intercepted {
            service: Arc::new(service),
            interceptor,
        }
    }
}

impl<S: Service, F> std::fmt::Debug for Intercepted<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intercepted")
            .field("service", &self.service.name())
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut> Service for Intercepted<S, F>
where
    S: Service,
    F: Fn(&mut ServerCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.service.name()
    }

    fn methods(&self) -> &'static [&'static str] {
        self.service.methods()
    }

    fn file_descriptor_set(&self) -> &'static [u8] {
        self.service.file_descriptor_set()
    }

    fn call(&self, method: &str, request: Request<Body>) -> BoxFuture<Result<Body, Status>> {
        let Some(method) = self.methods().iter().copied().find(|m| *m == method) else {
            // Not ours to check: the service answers it (`Unimplemented`).
            return self.service.call(method, request);
        };
        let mut call = ServerCall::new(self.name(), method, request);
        let check = (self.interceptor)(&mut call);
        let service = self.service.clone();
        Box::pin(async move {
            check.await?;
            let (method, request) = call.into_parts();
            service.call(method, request).await
        })
    }
}
