//! The consumer: a [`Channel`] that finds providers and carries calls to them.
//!
//! A channel follows each service it calls through the [`Registry`] (one discovery per
//! service, then live updates), keeps one multiplexed connection per provider address
//! ([`connection`]), and spreads calls over the providers of a service by the configured
//! [`LoadBalance`](crate::config::LoadBalance) policy (`balance`): round robin, weighted
//! random, consistent hash or least loaded. A call that could not be written to its
//! provider's connection is tried on the next provider (`attempt`).
//! Every call has a time budget (the config's `timeout`, or the request's own), which is also
//! sent to the provider so that it abandons work nobody waits for any more.
//!
//! A call goes through the channel's [`layer`]s: the user's outer layers, the built-ins
//! (tracing, metrics, deadline), the balancer, and the user's inner layers around each
//! attempt; `layer/stack.rs` lists the order.
//!
//! [`BlockingChannel`] wraps a channel and its own runtime for synchronous callers, and
//! [`reflection`] asks a provider what it hosts.

mod attempt;
mod balance;
mod blocking;
mod connection;
mod endpoint;
pub mod layer;
mod legacy;
pub mod reflection;
mod resilience;
mod stream;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use std::future::Future;

use bytes::Bytes;
use futures_util::future::Either;
use prost::Message;

use self::balance::Balancer;
pub use self::blocking::{BlockingChannel, BlockingStreaming};
use self::connection::CallError;
/// One connection to a provider, for the provider's gRPC front end, which runs gRPC's
/// streaming calls over one in-process (`connection/bridge.rs`).
pub(crate) use self::connection::Connection as ProviderConnection;
use self::endpoint::Endpoint;
use crate::auth::BearerToken;
use crate::config::{ClientConfig, Config};
use crate::hash::NameMap;
use crate::metrics::Metrics;
use crate::registry::{self, Instances, Registry, RegistryError, ServiceInstance, StaticRegistry};
use crate::tls::Connector;
use crate::{Body, Request, Response, Status};

/// A consumer's handle for calling services. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
    /// This handle's layers, outermost first (clones of a channel share its connections,
    /// not necessarily its layers).
    layers: layer::Layers,
}

struct Inner {
    config: ClientConfig,
    /// TLS to the providers, made from `config.tls` when the channel is made; a failure is
    /// every call's answer.
    tls: Result<Option<Connector>, Status>,
    /// The bearer token sent with every call, read from `config.auth` when the channel is
    /// made; a failure is every call's answer.
    token: Result<Option<BearerToken>, Status>,
    metrics: Metrics,
    /// Retries, hedging, their budget, and outlier ejection.
    resilience: resilience::Resilience,
    registry: Arc<dyn Registry>,
    services: RwLock<NameMap<String, Arc<ServiceState>>>,
    endpoints: Mutex<NameMap<String, Arc<Endpoint>>>,
}

struct ServiceState {
    instances: Instances,
    balancer: Balancer,
    /// The endpoints of the instance list they were built for.
    endpoints: Mutex<Option<EndpointCache>>,
    /// Its providers' outlier sweeps.
    outliers: resilience::outlier::ServiceOutliers,
}

