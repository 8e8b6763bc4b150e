//! The ZooKeeper registry.
//!
//! Layout (documented in `docs/REGISTRY.md`):
//!
//! ```text
//! {root}                                   persistent, e.g. /mprpc
//! {root}/{service}                         persistent, e.g. /mprpc/fixbug.UserServiceRpc
//! {root}/{service}/providers               persistent
//! {root}/{service}/providers/{host:port}   EPHEMERAL, data = the ServiceInstance as JSON
//! ```
//!
//! With the original C++ mprpc's layout too ([`ZkRegistry::with_legacy_layout`]), a provider
//! also keeps `/{Service}/{Method}` (the service's unqualified name, at the ensemble's root):
//! EPHEMERAL, data = `host:port`, one node per method shared by every provider of it (the
//! original's layout has room for one; a node held by another live provider is left to it,
//! and taken when it goes). Its consumers then find providers in either layout
//! ([`legacy`]).
//!
//! One ZooKeeper session per [`ZkRegistry`], shared by everything the process registers and
//! watches, on a thread of the registry's own ([`session`]). Providers' nodes are kept true by
//! a supervisor that re-creates them after a session expiry (replacing a node left by a dead
//! session of ours), after a reconnect, and when someone deletes them ([`session`]); what a
//! registration hands it is in `registration.rs`.
//! Consumers follow each service with a persistent recursive watch, re-armed after every
//! reconnect to work around a defect of the client crate, merge bursts of changes, and refuse
//! to apply a sudden empty or mostly-empty list until a second look confirms it ([`follow`]);
//! the list is read, and provider nodes vetted, by [`listing`].
//!
//! With an identity, the session authenticates (ZooKeeper's `digest` scheme) and the nodes it
//! makes are writable by that identity only; a protected registry trusts no node that anyone
//! may change ([`access`]).

mod access;
mod follow;
mod legacy;
mod listing;
mod registration;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Instances, Registration, Registry, RegistryError, ServiceInstance};
use crate::future::BoxFuture;
use crate::sync::lock;
pub use access::{digest_id, ZkAccess};
use follow::Listed;
use session::{Command, Session, Settings};

/// How long registering may wait for ZooKeeper before failing.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// A registry kept in a ZooKeeper ensemble.
#[derive(Clone)]
pub struct ZkRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    connect: String,
    root: String,
    session_timeout: Duration,
    access: ZkAccess,
    /// Whether providers also keep the original C++ mprpc's nodes.
    legacy_layout: bool,
    /// The session supervisor, started on first use.
    supervisor: OnceLock<Supervisor>,
    /// Followed services: one watcher task each, shared by every caller of `discover`.
    followed: Mutex<HashMap<String, Followed>>,
}

struct Supervisor {
    commands: mpsc::UnboundedSender<Command>,
    session: watch::Receiver<Session>,
}

impl std::fmt::Debug for ZkRegistry {
    /// Where it connects and its state; not its session or watches.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkRegistry")
            .field("connect", &self.inner.connect)
            .field("root", &self.inner.root)
            .field("access", &self.inner.access)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// A followed service.
#[derive(Clone)]
struct Followed {
    instances: Instances,
    /// Whether the providers were read (or may not be).
    listed: watch::Receiver<Listed>,
}

/// The registry's connection state, for tools and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Not connected yet, or building a new session after an expiry.
    Connecting,
    /// Connected; registrations and watches are live.
    Connected,
    /// The connection was lost; the session may still be recovered.
    Disconnected,
}

impl ZkRegistry {
    /// A registry on the ensemble `connect` (`host:port[,host:port...]`), keeping its nodes
    /// under `root`, with the given session timeout; anonymous, its nodes open to all.
    /// Connects on first use.
    pub fn new(
        connect: String,
        root: String,
        session_timeout: Duration,
    ) -> Result<ZkRegistry, RegistryError> {
        ZkRegistry::with_access(connect, root, session_timeout, ZkAccess::open())
    }

