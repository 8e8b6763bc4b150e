//! The original C++ mprpc's ZooKeeper layout kept by mprpc providers (`legacy_layout`):
//! `/{Service}/{Method}` ephemeral nodes holding `ip:port`, seen by ZooKeeper's own
//! `zkCli.sh`; shared by two providers (the second takes the node when the first leaves);
//! gone on a graceful shutdown; back after the provider's session expired (SIGSTOP past it).

use std::time::Duration;

use mprpc_tests::process::ProviderProcess;
use mprpc_tests::zk::ZkServer;
use nix::sys::signal::Signal;
use zookeeper_client::{Client, Error as ZkError};

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");
const BOUND: Duration = Duration::from_secs(30);

async fn client(zk: &ZkServer) -> Client {
    let connector = Client::connector().with_session_timeout(Duration::from_secs(5));
    tokio::time::timeout(BOUND, connector.connect(&zk.connect))
        .await
        .expect("connected in time")
        .expect("connect to ZooKeeper")
}

/// The data of `path`, or `None` when there is no such node.
async fn data(client: &Client, path: &str) -> Option<(String, i64)> {
    match client.get_data(path).await {
        Ok((data, stat)) => Some((
            String::from_utf8_lossy(&data).into_owned(),
            stat.ephemeral_owner,
        )),
        Err(ZkError::NoNode) => None,
        Err(e) => panic!("cannot read {path}: {e}"),
    }
}

/// Waits until `path` holds `expected` (`None`: until it is gone).
async fn wait_for(client: &Client, path: &str, expected: Option<&str>) {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let found = data(client, path).await;
        if found.as_ref().map(|(d, _)| d.as_str()) == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} holds {found:?}, not {expected:?}, after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn provider(name: &str, zk: &ZkServer) -> ProviderProcess {
    let args = [
        name,
        "--quiet",
        "--zk",
        &zk.connect,
        "--session-timeout-ms",
        "2000",
        "--legacy-layout",
    ];
    ProviderProcess::start(PROVIDER, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_keep_the_originals_nodes_through_shutdown_and_session_loss() {
    let zk = ZkServer::standalone();
    let zk_client = client(&zk).await;
    let mut a = provider("a", &zk);
    for method in ["Echo", "Read"] {
        wait_for(&zk_client, &format!("/Echo/{method}"), Some(&a.address)).await;
    }
    let (_, owner) = data(&zk_client, "/Echo/Echo").await.unwrap();
    assert_ne!(owner, 0, "an ephemeral node");
    let (_, service) = zk_client.get_data("/Echo").await.unwrap();
    assert_eq!(
        service.ephemeral_owner, 0,
        "the service's node is persistent"
    );
    // ZooKeeper's own client sees the original's layout: the bare address, nothing else.
    let (ok, printed) = zk.cli(&["get", "/Echo/Echo"]);
    assert!(
        ok && printed.lines().any(|l| l.trim() == a.address),
        "zkCli.sh get: {printed}"
    );

    // A second provider leaves the node to the first, and takes it when the first leaves.
    let b = provider("b", &zk);
    let own = format!("/mprpc/mprpc.test.Echo/providers/{}", b.address);
    let deadline = tokio::time::Instant::now() + BOUND;
    while data(&zk_client, &own).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{own} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(data(&zk_client, "/Echo/Echo").await.unwrap().0, a.address);
    a.signal(Signal::SIGTERM);
    wait_for(&zk_client, "/Echo/Echo", Some(&b.address)).await;
    assert!(a.wait_exit(BOUND).is_some_and(|s| s.success()));

    // Frozen past its session: ZooKeeper drops the nodes; thawed, the provider puts them back.
    b.signal(Signal::SIGSTOP);
    wait_for(&zk_client, "/Echo/Echo", None).await;
    b.signal(Signal::SIGCONT);
    wait_for(&zk_client, "/Echo/Echo", Some(&b.address)).await;
    wait_for(&zk_client, "/Echo/Read", Some(&b.address)).await;

    // Stopped gracefully: gone at once, not a session timeout later.
    let mut b = b;
    b.signal(Signal::SIGTERM);
    assert!(b.wait_exit(BOUND).is_some_and(|s| s.success()));
    assert_eq!(data(&zk_client, "/Echo/Echo").await, None);
    assert_eq!(data(&zk_client, "/Echo/Read").await, None);
}
