//! Following one service's providers from the consumer side.
//!
//! A task per followed service holds a persistent recursive watch on the service's
//! `providers` node and republishes the instance list into a `watch` channel that the
//! consumer's channel reads. Rules:
//!
//! - **Bursts are merged**: after a change, events keep arriving for a short window
//!   ([`MERGE_WINDOW`]) before the list is read once.
//! - **Reconnects re-arm the watch.** `zookeeper-client` 0.11.2 silently stops delivering
//!   persistent-watch events after reconnecting to another server (its watch-restore loop has
//!   `index.max(index)` where `index.max(i)` was meant), and no persistent watch replays what
//!   happened while disconnected. So after every `SyncConnected` the watch is added again and
//!   the list is read afresh.
//! - **A hiccup does not wipe the list.** While ZooKeeper is unreachable the last list stays
//!   in force. A new list that is empty, or that drops more than half of at least three
//!   providers, is applied only if a second reading after [`CONFIRM_DELAY`] agrees (longer
//!   than living providers take to register again after ZooKeeper comes back).
//! - **Nodes are vetted** as the list is read ([`Listing`]): one that cannot be read is
//!   skipped, and a protected registry refuses nodes that anyone may change.
//! - The task ends when every consumer of the list is gone, or when the registry stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{
    AddWatchMode, Client, Error as ZkError, EventType, PersistentWatcher, SessionState,
};

use super::listing::Listing;
use super::session::{Session, RECONNECT_BACKOFF_MAX};
use crate::registry::ServiceInstance;

/// Whether a followed service's providers have been read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Listed {
    /// Not yet.
    NotYet,
    /// Yes: the list is what ZooKeeper holds (and keeps being followed).
    Yes,
    /// ZooKeeper refuses to let this session read them (its ACL); why, in words.
    Refused(String),
}

impl Listed {
    /// Publishes a refusal, unless the list was read already.
    fn refuse(listed: &watch::Sender<Listed>, reason: String) {
        listed.send_if_modified(|l| {
            let new = Listed::Refused(reason);
            let changed = *l != Listed::Yes && *l != new;
            if changed {
                *l = new;
            }
            changed
        });
    }
}

/// The refusal for a path this session may not read.
fn no_auth(path: &str) -> String {
    format!(
        "ZooKeeper refuses to let this consumer read {path} (NoAuth): its ACL names other \
         identities; check [registry] auth (the consumer's identity) and the providers' \
         read_identity"
    )
}

/// How long to keep collecting events after a change before reading the list.
pub(crate) const MERGE_WINDOW: Duration = Duration::from_millis(50);
/// How long to wait before a second reading confirms a suspicious list: longer than a living
/// provider may take to register again. After an outage longer than a provider's session,
/// ZooKeeper deletes the provider's old node a session timeout after it is back, while the
/// provider, retrying up to [`RECONNECT_BACKOFF_MAX`] apart, may come back only later: a
/// shorter wait emptied the lists of the consumers that reconnected first.
pub(crate) const CONFIRM_DELAY: Duration =
    RECONNECT_BACKOFF_MAX.saturating_add(Duration::from_secs(1));

/// Follows `path` into `tx` until every receiver of `tx` is gone or `stop` fires; `listed`
/// turns true after the first successful reading. In a `protected` registry, provider nodes
/// that anyone may change are refused (see [`listing`](super::listing)). Runs on the
/// registry's own runtime (see [`session`](super::session)).
pub(super) async fn follow(
    session: watch::Receiver<Session>,
    protected: bool,
    (path, legacy): (String, Option<String>),
    tx: watch::Sender<Arc<Vec<ServiceInstance>>>,
    listed: watch::Sender<Listed>,
    stop: CancellationToken,
) {
    // Stopping drops the watch and the client wherever the follower is.
    let mut listing = Listing::new(path, protected, legacy);
    tokio::select! {
        () = stop.cancelled() => {}
        () = follow_sessions(session, &mut listing, &tx, &listed) => {}
    }
}

/// What ended one watch: the session, or the consumers.
enum Stop {
    SessionEnded,
    NobodyListens,
}

async fn follow_sessions(
    mut session: watch::Receiver<Session>,
    listing: &mut Listing,
    tx: &watch::Sender<Arc<Vec<ServiceInstance>>>,
    listed: &watch::Sender<Listed>,
) {
    loop {
        // Wait for a live client.
        let client = tokio::select! {
            () = tx.closed() => return,
            s = session.wait_for(|s| s.client.is_some()) => match s {
                Ok(s) => s.client.clone().expect("checked by wait_for"),
                Err(_) => return,
            },
        };
        match follow_session(&client, listing, tx, listed).await {
            Stop::NobodyListens => return,
            Stop::SessionEnded => {
                // Wait until the supervisor has replaced this client.
                let _ = session
                    .wait_for(|s| {
                        s.client.as_ref().map(Client::session_id) != Some(client.session_id())
                    })
                    .await;
            }
        }
    }
}

