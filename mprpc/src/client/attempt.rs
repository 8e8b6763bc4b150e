//! One logical call's attempts: the provider the balancer chooses first, then the others in
//! order while a provider cannot be reached, each attempt wrapped by the inner layers.
//!
//! Only a call that provably never reached a provider ([`CallError::NotSent`]: no
//! connection, a connection that closed before the request was written, a `GoAway`, a
//! provider's refusal marked `not_run`, an inner layer's refusal) is tried on another
//! provider; once a request may have run, its outcome is the call's.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::Either;

use super::connection::CallError;
use super::endpoint::Endpoint;
use super::layer::{Attempt, ClientCall};
use super::resilience::outlier::{self, Verdict};
use super::{read, Channel};
use crate::{Body, Code, Metadata, Request, Response, Status};

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
        mut request: Request<Body>,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Body>, Status>> + Send + 'a {
        async move {
            let known = read(&self.inner.services).get(service).cloned();
            let state = match known {
                // The usual case: no timer for a lookup that cannot wait.
                Some(state) => state,
                // Boxed: only the first call of a service waits for it.
                None => Box::pin(self.find_service(service, method, deadline)).await?,
            };
            let (instances, endpoints) = self.endpoints_of(&state);
            if instances.is_empty() {
                return Err(Status::unavailable(format!(
                    "no providers of `{service}` are known"
                )));
            }
            let ejects = self.sweep_outliers(&state, &endpoints);
            let unusable = |e: &Endpoint| self.passed_over(e, ejects);
            let (caller, declared) = (request.caller_idempotency(), request.declared_idempotency());
            let resilience = &self.inner.resilience;
            let plan = resilience.plan(service, method, caller, declared);
            let hash_key = request.hash_key().map(str::to_owned);
            let mut metadata = std::mem::take(request.metadata_mut());
            let mut body = request.into_inner();
            let policy = self.inner.config.load_balance;
            let first = state
                .balancer
                .first(policy, &instances, &endpoints, hash_key.as_deref());
            if let Some(plan) = plan {
                let order = state
                    .balancer
                    .order(policy, first, &instances, hash_key.as_deref());
                let order = usable_first(order, |i| unusable(&endpoints[i]));
                let order = order.into_iter().map(|i| endpoints[i].clone()).collect();
                // Boxed: the plain call's future stays small (it is copied each time it moves).
                let run = self.run_plan(service, method, plan, order, metadata, body, deadline);
                return Box::pin(run).await;
            }
            let attempt = |endpoint: Arc<Endpoint>, metadata: Metadata, body: Body| {
                self.attempt(endpoint, service, method, metadata, body, deadline)
            };
            // The balancer's choice first; the full order only if that provider cannot be used.
            let mut last_error = None;
            if !unusable(&endpoints[first]) {
                // With a single provider there is nobody to retry on: no copy of the metadata
                // or of the body (a clone of a body fresh from its `Vec` allocates).
                let (first_metadata, first_body) = if endpoints.len() == 1 {
                    (std::mem::take(&mut metadata), std::mem::take(&mut body))
                } else {
                    (metadata.clone(), body.clone())
                };
                match attempt(endpoints[first].clone(), first_metadata, first_body).await {
                    Ok(reply) => return Ok(reply),
                    Err(CallError::NotSent(status)) => last_error = Some(status),
                    Err(CallError::Failed(status)) => return Err(status),
                }
            }
            let order = state
                .balancer
                .order(policy, first, &instances, hash_key.as_deref());
            let order = order
                .into_iter()
                .filter(|i| *i != first || last_error.is_none());
            for i in usable_first(order, |i| unusable(&endpoints[i])) {
                match attempt(endpoints[i].clone(), metadata.clone(), body.clone()).await {
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

    /// The service's state the first time it is called: finding its providers may outlast
    /// the deadline (a registry that cannot be reached); say so, rather than only that no
    /// reply came.
    async fn find_service(
        &self,
        service: &str,
        method: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<super::ServiceState>, Status> {
        match tokio::time::timeout_at(deadline, self.service(service)).await {
            Ok(state) => state,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{service}/{method}: the deadline passed while finding providers: {}",
                self.inner.registry.discovery_stalled(service)
            ))),
        }
    }

    /// Ejects what outlier detection says must go among the service's providers; returns
    /// whether detection is on.
    fn sweep_outliers(&self, state: &super::ServiceState, endpoints: &[Arc<Endpoint>]) -> bool {
        let resilience = &self.inner.resilience;
        let ejects = resilience.ejects();
        if ejects {
            let metrics = &self.inner.metrics;
            let (outliers, config) = (&resilience.outliers, &resilience.outlier);
            outlier::sweep(endpoints, &state.outliers, outliers, config, metrics);
        }
        ejects
    }

    /// Whether to pass a provider over for now: it waits out a reconnect backoff, or outlier
    /// detection ejected it (`ejects`: detection is on).
    fn passed_over(&self, endpoint: &Endpoint, ejects: bool) -> bool {
        let resilience = &self.inner.resilience;
        endpoint.in_backoff()
            || (ejects
                && endpoint.health().skip(
                    &resilience.outlier,
                    &self.inner.metrics,
                    endpoint.address(),
                ))
    }

    /// One attempt on `endpoint`, through the inner layers if the channel has any. (No async
    /// function of its own: one level fewer in every call's future.)
    pub(super) fn attempt<'a>(
        &'a self,
        endpoint: Arc<Endpoint>,
        service: &'a str,
        method: &'a str,
        metadata: Metadata,
        body: Body,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Body>, CallError>> + Send + 'a {
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
        body: Body,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<Body>, CallError>> + Send + 'a {
        async move {
            let mut watch = Watch::new(self, &endpoint, deadline);
            if endpoint.is_legacy() {
                // A call of its own: the original's protocol keeps no connection.
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                watch.sent_with(remaining, (service, method));
                let _in_flight = endpoint.start_call();
                let call = (service, method);
                let result = Box::pin(super::legacy::call(
                    endpoint.address(),
                    call,
                    body,
                    remaining,
                    &self.inner.config,
                ))
                .await;
                watch.verdict = Some(verdict(&result, &mut watch));
                return result;
            }
            let conn = endpoint
                .connection(&self.inner.config, &self.inner.metrics, self.tls()?)
                .await
                .map_err(|status| {
                    watch.verdict = Some(Verdict::Failure);
                    CallError::NotSent(status)
                })?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            watch.sent_with(remaining, (service, method));
            let _in_flight = endpoint.start_call();
            // Compressed for each attempt, once the provider has said it takes compressed
            // requests (the original's providers, tried above, take only the message).
            let outgoing = self.inner.config.compression.outgoing();
            let (body, encoding) = outgoing.apply(body, conn.provider_accepts());
            let body = (body, encoding, outgoing.accepted());
            let result = conn
                .call(service, method, metadata, Some(remaining), body)
                .await;
            watch.verdict = Some(verdict(&result, &mut watch));
            result
        }
    }
}

