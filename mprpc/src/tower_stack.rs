//! A tower middleware stack shared by the provider's and the channel's `from_tower` layers.
//!
//! The stack is built once and kept behind an async mutex, so middleware that keeps state
//! between calls (a concurrency limit's semaphore, a rate limit's window) works as anywhere in
//! tower. Each call takes its turn for `poll_ready`, then runs; errors come back as a
//! [`Status`].

use std::sync::Arc;

use tower::ServiceExt;

use crate::Status;

/// A built tower stack, shared by every call of a layer.
pub(crate) struct TowerStack<S> {
    service: Arc<tokio::sync::Mutex<S>>,
}

impl<S> std::fmt::Debug for TowerStack<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerStack").finish_non_exhaustive()
    }
}

impl<S> TowerStack<S> {
    pub(crate) fn new(service: S) -> Self {
        TowerStack {
            service: Arc::new(tokio::sync::Mutex::new(service)),
        }
    }

    /// Waits for the stack to be ready, hands it `request`, and waits for the reply; owns
    /// what it needs, so the future borrows nothing.
    pub(crate) fn call<R, T>(
        &self,
        request: R,
    ) -> impl std::future::Future<Output = Result<T, Status>> + Send + 'static
    where
        R: Send + 'static,
        S: tower::Service<R, Response = T> + Send + 'static,
        S::Error: Into<tower::BoxError>,
        S::Future: Send + 'static,
    {
        let service = self.service.clone();
        async move {
            let reply = {
                let mut service = service.lock().await;
                let ready = service.ready().await.map_err(to_status)?;
                ready.call(request)
            };
            reply.await.map_err(to_status)
        }
    }
}

/// The status for an error out of a tower stack.
fn to_status(error: impl Into<tower::BoxError>) -> Status {
    let error = error.into();
    match error.downcast::<Status>() {
        Ok(status) => *status,
        Err(error) if error.is::<tower::timeout::error::Elapsed>() => {
            Status::deadline_exceeded(format!("a tower timeout elapsed: {error}"))
        }
        Err(error) if error.is::<tower::load_shed::error::Overloaded>() => {
            Status::resource_exhausted(format!("the provider shed the call: {error}"))
        }
        Err(error) => Status::internal(format!("tower middleware failed: {error}")),
    }
}
