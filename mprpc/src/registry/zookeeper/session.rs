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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, SessionState, StateWatcher};

use super::{follow, SessionStatus};
use crate::registry::{RegistryError, ServiceInstance};

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

/// Work for the supervisor.
pub(super) enum Command {
    /// Keep an ephemeral node at `path` with `data`.
    Register {
        path: String,
        data: Vec<u8>,
        ack: Ack,
    },
    /// Stop keeping it, and delete it if it is ours.
    Deregister { path: String, ack: Ack },
    /// Follow the providers under `path` (see [`follow`]).
    Follow {
        path: String,
        instances: watch::Sender<Arc<Vec<ServiceInstance>>>,
        listed: watch::Sender<bool>,
    },
}

/// The body of the registry's thread: supervises the session until every handle on the
/// registry is gone, then closes it in order.
pub(super) fn run(
    connect: String,
    session_timeout: Duration,
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
        let closing = supervise(&connect, session_timeout, commands, &session, &stop).await;
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

/// Keeps the session and the registrations until every handle on the registry is gone;
/// returns the state of the session it was closing, if there was one.
async fn supervise(
    connect: &str,
    session_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    session: &watch::Sender<Session>,
    stop: &CancellationToken,
) -> Option<StateWatcher> {
    let mut supervisor = Supervisor {
        connect,
        session_timeout,
        commands,
        session,
        stop,
        registrations: HashMap::new(),
    };
    loop {
        // Connect, taking commands meanwhile: registrations wait for the session.
        let mut waiting: Vec<(String, Ack)> = Vec::new();
        let client = supervisor.connect(&mut waiting).await?;
        if let Ended::HandlesGone(state) = supervisor.serve(client, waiting).await {
            return Some(state);
        }
    }
}

/// How [`Supervisor::serve`] ended.
enum Ended {
    /// The session ended (expired, closed, or failed authentication): a new one is needed.
    SessionLost,
    /// Every handle on the registry is gone; the state of the session being closed.
    HandlesGone(StateWatcher),
}

/// What [`supervise`] keeps across sessions.
struct Supervisor<'a> {
    connect: &'a str,
    session_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    session: &'a watch::Sender<Session>,
    stop: &'a CancellationToken,
    /// The nodes to keep: path -> data.
    registrations: HashMap<String, Vec<u8>>,
}

impl Supervisor<'_> {
    /// Starts following the providers under `path` (see [`follow`]), on a task of its own.
    fn follow(
        &self,
        path: String,
        instances: watch::Sender<Arc<Vec<ServiceInstance>>>,
        listed: watch::Sender<bool>,
    ) {
        tokio::spawn(follow::follow(
            self.session.subscribe(),
            path,
            instances,
            listed,
            self.stop.clone(),
        ));
    }

    /// Connects (see [`connect_with_retry`]), taking commands meanwhile: registrations are
    /// recorded and wait in `waiting` for the session. `None` once every handle is gone.
    async fn connect(&mut self, waiting: &mut Vec<(String, Ack)>) -> Option<Client> {
        let mut attempt = Box::pin(connect_with_retry(
            self.connect,
            self.session_timeout,
            self.session,
        ));
        loop {
            tokio::select! {
                client = &mut attempt => return Some(client),
                command = self.commands.recv() => match command {
                    None => return None,
                    Some(Command::Register { path, data, ack }) => {
                        self.registrations.insert(path.clone(), data);
                        waiting.push((path, ack));
                    }
                    Some(Command::Deregister { path, ack }) => {
                        self.registrations.remove(&path);
                        let _ = ack.send(Ok(()));
                    }
                    Some(Command::Follow { path, instances, listed }) => {
                        self.follow(path, instances, listed);
                    }
                },
            }
        }
    }

    /// Logs and publishes a newly established session.
    fn publish_connected(&self, client: &Client) {
        tracing::info!(
            session = %client.session_id(),
            timeout = ?client.session_timeout(),
            "ZooKeeper session established"
        );
        self.session.send_replace(Session {
            status: SessionStatus::Connected,
            client: Some(client.clone()),
            unreachable: None,
        });
    }

    /// Keeps the registrations true on an established session, and serves commands, until
    /// the session ends or every handle on the registry is gone (then it closes the session).
    async fn serve(&mut self, client: Client, mut waiting: Vec<(String, Ack)>) -> Ended {
        self.publish_connected(&client);

        let (fired_tx, mut fired) = mpsc::unbounded_channel::<String>();
        for path in self.registrations.keys() {
            arm_watch(&client, path, &fired_tx);
        }
        ensure_all(&client, &self.registrations, &mut waiting).await;

        let mut state = client.state_watcher();
        let mut recheck =
            tokio::time::interval((self.session_timeout / 4).max(Duration::from_millis(500)));
        recheck.tick().await;
        let mut connected = true;
        loop {
            tokio::select! {
                new_state = state.changed() => {
                    let alive = self
                        .on_state(new_state, &client, &mut waiting, &mut connected)
                        .await;
                    if !alive {
                        break;
                    }
                }
                Some(path) = fired.recv() => {
                    self.on_fired(&client, path, connected, &fired_tx).await;
                }
                command = self.commands.recv() => match command {
                    None => {
                        // Every handle is gone: close the session, which removes our nodes
                        // (once the followers' clients are gone too).
                        let state = client.state_watcher();
                        drop(client);
                        self.session.send_replace(Session::connecting());
                        return Ended::HandlesGone(state);
                    }
                    Some(command) => {
                        self.on_command(command, &client, &mut waiting, &fired_tx).await;
                    }
                },
                _ = recheck.tick(), if connected => ensure_all(&client, &self.registrations, &mut waiting).await,
            }
        }
        self.session.send_replace(Session::connecting());
        Ended::SessionLost
    }

    /// Follows a change of the session's state (`connected` tells whether it is connected
    /// now); `false` once the session has ended.
    async fn on_state(
        &self,
        new_state: SessionState,
        client: &Client,
        waiting: &mut Vec<(String, Ack)>,
        connected: &mut bool,
    ) -> bool {
        match new_state {
            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                tracing::info!("ZooKeeper connection recovered");
                *connected = true;
                self.session
                    .send_modify(|s| s.status = SessionStatus::Connected);
                ensure_all(client, &self.registrations, waiting).await;
            }
            SessionState::Disconnected => {
                tracing::warn!("ZooKeeper connection lost; the session may still recover");
                *connected = false;
                self.session
                    .send_modify(|s| s.status = SessionStatus::Disconnected);
            }
            other => {
                tracing::warn!("ZooKeeper session ended ({other}); starting a new one");
                return false;
            }
        }
        true
    }

    /// The watch on the node at `path` fired: if the node is still registered, puts it back
    /// (while `connected`) and watches it again.
    async fn on_fired(
        &self,
        client: &Client,
        path: String,
        connected: bool,
        fired_tx: &mpsc::UnboundedSender<String>,
    ) {
        if let Some(data) = self.registrations.get(&path) {
            if connected {
                if let Err(e) = ensure_node(client, &path, data).await {
                    tracing::warn!(%path, "cannot restore: {e}");
                }
            }
            arm_watch(client, &path, fired_tx);
        }
    }

    /// Carries out a command on an established session.
    async fn on_command(
        &mut self,
        command: Command,
        client: &Client,
        waiting: &mut Vec<(String, Ack)>,
        fired_tx: &mpsc::UnboundedSender<String>,
    ) {
        match command {
            Command::Register { path, data, ack } => {
                arm_watch(client, &path, fired_tx);
                match ensure_node(client, &path, &data).await {
                    Ok(()) => {
                        let _ = ack.send(Ok(()));
                    }
                    // Acknowledged once the node exists: a connection hiccup only
                    // delays it (the caller bounds the wait).
                    Err(e) => {
                        tracing::debug!(%path, "cannot register yet: {e}");
                        waiting.push((path.clone(), ack));
                    }
                }
                self.registrations.insert(path, data);
            }
            Command::Deregister { path, ack } => {
                self.registrations.remove(&path);
                waiting.retain(|(p, _)| *p != path);
                let _ = ack.send(delete_own(client, &path).await);
            }
            Command::Follow {
                path,
                instances,
                listed,
            } => self.follow(path, instances, listed),
        }
    }
}