type EndpointCache = (Arc<Vec<ServiceInstance>>, Arc<[Arc<Endpoint>]>);

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel that finds providers through `registry`.
    pub fn new(config: ClientConfig, registry: Arc<dyn Registry>) -> Channel {
        Channel::with_metrics(config, registry, Metrics::global().clone())
    }

    /// Like [`Channel::new`], counting calls into `metrics` instead of [`Metrics::global`].
    pub fn with_metrics(
        config: ClientConfig,
        registry: Arc<dyn Registry>,
        metrics: Metrics,
    ) -> Channel {
        Channel {
            layers: layer::Layers::default(),
            inner: Arc::new(Inner {
                tls: match &config.tls {
                    Some(settings) => Connector::new(settings)
                        .map(Some)
                        .map_err(|e| Status::failed_precondition(e.to_string())),
                    None => Ok(None),
                },
                token: match &config.auth {
                    Some(auth) => BearerToken::new(auth)
                        .map(Some)
                        .map_err(|e| Status::failed_precondition(e.to_string())),
                    None => Ok(None),
                },
                resilience: resilience::Resilience::new(&config),
                config,
                metrics,
                registry,
                services: RwLock::default(),
                endpoints: Mutex::default(),
            }),
        }
    }

    /// A channel with the client settings and registry of a config file.
    pub fn from_config(config: &Config) -> Result<Channel, RegistryError> {
        let registry = registry::from_config(&config.registry)?;
        Ok(Channel::new(config.client.clone(), registry))
    }

    /// A channel that sends every service to one provider address, with default settings.
    pub fn to_address(address: impl Into<String>) -> Channel {
        Channel::to_addresses(vec![address.into()], ClientConfig::default())
    }

    /// A channel that sends every service to the given provider addresses.
    pub fn to_addresses(addresses: Vec<String>, config: ClientConfig) -> Channel {
        Channel::new(config, Arc::new(StaticRegistry::any(addresses)))
    }

    /// The client settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The TLS connector, if the channel uses TLS, or why its settings could not be used.
    fn tls(&self) -> Result<Option<&Connector>, CallError> {
        match &self.inner.tls {
            Ok(tls) => Ok(tls.as_ref()),
            Err(status) => Err(CallError::NotSent(status.clone())),
        }
    }

    /// The TLS connector, as a call's status on failure.
    fn tls_settings(&self) -> Result<Option<&Connector>, Status> {
        self.tls().map_err(|e| match e {
            CallError::NotSent(status) | CallError::Failed(status) => status,
        })
    }

    /// Calls `service`/`method` with a typed request and decodes the typed reply.
    pub fn unary<'a, Req, Resp>(
        &'a self,
        service: &'a str,
        method: &'a str,
        request: Request<Req>,
    ) -> impl Future<Output = Result<Resp, Status>> + Send + 'a
    where
        Req: Message,
        Resp: Message + Default,
    {
        // Encoded before the future: it holds bytes, whatever the message type.
        let request = request.map(|m| crate::protocol::encode::encode(&m));
        async move {
            let reply = self
                .unary_raw_with_metadata(service, method, request)
                .await?;
            decode_reply(service, method, reply.into_inner())
        }
    }

    /// [`unary`](Channel::unary), returning the reply with the response metadata the
    /// provider sent (a failure's metadata is in its [`Status::metadata`]).
    pub fn unary_with_metadata<'a, Req, Resp>(
        &'a self,
        service: &'a str,
        method: &'a str,
        request: Request<Req>,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send + 'a
    where
        Req: Message,
        Resp: Message + Default,
    {
        // Encoded before the future: it holds bytes, whatever the message type.
        let request = request.map(|m| crate::protocol::encode::encode(&m));
        async move {
            let (metadata, body) = self
                .unary_raw_with_metadata(service, method, request)
                .await?
                .into_parts();
            Ok(Response::from_parts(
                metadata,
                decode_reply(service, method, body)?,
            ))
        }
    }

    /// This channel's connections with `layer` wrapping every call made through the returned
    /// handle, outside the balancer: it sees one logical call. Layers run outermost first in
    /// the order they were added, so `layer` runs inside those the handle has already; see
    /// [`layer`] for where layers sit.
    pub fn layer(mut self, layer: impl layer::Layer) -> Channel {
        self.layers = self.layers.with(Arc::new(layer), false);
        self
    }

    /// This channel's connections with `layer` wrapping every *attempt* on a provider the
    /// balancer chose (see [`layer`]): it runs inside the outer layers and the deadline,
    /// once per provider tried, and [`ClientCall::provider`](layer::ClientCall::provider)
    /// names the provider.
    pub fn layer_inner(mut self, layer: impl layer::Layer) -> Channel {
        self.layers = self.layers.with(Arc::new(layer), true);
        self
    }

    /// Calls `service`/`method` with an encoded request (a [`Body`], or anything that
    /// becomes one: `Bytes`, `Vec<u8>`) and returns the encoded reply.
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub fn unary_raw<'a>(
        &'a self,
        service: &'a str,
        method: &'a str,
        request: Request<impl Into<Body>>,
    ) -> impl Future<Output = Result<Bytes, Status>> + Send + 'a {
        let request = request.map(Into::into);
        async move {
            let reply = self
                .unary_raw_with_metadata(service, method, request)
                .await?;
            Ok(reply.into_inner().into_bytes())
        }
    }

    /// [`unary_raw`](Channel::unary_raw), returning the response metadata too (the reply's
    /// body read from the wire is always one buffer: [`Body::into_bytes`] does not copy it).
    pub fn unary_raw_with_metadata<'a>(
        &'a self,
        service: &'a str,
        method: &'a str,
        request: Request<impl Into<Body>>,
    ) -> impl Future<Output = Result<Response<Body>, Status>> + Send + 'a {
        let request = request.map(Into::into);
        // No async function of its own: one level fewer in every call's future.
        if self.layers.outer.is_empty() {
            return Either::Left(self.unary_unlayered(service, method, request));
        }
        Either::Right(layer::Next::new(self).run(layer::ClientCall::new(service, method, request)))
    }

    /// The service's current instances and their endpoints, rebuilt only when the list
    /// changed.
    fn endpoints_of(
        &self,
        state: &ServiceState,
    ) -> (Arc<Vec<ServiceInstance>>, Arc<[Arc<Endpoint>]>) {
        let instances = state.instances.borrow().clone();
        let mut cache = state
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((list, endpoints)) = cache.as_ref() {
            if Arc::ptr_eq(list, &instances) {
                return (instances, endpoints.clone());
            }
        }
        let endpoints: Arc<[Arc<Endpoint>]> = instances.iter().map(|i| self.endpoint(i)).collect();
        *cache = Some((instances.clone(), endpoints.clone()));
        (instances, endpoints)
    }

    async fn service(&self, service: &str) -> Result<Arc<ServiceState>, Status> {
        if let Some(state) = read(&self.inner.services).get(service) {
            return Ok(state.clone());
        }
        let instances = self
            .inner
            .registry
            .discover(service)
            .await
            .map_err(|e| match e {
                RegistryError::UnknownService(_) => Status::unavailable(e.to_string()),
                other => {
                    Status::unavailable(format!("cannot find providers of `{service}`: {other}"))
                }
            })?;
        let mut services = self
            .inner
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let state = services
            .entry(service.to_owned())
            .or_insert_with(|| {
                self.inner
                    .metrics
                    .set_providers(service, instances.borrow().iter());
                tokio::spawn(prune_on_change(
                    Arc::downgrade(&self.inner),
                    service.to_owned(),
                    instances.clone(),
                ));
                Arc::new(ServiceState {
                    instances,
                    balancer: Balancer::default(),
                    endpoints: Mutex::default(),
                    outliers: Default::default(),
                })
            })
            .clone();
        Ok(state)
    }

    fn endpoint(&self, instance: &ServiceInstance) -> Arc<Endpoint> {
        let mut endpoints = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = endpoint_key(instance);
        if let Some(e) = endpoints.get(&key) {
            return e.clone();
        }
        let e = Arc::new(Endpoint::new(
            instance.address.clone(),
            instance.is_legacy(),
        ));
        endpoints.insert(key, e.clone());
        e
    }
}

