//! The supervisor: the state machine that owns the session (see [`super`]).
//!
//! It alternates between two phases until every handle on the registry is gone:
//! [`Supervisor::connect`] (connecting, with backoff, while registrations queue up) and
//! [`Supervisor::serve`] (keeping the registered nodes true on an established session, and
//! carrying out commands, until the session ends). What it keeps across sessions is the set of
//! registrations; the operations on one node are in [`super::nodes`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Client, SessionState, StateWatcher};

use super::connect::connect_with_retry;
use super::nodes::{arm_watch, delete_own, ensure_missing, ensure_node};
use super::{Ack, Command, Node, Session, Settings};
use crate::registry::zookeeper::follow::{self, Listed};
use crate::registry::zookeeper::SessionStatus;
use crate::registry::{RegistryError, ServiceInstance};

/// Keeps the session and the registrations until every handle on the registry is gone;
/// returns the state of the session it was closing, if there was one.
pub(super) async fn supervise(
    settings: &Settings,
    commands: mpsc::UnboundedReceiver<Command>,
    session: &watch::Sender<Session>,
    stop: &CancellationToken,
) -> Option<StateWatcher> {
    let mut supervisor = Supervisor {
        settings,
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
    settings: &'a Settings,
    commands: mpsc::UnboundedReceiver<Command>,
    session: &'a watch::Sender<Session>,
    stop: &'a CancellationToken,
    /// The nodes to keep: path -> data.
    registrations: HashMap<String, Node>,
}

impl Supervisor<'_> {
    /// Starts following the providers under `path` (see [`follow`]), on a task of its own.
    fn follow(
        &self,
        path: String,
        legacy: Option<String>,
        instances: watch::Sender<Arc<Vec<ServiceInstance>>>,
        listed: watch::Sender<Listed>,
    ) {
        tokio::spawn(follow::follow(
            self.session.subscribe(),
            self.settings.guard.access().is_protected(),
            (path, legacy),
            instances,
            listed,
            self.stop.clone(),
        ));
    }

    /// Connects (see [`connect_with_retry`]), taking commands meanwhile: registrations are
    /// recorded and wait in `waiting` for the session (or until they are deregistered, see
    /// [`Supervisor::withdraw`]). `None` once every handle is gone.
    async fn connect(&mut self, waiting: &mut Vec<(String, Ack)>) -> Option<Client> {
        let settings = self.settings;
        let mut attempt = Box::pin(connect_with_retry(
            &settings.connect,
            settings.session_timeout,
            settings.guard.access(),
            self.session,
        ));
        loop {
            tokio::select! {
                client = &mut attempt => return Some(client),
                command = self.commands.recv() => match command {
                    None => return None,
                    Some(Command::Register { path, node, ack }) => {
                        self.registrations.insert(path.clone(), node);
                        waiting.push((path, ack));
                    }
                    Some(Command::Deregister { path, ack }) => {
                        self.withdraw(&path, waiting);
                        let _ = ack.send(Ok(()));
                    }
                    Some(Command::Follow { path, legacy, instances, listed }) => {
                        self.follow(path, legacy, instances, listed);
                    }
                },
            }
        }
    }

    /// Stops keeping the node at `path`. Registrations of it still waiting in `waiting` are
    /// answered with an error, never left to be acknowledged later: no node will be made for
    /// them.
    fn withdraw(&mut self, path: &str, waiting: &mut Vec<(String, Ack)>) {
        self.forget(path, waiting, || {
            RegistryError::Unavailable(format!(
                "the registration of {path} was withdrawn (deregistered) before its node was created"
            ))
        });
    }

    /// Stops keeping the node at `path`, and answers its registrations still waiting in
    /// `waiting` with `error()`. Being the only place a registration is removed, it keeps
    /// every path in `waiting` registered, which [`Supervisor::ensure_all`] relies on: it
    /// acknowledges what did not fail.
    fn forget(
        &mut self,
        path: &str,
        waiting: &mut Vec<(String, Ack)>,
        error: impl Fn() -> RegistryError,
    ) {
        self.registrations.remove(path);
        let (forgotten, still): (Vec<_>, Vec<_>) = std::mem::take(waiting)
            .into_iter()
            .partition(|(p, _)| p == path);
        *waiting = still;
        for (_, ack) in forgotten {
            let _ = ack.send(Err(error()));
        }
    }

    /// Makes sure every registered node exists (see [`ensure_missing`]), and answers the
    /// waiting registrations: acknowledged once their node exists, refused at once when
    /// ZooKeeper or the guard refuses it ([`RegistryError::Denied`]: waiting would not help);
    /// the others go on waiting.
    async fn ensure_all(&mut self, client: &Client, waiting: &mut Vec<(String, Ack)>) {
        let guard = &self.settings.guard;
        let Some(failed) = ensure_missing(client, &self.registrations, guard).await else {
            return;
        };
        let mut failing = HashSet::new();
        for (path, e) in failed {
            match e {
                RegistryError::Denied(why) if waiting.iter().any(|(p, _)| *p == path) => {
                    tracing::warn!(%path, "registration refused: {why}");
                    self.forget(&path, waiting, || RegistryError::Denied(why.clone()));
                }
                e => {
                    tracing::warn!(%path, "cannot register yet: {e}");
                    failing.insert(path);
                }
            }
        }
        let (done, still): (Vec<_>, Vec<_>) = std::mem::take(waiting)
            .into_iter()
            .partition(|(path, _)| !failing.contains(path));
        *waiting = still;
        for (_, ack) in done {
            let _ = ack.send(Ok(()));
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
        self.ensure_all(&client, &mut waiting).await;

        let mut state = client.state_watcher();
        let mut recheck = tokio::time::interval(
            (self.settings.session_timeout / 4).max(Duration::from_millis(500)),
        );
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
                _ = recheck.tick(), if connected => self.ensure_all(&client, &mut waiting).await,
            }
        }
        self.session.send_replace(Session::connecting());
        Ended::SessionLost
    }

    /// Follows a change of the session's state (`connected` tells whether it is connected
    /// now); `false` once the session has ended.
    async fn on_state(
        &mut self,
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
                self.ensure_all(client, waiting).await;
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
        if let Some(node) = self.registrations.get(&path) {
            if connected {
                if let Err(e) = ensure_node(client, &path, node, &self.settings.guard).await {
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
            Command::Register { path, node, ack } => {
                arm_watch(client, &path, fired_tx);
                match ensure_node(client, &path, &node, &self.settings.guard).await {
                    Ok(()) => {
                        let _ = ack.send(Ok(()));
                    }
                    // Refused: not kept (the watch just armed fires at most once, unheeded).
                    Err(e @ RegistryError::Denied(_)) => {
                        let _ = ack.send(Err(e));
                        return;
                    }
                    // Acknowledged once the node exists: a connection hiccup only
                    // delays it (the caller bounds the wait).
                    Err(e) => {
                        tracing::debug!(%path, "cannot register yet: {e}");
                        waiting.push((path.clone(), ack));
                    }
                }
                self.registrations.insert(path, node);
            }
            Command::Deregister { path, ack } => {
                self.withdraw(&path, waiting);
                let _ = ack.send(delete_own(client, &path).await);
            }
            Command::Follow {
                path,
                legacy,
                instances,
                listed,
            } => self.follow(path, legacy, instances, listed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::zookeeper::access::Guard;
    use crate::registry::zookeeper::ZkAccess;
    use tokio::sync::oneshot;
    use tokio::sync::oneshot::error::TryRecvError;

    /// A bound on every wait: the tests wait for conditions, never for a fixed time.
    const BOUND: Duration = Duration::from_secs(10);

    fn register(path: &str) -> (Command, oneshot::Receiver<Result<(), RegistryError>>) {
        let (ack, done) = oneshot::channel();
        let node = Node {
            data: b"instance".to_vec(),
            shared: false,
        };
        let path = path.to_owned();
        (Command::Register { path, node, ack }, done)
    }

    fn is_withdrawn(answer: &Result<Result<(), RegistryError>, TryRecvError>) -> bool {
        matches!(answer, Ok(Err(RegistryError::Unavailable(m))) if m.contains("withdrawn"))
    }

    fn is_waiting(answer: &Result<Result<(), RegistryError>, TryRecvError>) -> bool {
        matches!(answer, Err(TryRecvError::Empty))
    }

    fn settings(connect: &str) -> Settings {
        Settings::new(
            connect.to_owned(),
            Duration::from_secs(10),
            Guard::new(ZkAccess::open(), "/mprpc".to_owned()),
        )
    }

    /// A register that is still waiting for the session when its path is deregistered gets an
    /// error then, and is not acknowledged later as if its node had been made.
    #[tokio::test]
    async fn deregistering_while_connecting_answers_the_waiting_register() {
        // Accepts connections and never answers: the supervisor stays in its connect phase.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = silent.local_addr().unwrap().to_string();
        let (commands, rx) = mpsc::unbounded_channel();
        let (session, _) = watch::channel(Session::connecting());
        let supervisor = tokio::spawn(async move {
            let stop = CancellationToken::new();
            supervise(&settings(&connect), rx, &session, &stop)
                .await
                .is_none()
        });

        let path = "/mprpc/svc/providers/127.0.0.1:1";
        let (command, mut registered) = register(path);
        commands.send(command).unwrap();
        let (other, mut other_registered) = register("/mprpc/svc/providers/127.0.0.1:2");
        commands.send(other).unwrap();
        let (ack, deregistered) = oneshot::channel();
        let deregister = Command::Deregister {
            path: path.to_owned(),
            ack,
        };
        commands.send(deregister).unwrap();
        let answer = tokio::time::timeout(BOUND, deregistered).await;
        assert!(matches!(answer, Ok(Ok(Ok(())))), "{answer:?}");

        // Commands are carried out in order: the register was answered before the deregister.
        let answer = registered.try_recv();
        assert!(is_withdrawn(&answer), "{answer:?}");
        // The other registration still waits for the session.
        let answer = other_registered.try_recv();
        assert!(is_waiting(&answer), "{answer:?}");

        drop(commands);
        let ended = tokio::time::timeout(BOUND, supervisor).await;
        assert!(
            matches!(ended, Ok(Ok(true))),
            "no session to close: {ended:?}"
        );
        drop(silent);
    }

    /// The same on an established session: `withdraw` answers every waiting register of the
    /// path (there may be several) and leaves the others waiting.
    #[tokio::test]
    async fn withdraw_answers_only_the_registrations_of_its_path() {
        let (_commands, rx) = mpsc::unbounded_channel();
        let (session, _) = watch::channel(Session::connecting());
        let stop = CancellationToken::new();
        let settings = settings("127.0.0.1:1");
        let mut supervisor = Supervisor {
            settings: &settings,
            commands: rx,
            session: &session,
            stop: &stop,
            registrations: HashMap::new(),
        };
        let mut waiting = Vec::new();
        let mut answers = Vec::new();
        for path in ["/a", "/b", "/a"] {
            let (ack, done) = oneshot::channel();
            let node = Node {
                data: Vec::new(),
                shared: false,
            };
            supervisor.registrations.insert(path.to_owned(), node);
            waiting.push((path.to_owned(), ack));
            answers.push(done);
        }

        supervisor.withdraw("/a", &mut waiting);

        assert!(!supervisor.registrations.contains_key("/a"));
        assert!(supervisor.registrations.contains_key("/b"));
        let left: Vec<&str> = waiting.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(left, ["/b"]);
        let answers: Vec<_> = answers.iter_mut().map(|a| a.try_recv()).collect();
        assert!(is_withdrawn(&answers[0]), "{:?}", answers[0]);
        assert!(is_waiting(&answers[1]), "{:?}", answers[1]);
        assert!(is_withdrawn(&answers[2]), "{:?}", answers[2]);
    }
}
