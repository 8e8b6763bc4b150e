//! The ZooKeeper session and the provider nodes that depend on it.
//!
//! The session lives on a thread of its own with a single-threaded runtime ([`run`]), never
//! on the caller's runtime: `zookeeper-client` runs its session as a task on whichever runtime
//! connects, and when that runtime shuts down (a blocking client dropped, a `main` returning)
//! the task is dropped without telling the watchers, and a watcher polled after that panics
//! inside the crate (`src/session/watch.rs:147`, an `unwrap()` on `None`). On our own
//! single-threaded runtime nothing is polled once it shuts down, and the session is closed in
//! order first: the followers drop their watches and clients, then the session says goodbye
//! to ZooKeeper (which removes our nodes at once) and reports `Closed` to what is left.
//!
//! One supervisor task owns the session. It connects (retrying with backoff), publishes the
//! live client for the consumers' watchers, and keeps every registered provider node true:
//!
//! - after connecting, and again after every reconnect, it makes sure each node exists and
//!   belongs to the current session;
//! - a node that exists but belongs to another session (ours before an expiry, or a dead
//!   process that used the same address) is deleted and created again, never skipped;
//! - a one-shot watch on each node (these survive reconnects) brings it back at once if
//!   someone deletes it, and a periodic check catches anything else;
//! - when the session expires, it builds a new one and starts over.
//!
//! Commands (register, deregister, follow) reach it through a channel, so registry work never
//! blocks the client's event delivery.
//!
//! This file holds what the rest of the registry sees: the [`Settings`], the published
//! [`Session`], the [`Command`]s, and the thread's body ([`run`]). The supervisor's state
//! machine is in [`supervisor`]; establishing a session (with backoff, authenticated) in
//! [`connect`]; the operations on provider nodes (create or replace, delete, watch) in
//! [`nodes`].

mod connect;
mod nodes;
mod supervisor;

pub(super) use connect::RECONNECT_BACKOFF_MAX;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

use super::access::Guard;
use super::follow::Listed;
use super::SessionStatus;
use crate::registry::{RegistryError, ServiceInstance};
use supervisor::supervise;

/// What the session is made with.
#[derive(Debug)]
pub(super) struct Settings {
    connect: String,
    session_timeout: Duration,
    /// The identity, and the ACLs and checks of the nodes.
    guard: Guard,
}

impl Settings {
    pub(super) fn new(connect: String, session_timeout: Duration, guard: Guard) -> Settings {
        Settings {
            connect,
            session_timeout,
            guard,
        }
    }
}

/// How long closing the session may take when the registry is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the supervisor publishes about the session.
#[derive(Clone)]
pub(super) struct Session {
    pub(super) status: SessionStatus,
    /// The live client, while there is one.
    pub(super) client: Option<Client>,
    /// Why the last attempt to establish a session failed; `None` once one is established.
    pub(super) unreachable: Option<String>,
}

impl Session {
    pub(super) fn connecting() -> Session {
        Session {
            status: SessionStatus::Connecting,
            client: None,
            unreachable: None,
        }
    }
}

type Ack = oneshot::Sender<Result<(), RegistryError>>;

/// A node the registry keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) data: Vec<u8>,
    /// Other providers may hold the same path (the original C++ mprpc's layout, one node per
    /// method): one that another session holds with other data is left to it, and taken
    /// when it goes. A node that is not shared names its provider in its path, so one held
    /// by another session is this provider's own, left by an earlier session, and replaced.
    pub(super) shared: bool,
}

/// Work for the supervisor.
pub(super) enum Command {
    /// Keep an ephemeral node at `path`.
    Register { path: String, node: Node, ack: Ack },
    /// Stop keeping it, and delete it if it is ours.
    Deregister { path: String, ack: Ack },
    /// Follow the providers under `path` (see [`follow`](super::follow)); with `legacy`
    /// (the service's full name), `path` is the original C++ mprpc's `/{Service}`.
    Follow {
        path: String,
        legacy: Option<String>,
        instances: watch::Sender<Arc<Vec<ServiceInstance>>>,
        listed: watch::Sender<Listed>,
    },
}

/// The body of the registry's thread: supervises the session until every handle on the
/// registry is gone, then closes it in order.
pub(super) fn run(
    settings: Settings,
    commands: mpsc::UnboundedReceiver<Command>,
    session: watch::Sender<Session>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the ZooKeeper registry's runtime: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let closing = supervise(&settings, commands, &session, &stop).await;
        // The followers drop their watches and clients; the last client gone, the session
        // closes and delivers `Closed` to any watch still armed.
        stop.cancel();
        if let Some(mut state) = closing {
            let closed = async { while !state.changed().await.is_terminated() {} };
            if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_err() {
                tracing::debug!("the ZooKeeper session did not close within {CLOSE_TIMEOUT:?}");
            }
        }
    });
    // Dropping the runtime drops whatever is left without polling it again.
}
