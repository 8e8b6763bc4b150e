//! The provider: hosts services on a TCP listener.
//!
//! [`Server::serve`] accepts connections (at most `max_connections`, backing off on accept
//! errors), and runs each on its own task ([`connection`]). Each call runs on a task of its
//! own, so a slow method never holds up other calls on the same connection, and replies go
//! out in whatever order calls finish. At most `max_concurrent_calls` run at once across the
//! provider; one more is refused with `ResourceExhausted` at once rather than queued. With
//! `[server.adaptive_limit]`, a lower limit that follows the latency sheds calls the same
//! way when the provider is overloaded (see [`layer`]).
//!
//! Shutdown is graceful: when the shutdown future resolves the provider leaves the registry,
//! stops accepting, tells every connection (a `GoAway` frame), answers every call in flight,
//! and closes, giving up after `shutdown_grace`.
//!
//! - [`service`]: the [`Service`] trait generated adapters implement;
//! - [`dispatch`]: the service table and the running of one call;
//! - [`layer`]: what wraps every call ([`Server::layer`]);
//! - [`connection`]: one connection's read loop, and admitting its calls;
//! - [`complaints`]: rate-limited warnings about misbehaving peers;
//! - `reflection`: the built-in service that lists what the provider hosts;
//! - [`shutdown`]: waiting for SIGINT/SIGTERM.

mod complaints;
mod connection;
mod dispatch;
mod intercepted;
pub mod layer;
mod local;
mod reflection;
mod reply;
mod service;
pub mod shutdown;
mod transport;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use dispatch::Router;
pub use intercepted::Intercepted;
use layer::stack::Stack;
use layer::{AdaptiveLimit, Admission, Layer};
pub use local::{spawn_local, spawn_local_registered, LocalServer};
pub use reply::reply_metadata;
pub use service::{BoxFuture, Service};

use self::reflection::Reflection;
use crate::admin::{self, AdminGuard, AdminState};
use crate::auth::Auth;
use crate::config::{parse_hash, ServerConfig};
use crate::metrics::Metrics;
use crate::reflection::ServiceInfo;
use crate::registry::{Registration, Registry, RegistryError, ServiceInstance};
use crate::tls::Acceptor;
use transport::{Opened, Protocol};

/// A provider: a set of services and the settings to serve them with.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    router: Router,
    metrics: Metrics,
    /// A listener for the admin pages, bound by the caller (else `admin_address` is bound).
    admin: Option<TcpListener>,
    /// What wraps every call, outermost first.
    layers: layer::Layers,
}

/// Why serving stopped with an error.
///
/// The message includes the reason (the address that could not be bound, what the registry
/// said), so there is no separate `source`: printed with its causes, each fact shows once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding or accepting failed; the message names the address.
    #[error("{0}")]
    Io(io::Error),
    /// Registering with the registry failed.
    #[error("could not register with the registry: {0}")]
    Registry(RegistryError),
}

impl From<io::Error> for ServeError {
    fn from(error: io::Error) -> ServeError {
        ServeError::Io(error)
    }
}

impl From<RegistryError> for ServeError {
    fn from(error: RegistryError) -> ServeError {
        ServeError::Registry(error)
    }
}

impl Server {
    /// A provider with the given settings and no services yet.
    pub fn new(config: ServerConfig) -> Server {
        Server {
            config,
            router: Router::default(),
            layers: layer::Layers::default(),
            metrics: Metrics::global().clone(),
            admin: None,
        }
    }

    /// Serves the admin pages on `listener` (overriding `admin_address`).
    pub fn with_admin_listener(mut self, listener: TcpListener) -> Server {
        self.admin = Some(listener);
        self
    }

    /// Counts calls into `metrics` instead of the process-wide [`Metrics::global`].
    pub fn with_metrics(mut self, metrics: Metrics) -> Server {
        self.metrics = metrics;
        self
    }

    /// Adds a service (usually a generated `XxxServer::new(impl)`).
    ///
    /// # Panics
    /// If a service of the same name was added already: that is a bug in the program, found
    /// at start-up.
    pub fn add_service(mut self, service: impl Service) -> Server {
        self.router.add(Arc::new(service));
        self
    }

    /// Wraps every call this provider serves (every service, the built-in reflection
    /// service included) in `layer`. Layers run outermost first, in the order they are added;
    /// see [`layer`] for where they sit among the provider's own checks.
    pub fn layer(mut self, layer: impl Layer) -> Server {
        self.layers.0.push(Arc::new(layer));
        self
    }