    /// [`ZkRegistry::new`] with an identity and a protection (see [`ZkAccess`]).
    pub fn with_access(
        connect: String,
        root: String,
        session_timeout: Duration,
        access: ZkAccess,
    ) -> Result<ZkRegistry, RegistryError> {
        if connect.trim().is_empty() {
            return Err(RegistryError::Config(
                "empty ZooKeeper connect string".into(),
            ));
        }
        if !root.starts_with('/') {
            return Err(RegistryError::Config(format!(
                "ZooKeeper root `{root}` must start with `/`"
            )));
        }
        let root = if root == "/" {
            String::new()
        } else {
            root.trim_end_matches('/').to_owned()
        };
        Ok(ZkRegistry {
            inner: Arc::new(Inner {
                connect,
                root,
                session_timeout,
                access,
                legacy_layout: false,
                supervisor: OnceLock::new(),
                followed: Mutex::default(),
            }),
        })
    }

    /// The same registry, whose providers also keep the original C++ mprpc's nodes
    /// (`/{Service}/{Method}`, data `host:port`), so that the original's callers find them.
    /// Set it before the registry is shared (clones made before keep the old setting).
    pub fn with_legacy_layout(mut self, on: bool) -> ZkRegistry {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.legacy_layout = on,
            None => tracing::warn!("with_legacy_layout on a registry already shared: ignored"),
        }
        self
    }

    /// Starts following the providers under `path` (with `legacy`, the original's
    /// `/{Service}` of that service).
    fn follow(&self, path: String, legacy: Option<String>) -> Result<Followed, RegistryError> {
        let (instances_tx, instances) = watch::channel(Arc::new(Vec::new()));
        let (listed_tx, listed) = watch::channel(Listed::NotYet);
        self.supervisor()
            .commands
            .send(Command::Follow {
                path,
                legacy,
                instances: instances_tx,
                listed: listed_tx,
            })
            .map_err(|_| stopped())?;
        Ok(Followed { instances, listed })
    }

    /// The path of a service's providers.
    pub fn providers_path(&self, service: &str) -> String {
        format!("{}/{service}/providers", self.inner.root)
    }

    /// The connection state now.
    pub fn status(&self) -> SessionStatus {
        match self.inner.supervisor.get() {
            Some(s) => s.session.borrow().status,
            None => SessionStatus::Connecting,
        }
    }

    /// The supervisor, started on first use on a thread of its own (see [`session`]). The
    /// thread ends, closing the session, once every handle on the registry is gone.
    fn supervisor(&self) -> &Supervisor {
        self.inner.supervisor.get_or_init(|| {
            let (commands, rx) = mpsc::unbounded_channel();
            let (session_tx, session) = watch::channel(Session::connecting());
            let settings = Settings::new(
                self.inner.connect.clone(),
                self.inner.session_timeout,
                access::Guard::new(self.inner.access.clone(), self.inner.root.clone()),
            );
            let started = std::thread::Builder::new()
                .name("mprpc-zookeeper".into())
                .spawn(move || session::run(settings, rx, session_tx));
            if let Err(e) = started {
                // Every request then fails with "registry stopped".
                tracing::error!("cannot start the ZooKeeper registry's thread: {e}");
            }
            Supervisor { commands, session }
        })
    }

    /// What is wrong with the session, in words naming the connect string; `None` while it
    /// is connected.
    fn trouble(&self) -> Option<String> {
        let connect = &self.inner.connect;
        let session = self.supervisor().session.borrow();
        match (&session.client, &session.unreachable, session.status) {
            (None, Some(reason), _) => Some(format!(
                "the registry at {connect} could not be reached: {reason}"
            )),
            (None, None, _) => Some(format!(
                "the registry at {connect} could not be reached yet (still connecting)"
            )),
            (Some(_), _, SessionStatus::Connected) => None,
            (Some(_), _, _) => Some(format!(
                "the registry at {connect} could not be reached (the connection was lost)"
            )),
        }
    }

    /// Waits until the providers were read. Fails at once if ZooKeeper refuses to let this
    /// session read them, or if no session could be established (the last attempt failed),
    /// like a gRPC call on a channel in transient failure.
    async fn wait_listed(
        &self,
        service: &str,
        mut listed: watch::Receiver<Listed>,
    ) -> Result<(), RegistryError> {
        let mut session = self.supervisor().session.clone();
        tokio::select! {
            biased;
            done = listed.wait_for(|l| *l != Listed::NotYet) => match done.as_deref() {
                Ok(Listed::Refused(reason)) => Err(RegistryError::Denied(reason.clone())),
                Ok(_) => Ok(()),
                Err(_) => Err(stopped()),
            },
            failed = session.wait_for(|s| s.client.is_none() && s.unreachable.is_some()) => {
                match failed.map(drop) {
                    Ok(()) => Err(RegistryError::Unavailable(self.discovery_stalled(service))),
                    Err(_) => Err(stopped()),
                }
            }
            () = tokio::time::sleep(REGISTER_TIMEOUT) => Err(RegistryError::Unavailable(format!(
                "{} (gave up after {REGISTER_TIMEOUT:?})",
                self.discovery_stalled(service)
            ))),
        }
    }
}