/// The key of a provider's endpoint: its address, marked for a provider of the original
/// C++ mprpc's protocol (the same address may be both, in two lists).
fn endpoint_key(instance: &ServiceInstance) -> String {
    if instance.is_legacy() {
        format!("legacy:{}", instance.address)
    } else {
        instance.address.clone()
    }
}

/// Decodes a reply message.
fn decode_reply<Resp: Message + Default>(
    service: &str,
    method: &str,
    body: Body,
) -> Result<Resp, Status> {
    Resp::decode(body.into_bytes()).map_err(|e| {
        Status::internal(format!(
            "cannot decode the reply of {service}/{method}: {e}"
        ))
    })
}

/// Closes connections to providers that left every followed service's list.
async fn prune_on_change(inner: Weak<Inner>, service: String, mut instances: Instances) {
    while instances.changed().await.is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        inner
            .metrics
            .set_providers(&service, instances.borrow_and_update().iter());
        let known: HashSet<String> = read(&inner.services)
            .values()
            .flat_map(|s| {
                s.instances
                    .borrow()
                    .iter()
                    .map(endpoint_key)
                    .collect::<Vec<_>>()
            })
            .chain(instances.borrow().iter().map(endpoint_key))
            .collect();
        let mut endpoints = inner
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints.retain(|address, _| {
            let keep = known.contains(address);
            if !keep {
                tracing::debug!(%address, "provider left the registry; dropping its connection");
            }
            keep
        });
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}