    /// The services added so far.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> io::Result<TcpListener> {
        TcpListener::bind(&self.config.address).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", self.config.address),
            )
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve_inner(listener, shutdown, None).await
    }

    async fn serve_inner(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        registry: Option<Arc<dyn Registry>>,
    ) -> io::Result<()> {
        let local = listener.local_addr()?;
        let mut router = std::mem::take(&mut self.router);
        router.add(Arc::new(Reflection::new(&router)));
        // The TLS files are read now (a bad one stops the start) and watched until we stop.
        let tls_stop = CancellationToken::new();
        let tls = match &self.config.tls {
            Some(settings) => Some(transport::ServerTls {
                acceptor: Acceptor::start_offering(
                    settings,
                    transport::alpn_protocols(
                        self.config.protocols.http,
                        self.config.protocols.grpc,
                    ),
                    tls_stop.clone(),
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
                mode: settings.mode,
                handshake_timeout: settings.handshake_timeout,
            }),
            None => None,
        };
        let _stop_tls = tls_stop.drop_guard();
        let admin_stop = CancellationToken::new();
        self.start_admin(&router, registry, local, tls.as_ref(), admin_stop.clone())
            .await?;
        let _stop_admin = admin_stop.drop_guard();
        let shared = Arc::new(Shared {
            stack: Arc::new(Stack {
                max_message: self.config.max_frame_size,
                admission: Admission::new(
                    self.config.max_concurrent_calls,
                    self.config.max_calls_per_connection,
                ),
                adaptive: self
                    .config
                    .adaptive_limit
                    .as_ref()
                    .filter(|adaptive| adaptive.enabled)
                    .map(|adaptive| AdaptiveLimit::new(adaptive, &self.metrics)),
                auth: match &self.config.auth {
                    Some(auth) => Some(
                        Auth::new(auth)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                    ),
                    None => None,
                },
                metrics: self.metrics.clone(),
                layers: self.layers.0.into(),
            }),
            config: self.config,
            router,
            metrics: self.metrics,
            complaints: complaints::Complaints::default(),
            tls,
            descriptors: connection::Descriptors::default(),
        });
        let (notify_shutdown, _) = watch::channel(false);
        let force_close = CancellationToken::new();
        let connections = TaskTracker::new();
        let conn_limit = Arc::new(Semaphore::new(shared.config.max_connections));
        tracing::info!(%local, services = ?shared.router.names(), "provider listening");

        tokio::select! {
            res = accept_loop(&listener, &shared, &notify_shutdown, &force_close, &connections, &conn_limit) => res?,
            () = shutdown => {}
        }
        drop(listener);
        drain(&shared, &notify_shutdown, &force_close, &connections).await;
        tracing::info!("provider stopped");
        Ok(())
    }

    /// Starts the admin pages, on the listener given or at `admin_address`, if either is
    /// set; they stop when `stop` is cancelled.
    async fn start_admin(
        &mut self,
        router: &Router,
        registry: Option<Arc<dyn Registry>>,
        local: SocketAddr,
        tls: Option<&transport::ServerTls>,
        stop: CancellationToken,
    ) -> io::Result<()> {
        let admin_listener = match (self.admin.take(), &self.config.admin_address) {
            (Some(listener), _) => listener,
            (None, Some(address)) => TcpListener::bind(address).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot serve the admin pages on {address}: {e}"),
                )
            })?,
            (None, None) => return Ok(()),
        };
        let state = Arc::new(AdminState {
            metrics: self.metrics.clone(),
            services: router
                .services()
                .map(|s| ServiceInfo {
                    name: s.name().to_owned(),
                    methods: s.methods().iter().map(|m| (*m).to_owned()).collect(),
                })
                .collect(),
            registry,
            rpc_address: local.to_string(),
        });
        tracing::info!(address = %admin_listener.local_addr()?, "admin pages listening");
        let stop = stop.cancelled_owned();
        let guard = AdminGuard {
            token_hash: self.config.admin_token.as_deref().and_then(parse_hash),
            tls: tls
                .filter(|_| self.config.admin_tls)
                .map(|tls| tls.acceptor.clone()),
        };
        tokio::spawn(async move {
            if let Err(e) = admin::serve_guarded(admin_listener, state, guard, stop).await {
                tracing::warn!("admin pages stopped: {e}");
            }
        });
        Ok(())
    }

    /// Registers every service with `registry` under the listener's address (or
    /// `advertise_address`), serves until `shutdown` resolves, and deregisters first thing
    /// when it does, so that consumers stop sending before the connections drain.
    pub async fn serve_with_registry(
        self,
        listener: TcpListener,
        registry: Arc<dyn Registry>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let address = match &self.config.advertise_address {
            Some(a) => a.clone(),
            None => advertised(listener.local_addr()?),
        };
        let mut registrations: Vec<Box<dyn Registration>> = Vec::new();
        for service in self.router.services() {
            let mut instance = ServiceInstance::new(service.name(), address.clone());
            instance.methods = service.methods().iter().map(|m| (*m).to_owned()).collect();
            instance.version = env!("CARGO_PKG_VERSION").to_owned();
            instance.weight = self.config.weight;
            instance.start_time_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            registrations.push(registry.register(instance).await?);
        }
        let shutdown = async move {
            shutdown.await;
            for registration in registrations {
                if let Err(e) = registration.deregister().await {
                    tracing::warn!("deregistering failed: {e}");
                }
            }
        };
        self.serve_inner(listener, shutdown, Some(registry)).await?;
        Ok(())
    }
}