/// Connects, retrying with backoff; publishes why each failed attempt failed (in
/// `Session::unreachable`) and logs it once, not at every attempt.
async fn connect_with_retry(
    connect: &str,
    session_timeout: Duration,
    session: &watch::Sender<Session>,
) -> Client {
    let mut backoff = Duration::from_millis(100);
    let limit = session_timeout.max(Duration::from_secs(2));
    let mut failures = 0u32;
    loop {
        let attempt = Client::connector()
            .with_session_timeout(session_timeout)
            .with_fail_eagerly()
            .connect(connect);
        let reason = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(client)) => {
                if failures > 0 {
                    tracing::info!(
                        "reached ZooKeeper at {connect} after {failures} failed attempts"
                    );
                }
                return client;
            }
            // With `fail_eagerly`, every server of the connect string was tried once.
            Ok(Err(ZkError::NoHosts)) => {
                "no server of the connect string accepted a connection".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no session established within {limit:?}"),
        };
        failures += 1;
        let repeated = session.borrow().unreachable.as_deref() == Some(reason.as_str());
        if repeated {
            tracing::debug!("still cannot reach ZooKeeper at {connect}: {reason}");
        } else {
            tracing::warn!("cannot reach ZooKeeper at {connect}: {reason}; retrying");
            session.send_modify(|s| s.unreachable = Some(reason));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Makes sure every registered node exists, and acknowledges the waiting registrations whose
/// node now does.
///
/// One round trip lists the nodes this session owns; only the missing ones are created, all
/// at once. (Checking each node in turn would cost a round trip per registration, every time.)
async fn ensure_all(
    client: &Client,
    registrations: &HashMap<String, Vec<u8>>,
    waiting: &mut Vec<(String, Ack)>,
) {
    let owned: HashSet<String> = match client.list_ephemerals("/").await {
        Ok(paths) => paths.into_iter().collect(),
        Err(e) => {
            tracing::debug!("cannot list our nodes: {e}");
            return;
        }
    };
    let missing = registrations
        .iter()
        .filter(|(path, _)| !owned.contains(*path))
        .map(|(path, data)| async move { (path.as_str(), ensure_node(client, path, data).await) });
    let mut failed = Vec::new();
    for (path, outcome) in join_all(missing).await {
        if let Err(e) = outcome {
            tracing::warn!(%path, "cannot register yet: {e}");
            failed.push(path);
        }
    }
    let (done, still): (Vec<_>, Vec<_>) = std::mem::take(waiting)
        .into_iter()
        .partition(|(path, _)| !failed.contains(&path.as_str()));
    *waiting = still;
    for (_, ack) in done {
        let _ = ack.send(Ok(()));
    }
}

/// Watches a node once; when it changes or goes, its path comes back through `fired`.
///
/// The task keeps no client while it waits, so that it does not hold the session open; the
/// session's end reaches it as an event.
fn arm_watch(client: &Client, path: &str, fired: &mpsc::UnboundedSender<String>) {
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
async fn delete_own(client: &Client, path: &str) -> Result<(), RegistryError> {
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
