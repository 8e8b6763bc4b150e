//! One logical call's attempts: the provider the balancer chooses first, then the others in
//! order while a provider cannot be reached, each attempt wrapped by the inner layers.
//!
//! Only a call that provably never reached a provider ([`CallError::NotSent`]: no
//! connection, a connection that closed before the request was written, a `GoAway`, an inner
//! layer's refusal) is tried on another provider; once a request may have run, its outcome
//! is the call's.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::Either;

use super::connection::CallError;
use super::endpoint::Endpoint;
use super::layer::{Attempt, ClientCall};
use super::resilience::outlier::{self, Verdict};
use super::{read, Channel};
use crate::protocol::metadata_to_wire;
use crate::{Code, Metadata, Request, Response, Status};

impl Channel {
    /// Sends the call to a provider of `service`, trying the others while it could not be
    /// sent, until `deadline`.
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn call<'a>(
        &'a self,
        service: &'a str,
        method: &'a str,
        mut request: Request<Bytes>,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Bytes>, Status>> + Send + 'a {
        async move {
            // Finding the providers the first time may outlast the deadline (a registry that
            // cannot be reached): say so, rather than only that no reply came.
            let known = read(&self.inner.services).get(service).cloned();
            let state = match known {
                // The usual case: no timer for a lookup that cannot wait.
                Some(state) => state,
                None => match tokio::time::timeout_at(deadline, self.service(service)).await {
                    Ok(state) => state?,
                    Err(_) => {
                        return Err(Status::deadline_exceeded(format!(
                            "{service}/{method}: the deadline passed while finding providers: {}",
                            self.inner.registry.discovery_stalled(service)
                        )))
                    }
                },
            };
            let (instances, endpoints) = self.endpoints_of(&state);
            if instances.is_empty() {
                return Err(Status::unavailable(format!(
                    "no providers of `{service}` are known"
                )));
            }
            let resilience = &self.inner.resilience;
            let ejects = resilience.ejects();
            if ejects {
                let metrics = &self.inner.metrics;
                let (outliers, config) = (&resilience.outliers, &resilience.outlier);
                outlier::sweep(&endpoints, &state.outliers, outliers, config, metrics);
            }
            let unusable = |e: &Endpoint| {
                e.in_backoff()
                    || (ejects
                        && e.health()
                            .skip(&resilience.outlier, &self.inner.metrics, e.address()))
            };
            let plan = resilience.plan(service, method, request.idempotency());
            let hash_key = request.hash_key().map(str::to_owned);
            let mut metadata = std::mem::take(request.metadata_mut());
            let body = request.into_inner();
            let policy = self.inner.config.load_balance;
            let first = state
                .balancer
                .first(policy, &instances, &endpoints, hash_key.as_deref());
            if let Some(plan) = plan {
                // Usable providers in the balancer's order, then the others.
                let (ready, later): (Vec<usize>, Vec<usize>) = state
                    .balancer
                    .order(policy, first, &instances, hash_key.as_deref())
                    .into_iter()
                    .partition(|i| !unusable(&endpoints[*i]));
                let order = ready.into_iter().chain(later);
                let order = order.map(|i| endpoints[i].clone()).collect();
                // Boxed: the plain call's future stays as small as it was without retries
                // (every byte of it is copied each time it moves).
                let run = self.run_plan(service, method, plan, order, metadata, body, deadline);
                return Box::pin(run).await;
            }
            let attempt = |endpoint: Arc<Endpoint>, metadata: Metadata| {
                self.attempt(endpoint, service, method, metadata, body.clone(), deadline)
            };

            // The balancer's choice first; the full order only if that provider cannot be used.
            let mut last_error = None;
            if !unusable(&endpoints[first]) {
                // With a single provider there is nobody to retry on: no copy of the metadata.
                let first_metadata = if endpoints.len() == 1 {
                    std::mem::take(&mut metadata)
                } else {
                    metadata.clone()
                };
                match attempt(endpoints[first].clone(), first_metadata).await {
                    Ok(reply) => return Ok(reply),
                    Err(CallError::NotSent(status)) => last_error = Some(status),
                    Err(CallError::Failed(status)) => return Err(status),
                }
            }
            let order = state
                .balancer
                .order(policy, first, &instances, hash_key.as_deref());
            // Providers waiting out a reconnect backoff, or ejected, go last.
            let (ready, backing_off): (Vec<usize>, Vec<usize>) = order
                .into_iter()
                .filter(|i| *i != first || last_error.is_none())
                .partition(|i| !unusable(&endpoints[*i]));
            for i in ready.into_iter().chain(backing_off) {
                match attempt(endpoints[i].clone(), metadata.clone()).await {
                    Ok(reply) => return Ok(reply),
                    Err(CallError::NotSent(status)) => last_error = Some(status),
                    Err(CallError::Failed(status)) => return Err(status),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                Status::unavailable(format!("no provider of `{service}` could be reached"))
            }))
        }
    }

    /// One attempt on `endpoint`, through the inner layers if the channel has any. (No async
    /// function of its own: one level fewer in every call's future.)
    pub(super) fn attempt<'a>(
        &'a self,
        endpoint: Arc<Endpoint>,
        service: &'a str,
        method: &'a str,
        metadata: Metadata,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Bytes>, CallError>> + Send + 'a {
        if self.layers.inner.is_empty() {
            return Either::Left(self.send(endpoint, service, method, metadata, body, deadline));
        }
        let mut request = Request::new(body);
        *request.metadata_mut() = metadata;
        let attempt = Attempt::new(self.clone(), endpoint, deadline);
        // Boxed: the plain path's future stays as small as it was without inner layers.
        Either::Right(Box::pin(async move {
            attempt.run(ClientCall::new(service, method, request)).await
        }))
    }

    /// Writes the call on `endpoint`'s connection (opening it if needed) and waits for the
    /// reply.
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn send<'a>(
        &'a self,
        endpoint: Arc<Endpoint>,
        service: &'a str,
        method: &'a str,
        metadata: Metadata,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Bytes>, CallError>> + Send + 'a {
        async move {
            let mut watch = Watch::new(self, &endpoint, deadline);
            let conn = endpoint
                .connection(&self.inner.config, &self.inner.metrics, self.tls()?)
                .await
                .map_err(|status| {
                    watch.verdict = Some(Verdict::Failure);
                    CallError::NotSent(status)
                })?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _in_flight = endpoint.start_call();
            let result = conn
                .call(
                    service,
                    method,
                    metadata_to_wire(metadata),
                    Some(remaining),
                    body,
                )
                .await;
            watch.verdict = Some(match &result {
                Ok(_) => Verdict::Success,
                Err(CallError::NotSent(_)) => Verdict::Neutral,
                Err(CallError::Failed(status)) => match status.code() {
                    Code::Unavailable | Code::DeadlineExceeded => Verdict::Failure,
                    _ => Verdict::Success,
                },
            });
            result
        }
    }
}

/// Records what an attempt says about its provider (outlier detection), also when the
/// attempt is dropped: past the call's deadline that is a timeout, a failure; before it, the
/// caller gave up or another attempt won, which says nothing.
struct Watch<'a> {
    channel: &'a Channel,
    endpoint: &'a Endpoint,
    deadline: tokio::time::Instant,
    verdict: Option<Verdict>,
}

impl<'a> Watch<'a> {
    fn new(channel: &'a Channel, endpoint: &'a Endpoint, deadline: tokio::time::Instant) -> Self {
        Watch {
            channel,
            endpoint,
            deadline,
            verdict: None,
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let resilience = &self.channel.inner.resilience;
        if !resilience.ejects() {
            return;
        }
        let verdict = self.verdict.unwrap_or_else(|| {
            if tokio::time::Instant::now() >= self.deadline {
                Verdict::Failure
            } else {
                Verdict::Neutral
            }
        });
        let health = self.endpoint.health();
        health.record(verdict, &resilience.outlier, &resilience.outliers);
    }
}
