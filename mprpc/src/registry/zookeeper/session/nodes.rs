//! The operations on one provider node: make sure it is an ephemeral node of this session
//! (replacing one left by another session), delete it if it is ours, and watch it once.
//! They keep no state; the supervisor ([`super::supervisor`]) decides when to call them.

use tokio::sync::mpsc;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

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

/// Makes sure `path` is an ephemeral node of this session holding `data`.
pub(super) async fn ensure_node(
    client: &Client,
    path: &str,
    data: &[u8],
) -> Result<(), RegistryError> {
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let ours = client.session_id().0;
    for _ in 0..5 {
        match client.create(path, data, &ephemeral).await {
            Ok(_) => return Ok(()),
            Err(ZkError::NoNode) => {
                let parent = &path[..path.rfind('/').unwrap_or(0)];
                client
                    .mkdir(parent, &persistent)
                    .await
                    .map_err(|e| unavailable("cannot create", parent, e))?;
            }
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
                Ok((_, stat)) => {
                    tracing::info!(
                        %path,
                        owner = format_args!("{:#x}", stat.ephemeral_owner),
                        "replacing a provider node left by another session"
                    );
                    match client.delete(path, Some(stat.version)).await {
                        Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => {}
                        Err(e) => return Err(unavailable("cannot replace", path, e)),
                    }
                }
                Err(ZkError::NoNode) => {}
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