/// What an attempt's outcome says about its provider.
fn verdict(result: &Result<Response<Body>, CallError>, watch: &mut Watch<'_>) -> Verdict {
    match result {
        Ok(_) => Verdict::Success,
        Err(CallError::NotSent(_)) => Verdict::Neutral,
        // Its own trouble, not a dependency's that its handler passed on.
        Err(CallError::Failed(s)) if s.is_downstream() => Verdict::Success,
        Err(CallError::Failed(s)) => match s.code() {
            Code::Unavailable => Verdict::Failure,
            Code::DeadlineExceeded => watch.timed_out(),
            _ => Verdict::Success,
        },
    }
}

/// `order`, with the providers to pass over for now (waiting out a reconnect backoff, or
/// ejected) moved to the end: tried only if nothing else is left.
fn usable_first(
    order: impl IntoIterator<Item = usize>,
    unusable: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let (mut ready, later): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|i| !unusable(*i));
    ready.extend(later);
    ready
}

/// Records what an attempt says about its provider (outlier detection), also when the
/// attempt is dropped: past the call's deadline that is a timeout; before it, the caller gave
/// up or another attempt won, which says nothing (`run.rs` counts a hedge's overtaken
/// attempts itself).
///
/// A timeout counts against the provider only when the attempt had the whole budget the
/// channel gives the method: a caller that chose a shorter timeout, or a call made in a
/// handler with little of its caller's budget left, says more about the caller than about the
/// provider, and would otherwise eject healthy providers.
struct Watch<'a> {
    channel: &'a Channel,
    endpoint: &'a Endpoint,
    deadline: tokio::time::Instant,
    /// The attempt had the full budget: its timeout is the provider's failure.
    full_budget: bool,
    verdict: Option<Verdict>,
}

impl<'a> Watch<'a> {
    fn new(channel: &'a Channel, endpoint: &'a Endpoint, deadline: tokio::time::Instant) -> Self {
        Watch {
            channel,
            endpoint,
            deadline,
            full_budget: false,
            verdict: None,
        }
    }

    /// Notes the budget the attempt was sent with (`remaining`), against the channel's for
    /// the method.
    fn sent_with(&mut self, remaining: std::time::Duration, (service, method): (&str, &str)) {
        let inner = &self.channel.inner;
        if inner.resilience.ejects() {
            let budget = inner
                .resilience
                .timeout(service, method)
                .unwrap_or(inner.config.timeout);
            // A little slack for the time between the call's start and this attempt's.
            self.full_budget = remaining >= budget.mul_f64(0.9);
        }
    }

    /// What a timeout of this attempt says about its provider.
    fn timed_out(&self) -> Verdict {
        if self.full_budget {
            Verdict::Failure
        } else {
            Verdict::Neutral
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
                self.timed_out()
            } else {
                Verdict::Neutral
            }
        });
        let health = self.endpoint.health();
        health.record(verdict, &resilience.outlier, &resilience.outliers);
    }
}
