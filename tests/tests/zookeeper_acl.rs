//! A protected ZooKeeper registry against a real ZooKeeper: a provider authenticates with
//! ZooKeeper's digest scheme and owns the nodes it makes; strangers (ZooKeeper's own
//! `zkCli.sh`, and raw client sessions without the identity or with a wrong password) can
//! neither create nor delete nor change anything under the root; a protected consumer refuses
//! provider nodes that anyone may change, with a clear warning and a counter, while other
//! calls go on; the password never shows in an error, a `Debug` or the logs.
//!
//! Every test starts its own ZooKeeper on free ports and stops it when it ends.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, RegistryConfig, ServerConfig, ZkAccessConfig};
use mprpc::metrics::Metrics;
use mprpc::registry::zookeeper::digest_id;
use mprpc::registry::{Instances, Registry, RegistryError, ServiceInstance, ZkAccess, ZkRegistry};
use mprpc::server::{spawn_local, spawn_local_registered, LocalServer, Server};
use mprpc_tests::logs::LogCapture;
use mprpc_tests::zk::ZkServer;
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Error as ZkError, Permission};

const SERVICE: &str = "mprpc.test.Echo";
/// A service whose `providers` node an administrator left open to all.
const OPEN_SERVICE: &str = "mprpc.test.Open";
const ROOT: &str = "/mprpc";
const USER: &str = "provider";
const PASSWORD: &str = "pr0vider-s3cret";
const WRONG_PASSWORD: &str = "wr0ng-s3cret";
/// A bound on every wait: the tests wait for conditions, never for a fixed time.
const BOUND: Duration = Duration::from_secs(10);

/// Everything logged so far (the capture, of every crate at debug level, starts on first
/// use).
fn logged() -> String {
    LogCapture::global("debug").text()
}

fn assert_no_password(text: &str) {
    for secret in [PASSWORD, WRONG_PASSWORD, "c0nsumer-s3cret"] {
        assert!(!text.contains(secret), "the password shows in: {text}");
    }
}

fn provider_identity() -> String {
    format!("{USER}:{PASSWORD}")
}

fn provider_access() -> ZkAccess {
    ZkAccess::with_identity(&provider_identity()).unwrap()
}

fn registry_at(zk: &ZkServer, root: &str, access: ZkAccess) -> Arc<ZkRegistry> {
    let session = Duration::from_secs(5);
    Arc::new(ZkRegistry::with_access(zk.connect.clone(), root.to_owned(), session, access).unwrap())
}

fn registry(zk: &ZkServer, access: ZkAccess) -> Arc<ZkRegistry> {
    registry_at(zk, ROOT, access)
}

async fn provider(name: &str, registry: Arc<ZkRegistry>) -> (String, LocalServer) {
    let server =
        Server::new(ServerConfig::default()).add_service(EchoServer::new(EchoService::named(name)));
    let (addr, handle) = spawn_local_registered(server, registry)
        .await
        .expect("provider starts and registers");
    (addr.to_string(), handle)
}

/// A raw `zookeeper-client` session, with the digest identity `auth` if given.
async fn raw(zk: &ZkServer, auth: Option<&str>) -> Client {
    let mut connector = Client::connector().with_session_timeout(Duration::from_secs(5));
    if let Some(auth) = auth {
        connector = connector.with_auth("digest", auth.as_bytes());
    }
    tokio::time::timeout(BOUND, connector.connect(&zk.connect))
        .await
        .expect("connected in time")
        .expect("connect to ZooKeeper")
}

fn addresses(rx: &Instances) -> Vec<String> {
    let mut list: Vec<String> = rx.borrow().iter().map(|i| i.address.clone()).collect();
    list.sort();
    list
}

async fn wait_for_list(rx: &Instances, what: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    mprpc_tests::wait_until(what, BOUND, || addresses(rx) == expected).await;
}

/// Who served `calls` calls.
async fn served_by(client: &EchoClient, calls: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..calls {
        let reply = client
            .echo(EchoRequest::default())
            .await
            .expect("call succeeds");
        *counts.entry(reply.served_by).or_default() += 1;
    }
    counts
}

