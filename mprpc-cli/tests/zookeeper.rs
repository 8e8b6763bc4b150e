//! The `mprpc` command with a ZooKeeper registry: `list` shows registered providers, `call`
//! and `describe` find them, and `watch` sees them come and go. Each test starts a private
//! ZooKeeper (`scripts/zk.sh`) and stops it when it ends.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cli, cli_ok, command, echo_server, registered_examples_provider, ConfigFile};
use mprpc::registry::{Registry, ZkRegistry};
use mprpc::server::spawn_local_registered;
use mprpc_tests::zk::ZkServer;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

fn registry(zk: &ZkServer) -> Arc<dyn Registry> {
    Arc::new(
        ZkRegistry::new(
            zk.connect.clone(),
            "/mprpc".to_owned(),
            Duration::from_secs(4),
        )
        .expect("a ZooKeeper registry"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_describe_and_call_through_zookeeper() {
    let zk = ZkServer::standalone();
    let config = ConfigFile::zookeeper(&zk.connect);
    let (addr, provider) = registered_examples_provider(registry(&zk)).await;
    let addr = addr.to_string();

    // The provider is registered once spawn_local_registered returns; a fresh session may
    // still take a moment to see it, so look a few times.
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let run = cli_ok(&["-i", config.arg(), "list"]).await;
        if run.stdout.matches(&addr).count() == 2 || Instant::now() > deadline {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for service in ["fixbug.FriendServiceRpc", "fixbug.UserServiceRpc"] {
        let row: Vec<&str> = run
            .stdout
            .lines()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("no row for {service}:\n{run}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            row[..4],
            [service, &addr, "100", env!("CARGO_PKG_VERSION")],
            "{run}"
        );
        // Uptime in seconds, freshly registered: "0s", "1s", ...
        assert!(row[4].ends_with('s'), "{run}");
    }
    // The reflection service is not in the registry.
    assert!(!run.stdout.contains("mprpc.reflection"), "{run}");

    let run = cli_ok(&["-i", config.arg(), "describe", "fixbug.UserServiceRpc"]).await;
    assert!(
        run.stdout
            .contains("rpc Login(fixbug.LoginRequest) returns (fixbug.LoginResponse) {"),
        "{run}"
    );
    assert!(run.stdout.contains(&format!("(from {addr})")), "{run}");

    let run = cli_ok(&[
        "-i",
        config.arg(),
        "call",
        "fixbug.FriendServiceRpc/GetFriendsList",
        "-d",
        r#"{"userid": 1000}"#,
    ])
    .await;
    let reply: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reply["friends"].as_array().map(Vec::len), Some(3), "{run}");

    // A service nobody registered: Unavailable, as a typed client would see.
    let run = cli(&["-i", config.arg(), "call", "fixbug.Nobody/Call"]).await;
    assert_eq!(run.code, Some(24), "{run}");

    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_exits_2() {
    // A port nothing listens on: bind one, note it, and close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = ConfigFile::zookeeper(&format!("127.0.0.1:{port}"));
    let run = cli(&["-i", config.arg(), "list"]).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.starts_with("error: "), "{run}");
}

/// Reads lines until one contains `needle`; fails after `limit`.
async fn line_containing(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    let limit = Duration::from_secs(30);
    tokio::time::timeout(limit, async {
        while let Some(line) = lines.next_line().await.expect("read the output") {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("the output ended before a line with `{needle}`");
    })
    .await
    .unwrap_or_else(|_| panic!("no line with `{needle}` within {limit:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_providers_joining_and_leaving() {
    let zk = ZkServer::standalone();
    let config = ConfigFile::zookeeper(&zk.connect);
    let mut child = command(&[
        "-i",
        config.arg(),
        "watch",
        "mprpc.test.Echo",
        "--count",
        "2",
    ])
    .spawn()
    .expect("start mprpc watch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The watch is in place once the current list is printed.
    let header = line_containing(&mut lines, "mprpc.test.Echo: ").await;
    assert!(header.ends_with("mprpc.test.Echo: 0 providers"), "{header}");

    let (addr, provider) = spawn_local_registered(echo_server(), registry(&zk))
        .await
        .expect("the echo provider starts and registers");
    let joined = line_containing(&mut lines, &format!("+ {addr} ")).await;
    assert!(
        joined.ends_with(&format!(
            "+ {addr} (weight 100, version {})",
            env!("CARGO_PKG_VERSION")
        )),
        "{joined}"
    );
    // Each line starts with an RFC 3339 time.
    let time = joined.split_whitespace().next().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{joined}");

    provider.shutdown().await.unwrap();
    let left = line_containing(&mut lines, &format!("- {addr}")).await;
    assert!(left.ends_with(&format!("- {addr}")), "{left}");

    // Two changes seen: it exits on its own.
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("watch exits after --count changes")
        .unwrap();
    assert!(status.success(), "{status}");
}
