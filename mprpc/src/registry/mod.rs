//! Where providers are registered and found.
//!
//! The [`Registry`] trait is the seam: a provider [`register`](Registry::register)s one
//! [`ServiceInstance`] per service it hosts once it listens, and drops the registration first
//! thing in a graceful shutdown; a consumer [`discover`](Registry::discover)s a service once
//! and then reads a live list of instances from a `watch` channel, which the registry updates
//! as providers come and go. No registry look-up happens per call.
//!
//! - [`StaticRegistry`]: a fixed list from the config file; needs nothing installed.
//! - [`ZkRegistry`]: a ZooKeeper ensemble; providers are ephemeral nodes, consumers watch.
//!
//! [`from_config`] builds the one a config file names.

mod static_list;
pub mod zookeeper;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

pub use static_list::StaticRegistry;
pub use zookeeper::{ZkAccess, ZkRegistry};

use crate::config::RegistryConfig;
use crate::future::BoxFuture;
use crate::metrics::KnownProvider;

/// One provider of one service. In ZooKeeper it is stored as JSON in the provider's node.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServiceInstance {
    /// Fully qualified service name, `package.Service`.
    pub service: String,
    /// Where the provider listens, `host:port`.
    pub address: String,
    /// Relative share of calls for weighted balancers. Default 100.
    pub weight: u32,
    /// The provider's version string (free-form).
    pub version: String,
    /// The methods the provider serves.
    pub methods: Vec<String>,
    /// When the provider registered, in milliseconds since the Unix epoch (0 = unknown).
    pub start_time_ms: u64,
    /// Anything else the provider wants consumers to know.
    pub metadata: BTreeMap<String, String>,
}

/// The metadata key that names the protocol a provider speaks, when it is not mprpc's own.
pub const PROTOCOL_KEY: &str = "protocol";
/// [`PROTOCOL_KEY`]'s value for a provider found in the original C++ mprpc's ZooKeeper
/// layout: it speaks the original's protocol (one connection per call, no streaming).
pub const LEGACY_PROTOCOL: &str = "legacy";

impl ServiceInstance {
    /// Whether the provider speaks the original C++ mprpc's protocol.
    pub fn is_legacy(&self) -> bool {
        self.metadata.get(PROTOCOL_KEY).map(String::as_str) == Some(LEGACY_PROTOCOL)
    }

    /// An instance of `service` at `address`, with default weight and no metadata.
    pub fn new(service: impl Into<String>, address: impl Into<String>) -> ServiceInstance {
        ServiceInstance {
            service: service.into(),
            address: address.into(),
            weight: 100,
            ..ServiceInstance::default()
        }
    }
}

impl From<&ServiceInstance> for KnownProvider {
    fn from(instance: &ServiceInstance) -> KnownProvider {
        KnownProvider::new(instance.address.clone())
    }
}

/// The live list of a service's instances, as a consumer sees it.
pub type Instances = watch::Receiver<Arc<Vec<ServiceInstance>>>;

/// Why the registry could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry has never heard of the service.
    #[error("service `{0}` is not in the registry")]
    UnknownService(String),
    /// The registry could not be reached or answered with an error.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The registry's configuration is wrong.
    #[error("registry misconfigured: {0}")]
    Config(String),
    /// The registry refused: this process may not do it, or what it would rely on is open to
    /// anyone (a protected ZooKeeper registry).
    #[error("registry refused: {0}")]
    Denied(String),
}

/// A registration held by a provider; dropping it without calling
/// [`deregister`](Registration::deregister) leaves cleanup to the registry (e.g. session expiry).
pub trait Registration: Send + Sync {
    /// Removes the instance from the registry.
    fn deregister(self: Box<Self>) -> BoxFuture<Result<(), RegistryError>>;
}

/// A place where providers are registered and found.
pub trait Registry: Send + Sync + 'static {
    /// Publishes one instance; it stays published until the returned handle is deregistered
    /// (or, for registries with sessions, the process dies).
    fn register(
        &self,
        instance: ServiceInstance,
    ) -> BoxFuture<Result<Box<dyn Registration>, RegistryError>>;

    /// Starts following a service: the receiver always holds the current instances.
    fn discover(&self, service: &str) -> BoxFuture<Result<Instances, RegistryError>>;

    /// Why a [`discover`](Registry::discover) of `service` that has not finished is still
    /// waiting, in words for the error of a call whose deadline passed meanwhile; e.g. "the
    /// registry at 10.0.0.1:2181 could not be reached: ...".
    fn discovery_stalled(&self, service: &str) -> String {
        format!("the registry has not listed the providers of `{service}` yet")
    }

    /// Every service the registry knows of, sorted (for tools).
    fn services(&self) -> BoxFuture<Result<Vec<String>, RegistryError>>;

    /// The registry's connection state in a word: `static`, `connected`, `disconnected` or
    /// `connecting` (for the admin page and metrics).
    fn state(&self) -> &'static str {
        "static"
    }
}

/// Builds the registry a config file asks for.
pub fn from_config(config: &RegistryConfig) -> Result<Arc<dyn Registry>, RegistryError> {
    match config {
        RegistryConfig::Static { services } => Ok(Arc::new(StaticRegistry::new(services.clone()))),
        RegistryConfig::Zookeeper {
            connect,
            root,
            session_timeout,
            access,
            legacy_layout,
        } => Ok(Arc::new(
            ZkRegistry::with_access(
                connect.clone(),
                root.clone(),
                *session_timeout,
                ZkAccess::from_config(access)?,
            )?
            .with_legacy_layout(*legacy_layout),
        )),
    }
}