fn refused(reason: &str) -> u64 {
    let snapshot = Metrics::global().snapshot();
    snapshot
        .registry_refused_nodes
        .get(reason)
        .copied()
        .unwrap_or(0)
}

/// The ACL mprpc gives its nodes: all to the provider identity, read to `readers`.
fn assert_provider_acl(acls: &[Acl], readers: &AuthId, path: &str) {
    let owner = AuthId::new("digest", &digest_id(USER, PASSWORD));
    let expected = [
        Acl::new(Permission::ALL, owner),
        Acl::new(Permission::READ, readers.clone()),
    ];
    assert!(
        acls.len() == 2 && expected.iter().all(|acl| acls.contains(acl)),
        "{path}: {acls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_can_neither_create_nor_delete_under_a_protected_root() {
    logged();
    let zk = ZkServer::standalone();
    let providers = registry(&zk, provider_access());
    let (addr, a) = provider("a", providers.clone()).await;
    let service_path = format!("{ROOT}/{SERVICE}");
    let providers_path = format!("{service_path}/providers");
    let node = format!("{providers_path}/{addr}");

    // A consumer with no identity of its own finds the provider and calls it.
    let consumers = registry(&zk, ZkAccess::open().protected(true));
    let rx = consumers.discover(SERVICE).await.unwrap();
    assert_eq!(addresses(&rx), [addr.as_str()]);
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    assert_eq!(
        served_by(&client, 10).await,
        HashMap::from([("a".into(), 10)])
    );

    // Every node mprpc made is the provider identity's; anyone may read it.
    let owner = raw(&zk, Some(&provider_identity())).await;
    for path in [ROOT, &service_path, &providers_path, &node] {
        let (acls, _) = owner.get_acl(path).await.unwrap();
        assert_provider_acl(&acls, &AuthId::anyone(), path);
    }
    let (_, before) = owner.get_data(&node).await.unwrap();

    // The stranger, as ZooKeeper's own client.
    let planted = format!("{providers_path}/10.9.9.9:1");
    let intruder = format!("{ROOT}/intruder.Service");
    let stranger_commands: [&[&str]; 5] = [
        &["delete", &node],
        &["create", &planted, "10.9.9.9:1"],
        &["create", &intruder],
        &["set", &node, "10.9.9.9:1"],
        &["setAcl", &providers_path, "world:anyone:cdrwa"],
    ];
    for command in stranger_commands {
        let (ok, printed) = zk.cli(command);
        assert!(
            !ok && printed.contains("Insufficient permission"),
            "zkCli.sh {command:?} was not refused: {printed}"
        );
    }

    // The stranger as a raw client session: anonymous, then with the wrong password.
    let wrong = format!("{USER}:{WRONG_PASSWORD}");
    for stranger in [raw(&zk, None).await, raw(&zk, Some(&wrong)).await] {
        let open_ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let refusals = [
            stranger.delete(&node, None).await,
            stranger
                .create(&planted, b"x", &open_ephemeral)
                .await
                .map(drop),
            stranger.create(&intruder, b"", &open).await.map(drop),
            stranger.set_data(&node, b"x", None).await.map(drop),
            stranger
                .set_acl(&providers_path, &Acls::anyone_all(), None)
                .await
                .map(drop),
            stranger.delete(&providers_path, None).await,
        ];
        for (i, refusal) in refusals.into_iter().enumerate() {
            assert_eq!(refusal, Err(ZkError::NoAuth), "operation {i}");
        }
    }

    // Nothing changed, and calls go on.
    let (_, after) = owner.get_data(&node).await.unwrap();
    assert_eq!((after.czxid, after.version), (before.czxid, before.version));
    assert_eq!(owner.list_children(ROOT).await.unwrap(), [SERVICE]);
    assert_eq!(owner.list_children(&providers_path).await.unwrap(), [addr]);
    assert_eq!(
        served_by(&client, 10).await,
        HashMap::from([("a".into(), 10)])
    );
    a.shutdown().await.unwrap();
    assert_no_password(&logged());
}

/// Plants provider nodes of `evil_addr` that anyone may change: in the protected spot, one the
/// provider identity made open to all (a mistake); in an unprotected spot an administrator set
/// up ([`OPEN_SERVICE`]), one a stranger planted with `zkCli.sh`, and one another stranger
/// made that nobody else may read. Returns the first node and the open spot.
async fn plant_open_nodes(zk: &ZkServer, evil_addr: &str, evil_node: &[u8]) -> (String, String) {
    let owner = raw(zk, Some(&provider_identity())).await;
    let open_node = format!("{ROOT}/{SERVICE}/providers/{evil_addr}");
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    owner.create(&open_node, evil_node, &open).await.unwrap();
    let open_path = format!("{ROOT}/{OPEN_SERVICE}/providers");
    owner.mkdir(&open_path, &open).await.unwrap();
    let (ok, printed) = zk.cli(&["create", &format!("{open_path}/{evil_addr}"), evil_addr]);
    assert!(ok, "the spot is open to strangers: {printed}");
    let stranger = raw(zk, Some("stranger:whatever")).await;
    let private = CreateMode::Persistent.with_acls(Acls::creator_all());
    let unreadable = format!("{open_path}/10.9.9.9:1");
    stranger
        .create(&unreadable, b"10.9.9.9:1", &private)
        .await
        .unwrap();
    (open_node, open_path)
}

/// Each refusal was a warning naming the node and the reason.
fn assert_refusals_logged(open_path: &str, open_node: &str) {
    let logs = logged();
    for reason in [
        "its ACL lets anyone change it (world:anyone may WRITE|CREATE|DELETE|ADMIN)",
        &format!("{open_path} lets anyone change it"),
        "anyone could have made this node",
        "this process may not read it (NoAuth)",
    ] {
        assert!(logs.contains(reason), "no warning with `{reason}`");
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("refusing a provider node") && l.contains(open_node)),
        "the warning names the node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_consumer_refuses_nodes_anyone_may_change_and_other_calls_go_on() {
    logged();
    let zk = ZkServer::standalone();
    let providers = registry(&zk, provider_access());
    let (a_addr, a) = provider("a", providers.clone()).await;
    // A server that no consumer should call.
    let evil_server = Server::new(ServerConfig::default())
        .add_service(EchoServer::new(EchoService::named("evil")));
    let (evil_addr, evil) = spawn_local(evil_server).await.unwrap();
    let evil_addr = evil_addr.to_string();
    let evil_node = serde_json::to_vec(&ServiceInstance::new(SERVICE, evil_addr.clone())).unwrap();

    let (open_node, open_path) = plant_open_nodes(&zk, &evil_addr, &evil_node).await;
    let before = ["world_writable", "open_parent", "unreadable"].map(refused);
    let consumers = registry(&zk, ZkAccess::open().protected(true));
    let rx = consumers.discover(SERVICE).await.unwrap();
    assert_eq!(
        addresses(&rx),
        [a_addr.as_str()],
        "the open node is refused"
    );
    assert!(refused("world_writable") > before[0]);
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    assert_eq!(
        served_by(&client, 20).await,
        HashMap::from([("a".into(), 20)])
    );

    // Anyone may rewrite the open node (which is why it is refused): it stays refused, and a
    // provider registered after that is picked up.
    let anonymous = raw(&zk, None).await;
    anonymous
        .set_data(&open_node, &evil_node, None)
        .await
        .unwrap();
    let (b_addr, b) = provider("b", providers.clone()).await;
    wait_for_list(&rx, "a and b, not the open node", &[&a_addr, &b_addr]).await;
    let counts = served_by(&client, 20).await;
    assert_eq!(counts, HashMap::from([("a".into(), 10), ("b".into(), 10)]));

    // Under the open spot every node is refused, whatever its ACL.
    let open_rx = consumers.discover(OPEN_SERVICE).await.unwrap();
    assert_eq!(addresses(&open_rx), Vec::<String>::new());
    assert!(refused("open_parent") > before[1]);
    assert!(refused("unreadable") > before[2]);
    assert_refusals_logged(&open_path, &open_node);

    // A consumer that is not protected takes the open nodes as before; the unreadable one is
    // skipped without keeping it from reading the others.
    let unprotected = registry(&zk, ZkAccess::open());
    let rx = unprotected.discover(OPEN_SERVICE).await.unwrap();
    assert_eq!(addresses(&rx), [evil_addr.as_str()]);
    let rx = unprotected.discover(SERVICE).await.unwrap();
    assert_eq!(addresses(&rx).len(), 3);

    // Calls of the protected consumer were never harmed.
    let counts = served_by(&client, 20).await;
    assert_eq!(counts, HashMap::from([("a".into(), 10), ("b".into(), 10)]));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    evil.shutdown().await.unwrap();
    assert_no_password(&logged());
}

/// Registers one instance of `service` at `address`; the error if refused.
async fn register(registry: &dyn Registry, service: &str, address: &str) -> Option<RegistryError> {
    let instance = ServiceInstance::new(service, address);
    let started = Instant::now();
    let outcome = registry.register(instance).await;
    assert!(
        started.elapsed() < BOUND,
        "answered in {:?}",
        started.elapsed()
    );
    match outcome {
        Ok(registration) => {
            registration.deregister().await.unwrap();
            None
        }
        Err(e) => Some(e),
    }
}

/// The identity from a file, through the config: the provider's own, so it may register.
/// Neither config's `Debug` shows the password.
async fn the_identity_comes_from_a_file(zk: &ZkServer) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{}", provider_identity()).unwrap();
    let config = RegistryConfig::Zookeeper {
        connect: zk.connect.clone(),
        root: ROOT.to_owned(),
        session_timeout: Duration::from_secs(5),
        access: ZkAccessConfig {
            auth_file: Some(file.path().to_owned()),
            ..ZkAccessConfig::default()
        },
        legacy_layout: false,
    };
    let from_file = mprpc::registry::from_config(&config).unwrap();
    assert!(register(&*from_file, SERVICE, "127.0.0.1:2")
        .await
        .is_none());
    let inline = RegistryConfig::Zookeeper {
        connect: zk.connect.clone(),
        root: ROOT.to_owned(),
        session_timeout: Duration::from_secs(5),
        access: ZkAccessConfig {
            auth: Some(provider_identity()),
            ..ZkAccessConfig::default()
        },
        legacy_layout: false,
    };
    assert_no_password(&format!("{config:?} {inline:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_refused_at_once_and_the_password_never_shows() {
    logged();
    let zk = ZkServer::standalone();
    let providers = registry(&zk, provider_access());
    let (_, a) = provider("a", providers.clone()).await;

    // A wrong password: refused at once, saying why, without the password.
    let wrong = ZkAccess::with_identity(&format!("{USER}:{WRONG_PASSWORD}")).unwrap();
    let wrong = registry(&zk, wrong);
    let err = register(&*wrong, SERVICE, "127.0.0.1:1")
        .await
        .expect("refused");
    let message = err.to_string();
    assert!(matches!(err, RegistryError::Denied(_)), "{message}");
    assert!(
        message.contains("does not let the identity `provider` create")
            && message.contains("password is wrong"),
        "{message}"
    );
    assert_no_password(&format!("{message} {err:?} {wrong:?}"));

    // Protected without an identity: cannot register at all.
    let anonymous = registry(&zk, ZkAccess::open().protected(true));
    let err = register(&*anonymous, SERVICE, "127.0.0.1:1")
        .await
        .expect("refused");
    assert!(err.to_string().contains("without an identity"), "{err}");

    // Under a root that anyone may change (made by a stranger): refused when protected,
    // registered with a warning when not.
    let (ok, printed) = zk.cli(&["create", "/shared"]);
    assert!(ok, "{printed}");
    let shared = registry_at(&zk, "/shared", provider_access());
    let err = register(&*shared, SERVICE, "127.0.0.1:1")
        .await
        .expect("refused");
    let message = err.to_string();
    assert!(
        message
            .contains("/shared lets anyone change it (world:anyone may WRITE|CREATE|DELETE|ADMIN)"),
        "{message}"
    );
    let unprotected = registry_at(&zk, "/shared", provider_access().protected(false));
    assert!(register(&*unprotected, SERVICE, "127.0.0.1:1")
        .await
        .is_none());
    assert!(logged().contains("registering under an unprotected node: /shared lets anyone"));

    the_identity_comes_from_a_file(&zk).await;
    assert_no_password(&format!("{providers:?}"));

    a.shutdown().await.unwrap();
    let logs = logged();
    assert!(
        logs.contains("ZooKeeper session established"),
        "logs captured"
    );
    assert_no_password(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_read_identity_only_the_consumers_may_read() {
    logged();
    let zk = ZkServer::standalone();
    let reader = digest_id("consumer", "c0nsumer-s3cret");
    let access = provider_access().read_identity(&reader).unwrap();
    let providers = registry(&zk, access);
    let (addr, a) = provider("a", providers.clone()).await;
    let node = format!("{ROOT}/{SERVICE}/providers/{addr}");

    let owner = raw(&zk, Some(&provider_identity())).await;
    let (acls, _) = owner.get_acl(&node).await.unwrap();
    assert_provider_acl(&acls, &AuthId::new("digest", &reader), &node);

    // A stranger may not even look.
    let stranger = raw(&zk, None).await;
    assert_eq!(stranger.list_children(ROOT).await, Err(ZkError::NoAuth));
    assert_eq!(
        stranger.get_data(&node).await.map(drop),
        Err(ZkError::NoAuth)
    );

    // The consumer identity finds the provider and calls it, but may not register.
    let consumers = registry(
        &zk,
        ZkAccess::with_identity("consumer:c0nsumer-s3cret").unwrap(),
    );
    let rx = consumers.discover(SERVICE).await.unwrap();
    assert_eq!(addresses(&rx), [addr]);
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    assert_eq!(
        served_by(&client, 10).await,
        HashMap::from([("a".into(), 10)])
    );
    let err = register(&*consumers, SERVICE, "127.0.0.1:1")
        .await
        .expect("refused");
    assert!(err.to_string().contains("the identity `consumer`"), "{err}");

    // A consumer with a wrong password is told why it cannot find the providers, at once.
    let wrong = registry(
        &zk,
        ZkAccess::with_identity("consumer:not-the-password").unwrap(),
    );
    let err = wrong.discover(SERVICE).await.map(drop).unwrap_err();
    assert!(err.to_string().contains("NoAuth"), "{err}");
    assert!(err.to_string().contains("read_identity"), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    let status = EchoClient::new(Channel::new(ClientConfig::default(), wrong))
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert!(status.message().contains("NoAuth"), "{status}");
    a.shutdown().await.unwrap();
    assert_no_password(&logged());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_provider_found_through_zookeeper_is_called_over_tls() {
    use mprpc::config::{ClientTls, ServerTls};
    use mprpc_tests::certs::TestCa;

    let zk = mprpc_tests::zk::ZkServer::standalone();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let files = ca.provider(dir.path(), "provider");
    let registry = || {
        std::sync::Arc::new(
            mprpc::registry::ZkRegistry::new(
                zk.connect.clone(),
                "/mprpc-tls".to_owned(),
                std::time::Duration::from_secs(5),
            )
            .unwrap(),
        )
    };
    let config = mprpc::config::ServerConfig {
        tls: Some(ServerTls::new(&files.cert, &files.key)),
        ..mprpc::config::ServerConfig::default()
    };
    let server = mprpc::server::Server::new(config).add_service(mprpc_tests::EchoServer::new(
        mprpc_tests::EchoService::named("zk-tls"),
    ));
    let (_, handle) = mprpc::server::spawn_local_registered(server, registry())
        .await
        .expect("a TLS provider registers");
    let client_config = mprpc::config::ClientConfig {
        tls: Some(ClientTls::new(ca.write(dir.path()))),
        ..mprpc::config::ClientConfig::default()
    };
    let client =
        mprpc_tests::EchoClient::new(mprpc::client::Channel::new(client_config, registry()));
    let reply = client
        .echo(mprpc_tests::EchoRequest::default())
        .await
        .expect("a call over TLS to a provider found in ZooKeeper");
    assert_eq!(reply.served_by, "zk-tls");
    handle.shutdown().await.unwrap();
}
