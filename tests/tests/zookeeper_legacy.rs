//! The original C++ mprpc's ZooKeeper layout kept by mprpc providers (`legacy_layout`):
//! `/{Service}/{Method}` ephemeral nodes holding `ip:port`, seen by ZooKeeper's own
//! `zkCli.sh`; shared by two providers (the second takes the node when the first leaves);
//! gone on a graceful shutdown; back after the provider's session expired (SIGSTOP past it).
//! And a consumer that finds providers in either layout: it calls one of the original's with
//! the original's protocol (a connection per call), and mprpc's own with mprpc's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, ServerConfig};
use mprpc::registry::{Registry, ZkRegistry};
use mprpc::server::{spawn_local_registered, Server};
use mprpc::Code;
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::zk::ZkServer;
use mprpc_tests::{EchoClient, EchoRequest, EchoResponse, EchoServer, EchoService};
use nix::sys::signal::Signal;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

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

/// A provider of the original C++ mprpc, written from its wire description: one call per
/// connection (a little-endian header size, an `RpcHeader`, the arguments), answered with the
/// bare `EchoResponse` and a half-close. Registers itself as the original does, at
/// `/Echo/Echo` (ephemeral, `ip:port`). Counts the connections it served.
async fn original_provider(
    zk: &ZkServer,
) -> (Client, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    use mprpc::protocol::legacy::RpcHeader;
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let size = conn.read_u32_le().await.unwrap() as usize;
                let mut header = vec![0; size];
                conn.read_exact(&mut header).await.unwrap();
                let header = RpcHeader::decode(&header[..]).unwrap();
                assert_eq!(
                    (&header.service_name[..], &header.method_name[..]),
                    (&b"Echo"[..], &b"Echo"[..])
                );
                let mut args = vec![0; header.args_size as usize];
                conn.read_exact(&mut args).await.unwrap();
                let request = EchoRequest::decode(&args[..]).unwrap();
                let reply = EchoResponse {
                    payload: request.payload,
                    served_by: "original".to_owned(),
                    ..EchoResponse::default()
                };
                conn.write_all(&reply.encode_to_vec()).await.unwrap();
                conn.shutdown().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let registrar = client(zk).await;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    match registrar.create("/Echo", &[], &persistent).await {
        Ok(_) | Err(ZkError::NodeExists) => {}
        Err(e) => panic!("create /Echo: {e}"),
    }
    registrar
        .create("/Echo/Echo", address.as_bytes(), &ephemeral)
        .await
        .unwrap();
    (registrar, served, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_calls_the_originals_providers_and_its_own_alike() {
    let zk = ZkServer::standalone();
    let (registrar, served, original) = original_provider(&zk).await;
    let consumers = Arc::new(
        ZkRegistry::new(
            zk.connect.clone(),
            "/mprpc".to_owned(),
            Duration::from_secs(4),
        )
        .unwrap()
        .with_legacy_layout(true),
    );
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    for i in 0..5u8 {
        let reply = client
            .echo(EchoRequest {
                payload: vec![i; 10],
                ..EchoRequest::default()
            })
            .await
            .expect("a call to the original's provider");
        assert_eq!(
            (reply.payload, reply.served_by.as_str()),
            (vec![i; 10], "original")
        );
    }
    assert_eq!(served.load(Ordering::SeqCst), 5, "one connection per call");
    // A streaming call cannot go to it, and says why.
    let status = client
        .subscribe(mprpc_tests::StreamRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");

    // An mprpc provider joins (in mprpc's layout only): calls go to both.
    let native = Server::new(ServerConfig::default())
        .add_service(EchoServer::new(EchoService::named("native")));
    let registry: Arc<dyn Registry> = Arc::new(
        ZkRegistry::new(
            zk.connect.clone(),
            "/mprpc".to_owned(),
            Duration::from_secs(4),
        )
        .unwrap(),
    );
    let (_, native) = spawn_local_registered(native, registry).await.unwrap();
    let instances = consumers.discover("mprpc.test.Echo").await.unwrap();
    mprpc_tests::wait_until("both providers listed", BOUND, || {
        instances.borrow().len() == 2
    })
    .await;
    let mut by = std::collections::HashMap::<String, usize>::new();
    for _ in 0..20 {
        let reply = client.echo(EchoRequest::default()).await.expect("a call");
        *by.entry(reply.served_by).or_default() += 1;
    }
    assert_eq!(by.len(), 2, "both answered: {by:?}");

    // The original's provider leaves ZooKeeper: calls go to the mprpc provider only.
    registrar.delete("/Echo/Echo", None).await.unwrap();
    mprpc_tests::wait_until("one provider listed", BOUND, || {
        instances.borrow().len() == 1
    })
    .await;
    let before = served.load(Ordering::SeqCst);
    for _ in 0..10 {
        let reply = client.echo(EchoRequest::default()).await.expect("a call");
        assert_eq!(reply.served_by, "native");
    }
    assert_eq!(served.load(Ordering::SeqCst), before);
    native.shutdown().await.unwrap();
    original.abort();
}