async fn follow_session(
    client: &Client,
    listing: &mut Listing,
    tx: &watch::Sender<Arc<Vec<ServiceInstance>>>,
    listed: &watch::Sender<Listed>,
) -> Stop {
    let path = listing.path().to_owned();
    let path = path.as_str();
    let mut watcher = match arm(client, path, tx, listed).await {
        Some(w) => w,
        None => return Stop::SessionEnded,
    };
    refresh(client, listing, tx, listed).await;
    loop {
        let event = tokio::select! {
            () = tx.closed() => return Stop::NobodyListens,
            event = watcher.changed() => event,
        };
        let mut reconnected = false;
        match event.event_type {
            EventType::Session => match event.session_state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => reconnected = true,
                SessionState::Disconnected => {
                    tracing::debug!(%path, "ZooKeeper unreachable; keeping the known providers");
                    continue;
                }
                _ => return Stop::SessionEnded,
            },
            _ => {
                // Merge the burst: keep taking events for a moment.
                let window = tokio::time::sleep(MERGE_WINDOW);
                tokio::pin!(window);
                loop {
                    tokio::select! {
                        () = &mut window => break,
                        event = watcher.changed() => {
                            if event.event_type == EventType::Session {
                                match event.session_state {
                                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => reconnected = true,
                                    SessionState::Disconnected => {}
                                    _ => return Stop::SessionEnded,
                                }
                            }
                        }
                    }
                }
            }
        }
        if reconnected {
            // The client defect: persistent watches are not restored after a reconnect to
            // another server. Drop the old watch before adding the new one, so that removing
            // it cannot remove the new one.
            drop(watcher);
            watcher = match arm(client, path, tx, listed).await {
                Some(w) => w,
                None => return Stop::SessionEnded,
            };
        }
        refresh(client, listing, tx, listed).await;
    }
}

/// Adds the persistent recursive watch, retrying while the session lives.
async fn arm(
    client: &Client,
    path: &str,
    tx: &watch::Sender<Arc<Vec<ServiceInstance>>>,
    listed: &watch::Sender<Listed>,
) -> Option<PersistentWatcher> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match client.watch(path, AddWatchMode::PersistentRecursive).await {
            Ok(w) => return Some(w),
            Err(ZkError::SessionExpired | ZkError::ClientClosed | ZkError::AuthFailed) => {
                return None
            }
            Err(ZkError::NoAuth) => Listed::refuse(listed, no_auth(path)),
            Err(e) => tracing::debug!(%path, "cannot watch yet: {e}"),
        }
        if client.state().is_terminated() || tx.is_closed() {
            return None;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Reads the list and publishes it, unless it looks like a hiccup that a second reading
/// does not confirm.
async fn refresh(
    client: &Client,
    listing: &mut Listing,
    tx: &watch::Sender<Arc<Vec<ServiceInstance>>>,
    listed: &watch::Sender<Listed>,
) {
    let Some(mut list) = listing.read(client).await else {
        if listing.denied() {
            Listed::refuse(listed, no_auth(listing.path()));
        }
        return;
    };
    let path = listing.path().to_owned();
    let old = tx.borrow().clone();
    if suspicious(&old, &list) {
        tracing::warn!(
            %path,
            before = old.len(),
            now = list.len(),
            "providers dropped sharply; confirming before applying"
        );
        tokio::time::sleep(CONFIRM_DELAY).await;
        match listing.read(client).await {
            Some(again) => list = again,
            None => return,
        }
    }
    if *old != list {
        tracing::info!(%path, providers = list.len(), "provider list changed");
        tx.send_replace(Arc::new(list));
    }
    listed.send_if_modified(|l| std::mem::replace(l, Listed::Yes) != Listed::Yes);
}

fn suspicious(old: &[ServiceInstance], new: &[ServiceInstance]) -> bool {
    !old.is_empty() && (new.is_empty() || (old.len() >= 3 && new.len() * 2 < old.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> Vec<ServiceInstance> {
        (0..n)
            .map(|i| ServiceInstance::new("s", format!("h:{i}")))
            .collect()
    }

    #[test]
    fn sharp_drops_are_suspicious() {
        assert!(!suspicious(&[], &[]));
        assert!(!suspicious(&[], &list(2)));
        assert!(suspicious(&list(1), &[]));
        assert!(!suspicious(&list(2), &list(1)));
        assert!(suspicious(&list(3), &list(1)));
        assert!(!suspicious(&list(4), &list(2)));
        assert!(suspicious(&list(10), &list(4)));
    }
}