fn stopped() -> RegistryError {
    RegistryError::Unavailable("registry stopped".into())
}

fn validate_service(service: &str) -> Result<(), RegistryError> {
    if service.is_empty() || service.contains('/') || service == "." || service == ".." {
        return Err(RegistryError::Config(format!(
            "`{service}` cannot be a ZooKeeper node name"
        )));
    }
    Ok(())
}

impl Registry for ZkRegistry {
    fn register(
        &self,
        instance: ServiceInstance,
    ) -> BoxFuture<Result<Box<dyn Registration>, RegistryError>> {
        let this = self.clone();
        Box::pin(async move { this.register_instance(instance).await })
    }

    fn services(&self) -> BoxFuture<Result<Vec<String>, RegistryError>> {
        let this = self.clone();
        Box::pin(async move {
            let mut session = this.supervisor().session.clone();
            // A client, or the reason there is none (failing at once if the last attempt to
            // establish a session failed).
            let waited = tokio::time::timeout(
                REGISTER_TIMEOUT,
                session.wait_for(|s| s.client.is_some() || s.unreachable.is_some()),
            )
            .await
            .map(|s| s.map(|s| s.client.clone()));
            let client = match waited {
                Ok(Ok(client)) => client,
                Ok(Err(_)) => return Err(stopped()),
                Err(_) => None,
            };
            let client = client.ok_or_else(|| {
                RegistryError::Unavailable(this.trouble().unwrap_or_else(|| {
                    format!(
                        "the registry at {} could not be reached",
                        this.inner.connect
                    )
                }))
            })?;
            let root = if this.inner.root.is_empty() {
                "/"
            } else {
                this.inner.root.as_str()
            };
            match client.list_children(root).await {
                Ok(mut names) => {
                    names.retain(|n| n != "zookeeper");
                    names.sort();
                    Ok(names)
                }
                Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
                Err(e) => Err(RegistryError::Unavailable(format!(
                    "cannot list {root}: {e}"
                ))),
            }
        })
    }

    fn state(&self) -> &'static str {
        match self.status() {
            SessionStatus::Connecting => "connecting",
            SessionStatus::Connected => "connected",
            SessionStatus::Disconnected => "disconnected",
        }
    }

    fn discover(&self, service: &str) -> BoxFuture<Result<Instances, RegistryError>> {
        let this = self.clone();
        let service = service.to_owned();
        Box::pin(async move {
            validate_service(&service)?;
            let followed = {
                let mut followed = lock(&this.inner.followed);
                match followed.get(&service) {
                    Some(f) => f.clone(),
                    None => {
                        // Followed from now on, listed or not: a later call finds the same
                        // follower (which keeps trying) instead of starting another.
                        let native = this.follow(this.providers_path(&service), None)?;
                        let f = if this.inner.legacy_layout {
                            let path = format!("/{}", legacy::short_name(&service));
                            let original = this.follow(path, Some(service.clone()))?;
                            legacy::merge(native, original)
                        } else {
                            native
                        };
                        followed.insert(service.clone(), f.clone());
                        f
                    }
                }
            };
            if *followed.listed.borrow() != Listed::Yes {
                this.wait_listed(&service, followed.listed).await?;
            }
            Ok(followed.instances)
        })
    }

    fn discovery_stalled(&self, service: &str) -> String {
        self.trouble().unwrap_or_else(|| {
            format!(
                "the registry at {} has not listed the providers of `{service}` yet",
                self.inner.connect
            )
        })
    }
}
