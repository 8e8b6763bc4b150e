//! The operations on provider nodes: make sure one is an ephemeral node of this session
//! (replacing one left by another session), with the session's ACL and under nodes it may
//! trust ([`Guard`]); make sure every registered one is; delete one if it is ours; watch one
//! once. They keep no state; the supervisor ([`super::supervisor`]) decides when to call them.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use tokio::sync::mpsc;
use zookeeper_client::{Client, CreateMode, Error as ZkError};

use super::Node;
use crate::registry::zookeeper::access::Guard;
use crate::registry::RegistryError;

/// Watches a node once; when it changes or goes, its path comes back through `fired`.
///
/// The task keeps no client while it waits, so that it does not hold the session open; the
/// session's end reaches it as an event.
pub(super) fn arm_watch(client: &Client, path: &str, fired: &mpsc::UnboundedSender<String>) {
    let client = client.clone();
    let path = path.to_owned();
    let fired = fired.clone();
    tokio::spawn(async move {
        let watched = client.check_and_watch_stat(&path).await;
        drop(client);
        match watched {
            Ok((_, watcher)) => {
                let event = watcher.changed().await;
                tracing::debug!(%path, ?event.event_type, "provider node changed");
                let _ = fired.send(path);
            }
            Err(e) => tracing::debug!(%path, "cannot watch: {e}"),
        }
    });
}

fn unavailable(what: &str, path: &str, e: ZkError) -> RegistryError {
    RegistryError::Unavailable(format!("{what} {path}: {e}"))
}

/// Makes sure `path` is an ephemeral node of this session holding the node's data, with the
/// guard's ACL (or, for a shared node, that some session holds it, see [`Node::shared`]). Fails with [`RegistryError::Denied`] when ZooKeeper refuses this identity, or when a
/// protected registry finds a node above it that anyone may change.
pub(super) async fn ensure_node(
    client: &Client,
    path: &str,
    node: &Node,
    guard: &Guard,
) -> Result<(), RegistryError> {
    let data = &node.data[..];
    let ephemeral = guard.create_options(CreateMode::Ephemeral);
    let persistent = guard.create_options(CreateMode::Persistent);
    let ours = client.session_id().0;
    let parent = &path[..path.rfind('/').unwrap_or(0)];
    for _ in 0..5 {
        guard.check_parents(client, path).await?;
        match client.create(path, data, &ephemeral).await {
            Ok(_) => return Ok(()),
            Err(ZkError::NoNode) => match client.mkdir(parent, &persistent).await {
                Ok(()) => {}
                Err(ZkError::NoAuth) => {
                    return Err(guard.denied("create", parent, "a node above it"))
                }
                Err(e) => return Err(unavailable("cannot create", parent, e)),
            },
            Err(ZkError::NoAuth) => return Err(guard.denied("create", path, parent)),
            Err(ZkError::NodeExists) => match client.get_data(path).await {
                Ok((old, stat)) if stat.ephemeral_owner == ours => {
                    if old != data {
                        client
                            .set_data(path, data, None)
                            .await
                            .map_err(|e| unavailable("cannot update", path, e))?;
                    }
                    return Ok(());
                }
                Ok((old, _)) if node.shared && old != data => {
                    tracing::debug!(
                        %path,
                        holder = %String::from_utf8_lossy(&old),
                        "another provider holds this shared node; it is taken when it goes"
                    );
                    return Ok(());
                }
                Ok((_, stat)) => {
                    tracing::info!(
                        %path,
                        owner = format_args!("{:#x}", stat.ephemeral_owner),
                        "replacing a provider node left by another session"
                    );
                    match client.delete(path, Some(stat.version)).await {
                        Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => {}
                        Err(ZkError::NoAuth) => return Err(guard.denied("replace", path, parent)),
                        Err(e) => return Err(unavailable("cannot replace", path, e)),
                    }
                }
                Err(ZkError::NoNode) => {}
                Err(ZkError::NoAuth) => return Err(guard.denied("read", path, path)),
                Err(e) => return Err(unavailable("cannot read", path, e)),
            },
            Err(e) => return Err(unavailable("cannot create", path, e)),
        }
    }
    Err(RegistryError::Unavailable(format!(
        "cannot create {path}: it keeps changing under us"
    )))
}

/// Deletes `path` if this session owns it.
pub(super) async fn delete_own(client: &Client, path: &str) -> Result<(), RegistryError> {
    match client.check_stat(path).await {
        Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => {
            match client.delete(path, Some(stat.version)).await {
                Ok(()) | Err(ZkError::NoNode) => Ok(()),
                Err(e) => Err(unavailable("cannot delete", path, e)),
            }
        }
        Ok(_) => Ok(()),
        Err(e) => Err(unavailable("cannot check", path, e)),
    }
}

/// Makes sure every registered node exists; returns the ones that could not be made, with
/// why (`None` if this session's nodes could not even be listed).
///
/// One round trip lists the nodes this session owns; only the missing ones are created, all
/// at once. (Checking each node in turn would cost a round trip per registration, every time.)
pub(super) async fn ensure_missing(
    client: &Client,
    registrations: &HashMap<String, Node>,
    guard: &Guard,
) -> Option<Vec<(String, RegistryError)>> {
    let owned: HashSet<String> = match client.list_ephemerals("/").await {
        Ok(paths) => paths.into_iter().collect(),
        Err(e) => {
            tracing::debug!("cannot list our nodes: {e}");
            return None;
        }
    };
    let missing = registrations
        .iter()
        .filter(|(path, _)| !owned.contains(*path))
        .map(|(path, node)| async move { (path, ensure_node(client, path, node, guard).await) });
    let failed = join_all(missing)
        .await
        .into_iter()
        .filter_map(|(path, outcome)| outcome.err().map(|e| (path.clone(), e)))
        .collect();
    Some(failed)
}