/// The address to publish for a listener: an unspecified IP (`0.0.0.0`) is replaced by
/// loopback, since it cannot be dialled.
fn advertised(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        let ip: std::net::IpAddr = if local.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, local.port()).to_string()
    } else {
        local.to_string()
    }
}

/// What every connection of one provider shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) router: Router,
    /// What every call runs through: the built-in layers, the user's, the handler.
    pub(crate) stack: Arc<Stack>,
    pub(crate) metrics: Metrics,
    pub(crate) complaints: complaints::Complaints,
    /// TLS on the port, if configured.
    pub(crate) tls: Option<transport::ServerTls>,
    /// The hosted services' descriptors, for HTTP/JSON callers.
    pub(crate) descriptors: connection::Descriptors,
}

/// Graceful shutdown once the listener is closed: tells every connection to drain, waits
/// up to `shutdown_grace` for their calls, then closes what is left.
async fn drain(
    shared: &Shared,
    notify_shutdown: &watch::Sender<bool>,
    force_close: &CancellationToken,
    connections: &TaskTracker,
) {
    let in_flight = shared.stack.admission.in_flight();
    tracing::info!(
        connections = connections.len(),
        in_flight,
        "provider shutting down"
    );
    let _ = notify_shutdown.send(true);
    connections.close();
    if tokio::time::timeout(shared.config.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?shared.config.shutdown_grace,
            "calls still in flight after the shutdown grace period; closing anyway"
        );
        force_close.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), connections.wait()).await;
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    notify_shutdown: &watch::Sender<bool>,
    force_close: &CancellationToken,
    connections: &TaskTracker,
    conn_limit: &Arc<Semaphore>,
) -> io::Result<()> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(1);
                accepted
            }
            Err(e) if is_fatal_accept_error(&e) => {
                let on = listener
                    .local_addr()
                    .map_or_else(|_| "the listener".to_owned(), |a| a.to_string());
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot accept connections on {on}: {e}"),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then try again.
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = conn_limit.clone().try_acquire_owned() else {
            shared.metrics.protocol_error("max_connections");
            shared
                .complaints
                .warn("max_connections", peer, &"max_connections reached");
            connections.spawn(transport::refuse_over_limit(
                stream,
                shared.config.max_connections,
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = connection::Connection::new(
            peer,
            stream.local_addr().ok(),
            shared.clone(),
            notify_shutdown.subscribe(),
            force_close.clone(),
        );
        let shared = shared.clone();
        connections.spawn(async move {
            let detection = transport::Detection {
                tls: shared.tls.as_ref(),
                legacy: shared.config.protocols.legacy,
                http: shared.config.protocols.http,
                grpc: shared.config.protocols.grpc,
                first_bytes_timeout: shared.config.idle_timeout,
            };
            match transport::open(stream, detection).await {
                Ok(Opened::Plain(Protocol::Mprpc, stream)) => conn.run_tcp(stream).await,
                Ok(Opened::Plain(protocol, stream)) => conn.run_protocol(protocol, stream).await,
                Ok(Opened::Tls(protocol, stream, identity)) => {
                    conn.with_identity(identity)
                        .run_protocol(protocol, *stream)
                        .await
                }
                Err(refused) => {
                    shared.metrics.protocol_error(refused.kind);
                    shared.complaints.warn(refused.kind, peer, &refused.status);
                }
            }
            drop(permit);
        });
    }
}

fn is_fatal_accept_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::InvalidInput)
}
