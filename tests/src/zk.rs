//! A private ZooKeeper server (or 3-node ensemble) per test, started with `scripts/zk.sh` on
//! free ports and a temporary directory, and stopped (every process gone) when dropped; and
//! [`RegistryWatch`], which records a consumer's session and list over time.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mprpc::registry::zookeeper::SessionStatus;
use mprpc::registry::{Registry, ZkRegistry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running ZooKeeper started for one test.
#[derive(Debug)]
pub struct ZkServer {
    dir: String,
    /// The connect string, `127.0.0.1:p1[,127.0.0.1:p2,...]`.
    pub connect: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("zk.sh")
}

fn run(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .expect("run scripts/zk.sh");
    assert!(
        output.status.success(),
        "scripts/zk.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl ZkServer {
    /// Starts a standalone server.
    pub fn standalone() -> ZkServer {
        ZkServer::start(1)
    }

    /// Starts a 3-node ensemble.
    pub fn ensemble() -> ZkServer {
        ZkServer::start(3)
    }

    fn start(nodes: usize) -> ZkServer {
        let out = run(&["start", "--nodes", &nodes.to_string()]);
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {out}"))
                .to_owned()
        };
        ZkServer {
            dir: value("ZK_DIR="),
            connect: value("ZK_CONNECT="),
        }
    }

    /// Kills node `n` (1-based) with SIGKILL.
    pub fn kill_node(&self, n: usize) {
        run(&["kill-node", &self.dir, &n.to_string()]);
    }

    /// Starts node `n` again and waits until it serves.
    pub fn start_node(&self, n: usize) {
        run(&["start-node", &self.dir, &n.to_string()]);
    }

    /// Kills the nodes `nodes` (1-based) with SIGKILL, and waits until every one is gone.
    pub fn kill_nodes(&self, nodes: &[usize]) {
        let nodes: Vec<String> = nodes.iter().map(usize::to_string).collect();
        let mut args = vec!["kill-node", self.dir.as_str()];
        args.extend(nodes.iter().map(String::as_str));
        run(&args);
    }

    /// Starts the nodes `nodes` again, all at once, and waits until every one serves: the
    /// nodes of an ensemble left without a quorum serve only once enough of them are up.
    pub fn start_nodes(&self, nodes: &[usize]) {
        let nodes: Vec<String> = nodes.iter().map(usize::to_string).collect();
        let mut args = vec!["start-node", self.dir.as_str()];
        args.extend(nodes.iter().map(String::as_str));
        run(&args);
    }

    /// Runs one command of ZooKeeper's own command-line client, `zkCli.sh` (from Debian's
    /// `zookeeper` package, through `scripts/zk.sh cli`), anonymously: a client that mprpc's
    /// code did not write, with no identity. Returns whether it succeeded, and everything it
    /// printed. Bounded by `ZK_CLI_TIMEOUT` (30 s).
    pub fn cli(&self, command: &[&str]) -> (bool, String) {
        let output = Command::new("bash")
            .arg(script())
            .args(["cli", &self.dir])
            .args(command)
            .output()
            .expect("run scripts/zk.sh cli");
        let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
        printed.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), printed)
    }

    /// The index of the current leader of an ensemble.
    pub fn leader(&self) -> usize {
        run(&["leader", &self.dir, "--wait", "10"])
            .trim()
            .parse()
            .expect("leader index")
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.dir])
            .output();
    }
}

/// A registry's session state and its list of one service over time, sampled every few
/// milliseconds until dropped.
#[derive(Debug)]
pub struct RegistryWatch {
    samples: Arc<Mutex<Vec<(Instant, SessionStatus, usize)>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RegistryWatch {
    /// Starts sampling `registry` and its list of `service`.
    pub fn start(registry: &ZkRegistry, service: &str) -> RegistryWatch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (registry, recorded, stopped) = (registry.clone(), samples.clone(), stop.clone());
        let service = service.to_owned();
        let task = tokio::spawn(async move {
            let list = registry.discover(&service).await.expect("the providers");
            let mut last = None;
            // Until the watch is dropped.
            while !stopped.is_cancelled() {
                let now = (registry.status(), list.borrow().len());
                if last != Some(now) {
                    last = Some(now);
                    lock(&recorded).push((Instant::now(), now.0, now.1));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        RegistryWatch {
            samples,
            stop,
            task,
        }
    }

    /// If the session was lost at or after `since` and is connected now: when it was lost and
    /// when it first came back, both counted from `since`.
    pub fn recovered_since(&self, since: Instant) -> Option<(Duration, Duration)> {
        let samples = lock(&self.samples);
        let before = samples.iter().rev().find(|(t, _, _)| *t <= since);
        let lost = match before {
            Some((_, status, _)) if *status != SessionStatus::Connected => since,
            _ => {
                samples
                    .iter()
                    .find(|(t, s, _)| *t > since && *s != SessionStatus::Connected)?
                    .0
            }
        };
        let connected_now = samples.last().map(|(_, s, _)| *s) == Some(SessionStatus::Connected);
        let back = samples
            .iter()
            .find(|(t, s, _)| *t > lost && *s == SessionStatus::Connected)?
            .0;
        connected_now.then(|| (lost - since, back - since))
    }

    /// The sizes of the list from `since` on, each change once.
    pub fn list_sizes(&self, since: Instant) -> Vec<usize> {
        let samples = lock(&self.samples);
        let first = samples
            .iter()
            .rposition(|(t, _, _)| *t <= since)
            .unwrap_or(0);
        let mut sizes: Vec<usize> = Vec::new();
        for (_, _, n) in &samples[first..] {
            if sizes.last() != Some(n) {
                sizes.push(*n);
            }
        }
        sizes
    }
}

impl Drop for RegistryWatch {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
