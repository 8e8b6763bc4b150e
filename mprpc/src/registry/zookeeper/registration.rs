//! A provider's registration: its node in mprpc's layout (and, with `legacy_layout`, the
//! original's nodes of each method), handed to the session's supervisor to keep, and taken
//! back when it deregisters.

use tokio::sync::{mpsc, oneshot};

use super::session::{Command, Node};
use super::{legacy, stopped, validate_service, ZkRegistry, REGISTER_TIMEOUT};
use crate::future::BoxFuture;
use crate::registry::{Registration, RegistryError, ServiceInstance};

impl ZkRegistry {
    /// Registers `instance`: its own node, then the original's nodes if they are kept; on
    /// failure nothing is left behind.
    pub(super) async fn register_instance(
        &self,
        instance: ServiceInstance,
    ) -> Result<Box<dyn Registration>, RegistryError> {
        let this = self;
        validate_service(&instance.service)?;
        this.inner.access.may_register()?;
        if instance.address.is_empty() || instance.address.contains('/') {
            return Err(RegistryError::Config(format!(
                "`{}` cannot be a provider address",
                instance.address
            )));
        }
        let path = format!(
            "{}/{}",
            this.providers_path(&instance.service),
            instance.address
        );
        let data = serde_json::to_vec(&instance)
            .map_err(|e| RegistryError::Config(format!("cannot encode the instance: {e}")))?;
        let mut paths = vec![path.clone()];
        let mut outcome = this
            .keep(
                &path,
                Node {
                    data,
                    shared: false,
                },
            )
            .await;
        if outcome.is_ok() && this.inner.legacy_layout {
            for legacy in legacy::paths(&instance) {
                let node = Node {
                    data: instance.address.as_bytes().to_vec(),
                    shared: true,
                };
                outcome = this.keep(&legacy, node).await;
                if outcome.is_err() {
                    break;
                }
                paths.push(legacy);
            }
        }
        let registration = ZkRegistration {
            paths,
            commands: this.supervisor().commands.clone(),
        };
        if let Err(e) = outcome {
            let _ = Box::new(registration).deregister().await;
            return Err(e);
        }
        tracing::info!(paths = ?registration.paths, "registered in ZooKeeper");
        Ok(Box::new(registration) as Box<dyn Registration>)
    }

    /// Keeps a node at `path`: waits until ZooKeeper has it (within [`REGISTER_TIMEOUT`]);
    /// on failure nothing is kept.
    async fn keep(&self, path: &str, node: Node) -> Result<(), RegistryError> {
        let supervisor = self.supervisor();
        let (ack, done) = oneshot::channel();
        let path = path.to_owned();
        supervisor
            .commands
            .send(Command::Register {
                path: path.clone(),
                node,
                ack,
            })
            .map_err(|_| stopped())?;
        let outcome = match tokio::time::timeout(REGISTER_TIMEOUT, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(RegistryError::Unavailable(match self.trouble() {
                Some(trouble) => format!(
                    "{trouble} (gave up registering {path} after {REGISTER_TIMEOUT:?})"
                ),
                None => format!(
                    "the registry at {} did not confirm registering {path} within {REGISTER_TIMEOUT:?}",
                    self.inner.connect
                ),
            })),
        };
        if outcome.is_err() {
            // Do not leave it to be registered later behind the caller's back.
            let (ack, _) = oneshot::channel();
            let _ = supervisor.commands.send(Command::Deregister { path, ack });
        }
        outcome
    }
}

struct ZkRegistration {
    /// Its nodes: its own, then the original's layout's, if kept.
    paths: Vec<String>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Registration for ZkRegistration {
    fn deregister(self: Box<Self>) -> BoxFuture<Result<(), RegistryError>> {
        Box::pin(async move {
            let mut outcome = Ok(());
            for path in &self.paths {
                let (ack, done) = oneshot::channel();
                let path = path.clone();
                self.commands
                    .send(Command::Deregister {
                        path: path.clone(),
                        ack,
                    })
                    .map_err(|_| stopped())?;
                let removed = match tokio::time::timeout(REGISTER_TIMEOUT, done).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(stopped()),
                    Err(_) => Err(RegistryError::Unavailable(format!(
                        "ZooKeeper did not confirm removing {path} in time"
                    ))),
                };
                if outcome.is_ok() {
                    outcome = removed;
                }
            }
            outcome
        })
    }
}
