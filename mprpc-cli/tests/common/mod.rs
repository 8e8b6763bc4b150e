//! Shared pieces of the `mprpc` command's tests: in-process providers, running the real
//! binary with a time limit, and config files in a temporary directory.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mprpc::config::ServerConfig;
use mprpc::registry::Registry;
use mprpc::server::{spawn_local, spawn_local_registered, LocalServer, Server};
use mprpc_examples::fixbug::friend_service_rpc_server::FriendServiceRpcServer;
use mprpc_examples::fixbug::user_service_rpc_server::UserServiceRpcServer;
use mprpc_examples::services::{FriendService, UserService};
use mprpc_tests::{EchoServer, EchoService};

/// The binary under test.
pub(crate) const MPRPC: &str = env!("CARGO_BIN_EXE_mprpc");

/// The longest any one run of the binary may take before the test fails (and kills it).
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A provider of both example services, not registered anywhere.
pub(crate) async fn examples_provider() -> (SocketAddr, LocalServer) {
    spawn_local(examples_server())
        .await
        .expect("the example provider starts")
}

/// A provider of both example services, registered in `registry`.
pub(crate) async fn registered_examples_provider(
    registry: Arc<dyn Registry>,
) -> (SocketAddr, LocalServer) {
    spawn_local_registered(examples_server(), registry)
        .await
        .expect("the example provider starts and registers")
}

fn examples_server() -> Server {
    Server::new(ServerConfig::default())
        .add_service(UserServiceRpcServer::new(UserService::default()))
        .add_service(FriendServiceRpcServer::new(FriendService))
}

/// A provider of the test service `mprpc.test.Echo`.
pub(crate) async fn echo_provider() -> (SocketAddr, LocalServer) {
    spawn_local(echo_server())
        .await
        .expect("the echo provider starts")
}

/// The test service's server.
pub(crate) fn echo_server() -> Server {
    Server::new(ServerConfig::default()).add_service(EchoServer::new(EchoService::named("echo")))
}

/// A command running the binary, killed if the test drops it.
pub(crate) fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(MPRPC);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What one run printed and how it ended.
pub(crate) struct Run {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary to the end (at most [`RUN_LIMIT`]).
pub(crate) async fn cli(args: &[&str]) -> Run {
    let output: Output = tokio::time::timeout(RUN_LIMIT, command(args).output())
        .await
        .unwrap_or_else(|_| panic!("mprpc {args:?} did not finish within {RUN_LIMIT:?}"))
        .expect("mprpc runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary and checks that it succeeded.
pub(crate) async fn cli_ok(args: &[&str]) -> Run {
    let run = cli(args).await;
    assert_eq!(run.code, Some(0), "mprpc {args:?} failed:\n{run}");
    run
}

/// A temporary directory holding a config file.
pub(crate) struct ConfigFile {
    /// Removed when dropped.
    _dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
}

impl ConfigFile {
    /// A config file with `text`.
    pub(crate) fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("mprpc.toml");
        std::fs::write(&path, text).expect("write the config file");
        ConfigFile { _dir: dir, path }
    }

    /// A config naming a ZooKeeper registry at `connect`.
    pub(crate) fn zookeeper(connect: &str) -> ConfigFile {
        ConfigFile::new(&format!(
            "[registry]\nkind = \"zookeeper\"\nconnect = \"{connect}\"\nroot = \"/mprpc\"\n\
             session_timeout = \"4s\"\n"
        ))
    }

    /// The path, as an argument.
    pub(crate) fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}
