//! The ZooKeeper registry against a real ZooKeeper: registration, discovery, balancing, and
//! failures (providers killed or frozen, ZooKeeper stopped, an ensemble losing nodes).
//! Every test starts its own ZooKeeper on free ports and stops it, with every provider
//! process it started, when it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, LoadBalance, ServerConfig};
use mprpc::registry::zookeeper::SessionStatus;
use mprpc::registry::{Instances, Registry, ServiceInstance, ZkRegistry};
use mprpc::server::{spawn_local_registered, LocalServer, Server};
use mprpc::{Code, Request, Status};
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::zk::ZkServer;
use mprpc_tests::{wait_until, EchoClient, EchoRequest, EchoServer, EchoService};
use nix::sys::signal::Signal;

const SERVICE: &str = "mprpc.test.Echo";
const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");
const ROOT: &str = "/mprpc";

fn registry(zk: &ZkServer, session: Duration) -> Arc<ZkRegistry> {
    Arc::new(ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), session).unwrap())
}

async fn provider(
    name: &str,
    weight: u32,
    extra_delay_ms: u32,
    registry: Arc<dyn Registry>,
) -> (String, LocalServer) {
    let service = EchoService {
        name: name.to_owned(),
        extra_delay_ms,
        ..EchoService::default()
    };
    let config = ServerConfig {
        weight,
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local_registered(server, registry)
        .await
        .expect("provider starts and registers");
    (addr.to_string(), handle)
}

/// Waits until the consumer's list of providers satisfies `check`; returns how long it took.
async fn wait_for_list(
    rx: &Instances,
    what: &str,
    limit: Duration,
    check: impl Fn(&[String]) -> bool,
) -> Duration {
    let started = Instant::now();
    let rx = rx.clone();
    wait_until(what, limit, || {
        let list: Vec<String> = rx.borrow().iter().map(|i| i.address.clone()).collect();
        check(&list)
    })
    .await;
    started.elapsed()
}

async fn count_calls(
    client: &EchoClient,
    calls: usize,
    key: Option<&str>,
) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..calls {
        let mut request = Request::new(EchoRequest::default());
        if let Some(key) = key {
            request = request.with_hash_key(key);
        }
        let reply = client.echo(request).await.expect("call succeeds");
        *counts.entry(reply.served_by).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancers_spread_calls_as_configured() {
    let zk = ZkServer::standalone();
    let providers = registry(&zk, Duration::from_secs(5));
    let (_a, a) = provider("a", 100, 0, providers.clone()).await;
    let (_b, b) = provider("b", 100, 0, providers.clone()).await;
    let (_c, c) = provider("c", 200, 0, providers.clone()).await;

    let consumers = registry(&zk, Duration::from_secs(5));
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "three providers", Duration::from_secs(10), |l| {
        l.len() == 3
    })
    .await;
    let instances = rx.borrow().clone();
    assert!(instances.iter().all(
        |i| i.methods == ["Echo", "Read", "Subscribe", "Upload", "Chat"] && i.start_time_ms > 0
    ));
    assert_eq!(instances.iter().map(|i| i.weight).sum::<u32>(), 400);

    let with = |policy| {
        let config = ClientConfig {
            load_balance: policy,
            ..ClientConfig::default()
        };
        EchoClient::new(Channel::new(config, consumers.clone()))
    };

    // Round robin: exactly even.
    let counts = count_calls(&with(LoadBalance::RoundRobin), 300, None).await;
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![100; 3],
        "{counts:?}"
    );

    // Weighted random: in proportion to 100:100:200 (wide bounds: it is random).
    let counts = count_calls(&with(LoadBalance::WeightedRandom), 800, None).await;
    assert!((300..500).contains(&counts["c"]), "{counts:?}");
    assert!(
        (120..280).contains(&counts["a"]) && (120..280).contains(&counts["b"]),
        "{counts:?}"
    );

    // Consistent hashing: a key sticks to one provider; keys spread over providers.
    let hashed = with(LoadBalance::ConsistentHash);
    let mut owners = HashMap::new();
    for k in 0..30 {
        let key = format!("user-{k}");
        let counts = count_calls(&hashed, 10, Some(&key)).await;
        assert_eq!(counts.len(), 1, "key {key} went to {counts:?}");
        owners.insert(key, counts.into_keys().next().unwrap());
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(distinct.len() >= 2, "keys spread: {owners:?}");

    // Two providers: one leaves (deregistering), the rest share the calls.
    c.shutdown().await.unwrap();
    wait_for_list(&rx, "two providers", Duration::from_secs(10), |l| {
        l.len() == 2
    })
    .await;
    let counts = count_calls(&with(LoadBalance::RoundRobin), 100, None).await;
    assert_eq!(counts.get("a"), Some(&50), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&50), "{counts:?}");
    // Keys of the providers that stayed did not move.
    for (key, owner) in owners.iter().filter(|(_, o)| o.as_str() != "c") {
        let counts = count_calls(&hashed, 1, Some(key)).await;
        assert!(
            counts.contains_key(owner),
            "{key} moved from {owner}: {counts:?}"
        );
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_sends_fewer_calls_to_a_slow_provider() {
    let zk = ZkServer::standalone();
    let providers = registry(&zk, Duration::from_secs(5));
    let (_f, fast) = provider("fast", 100, 0, providers.clone()).await;
    let (_s, slow) = provider("slow", 100, 40, providers.clone()).await;
    let consumers = registry(&zk, Duration::from_secs(5));
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "two providers", Duration::from_secs(10), |l| {
        l.len() == 2
    })
    .await;
    let config = ClientConfig {
        load_balance: LoadBalance::LeastLoaded,
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::new(config, consumers.clone()));
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                for _ in 0..40 {
                    let reply = client.echo(EchoRequest::default()).await.unwrap();
                    *counts.lock().unwrap().entry(reply.served_by).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let slow_share = counts.get("slow").copied().unwrap_or(0) as f64 / 320.0;
    println!("least loaded: {counts:?}");
    assert!(
        slow_share < 0.3,
        "the slow provider got {:.0}% of the calls: {counts:?}",
        slow_share * 100.0
    );
    fast.shutdown().await.unwrap();
    slow.shutdown().await.unwrap();
}

/// Calls in a loop from several tasks until stopped, recording who answered and what failed.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<(Instant, String)>>>,
    failed: Arc<Mutex<Vec<(Instant, Status)>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &EchoClient, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|_| {
                let (client, stop, served, failed) =
                    (client.clone(), stop.clone(), served.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client
                            .echo(EchoRequest {
                                delay_ms: 2,
                                ..EchoRequest::default()
                            })
                            .await
                        {
                            Ok(reply) => served
                                .lock()
                                .unwrap()
                                .push((Instant::now(), reply.served_by)),
                            Err(status) => {
                                failed.lock().unwrap().push((Instant::now(), status));
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            served,
            failed,
            workers,
        }
    }

    fn served_by(&self, name: &str, since: Instant) -> usize {
        self.served
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, n)| *t >= since && n == name)
            .count()
    }

    fn failures_since(&self, since: Instant) -> Vec<Status> {
        self.failed
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, s)| s.clone())
            .collect()
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provider_is_dropped_and_a_new_one_is_picked_up_under_load() {
    let zk = ZkServer::standalone();
    let session = ["--zk", &zk.connect, "--session-timeout-ms", "2000"];
    let a = ProviderProcess::start(PROVIDER, &[&["a"][..], &session[..]].concat());
    let b = ProviderProcess::start(PROVIDER, &[&["b"][..], &session[..]].concat());
    let consumers = registry(&zk, Duration::from_secs(2));
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "a and b", Duration::from_secs(10), |l| l.len() == 2).await;

    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    let workers = 4;
    let load = Load::start(&client, workers);
    let start = Instant::now();
    wait_until("both serve", Duration::from_secs(10), || {
        load.served_by("a", start) > 10 && load.served_by("b", start) > 10
    })
    .await;

    let killed_at = Instant::now();
    a.signal(Signal::SIGKILL);
    let a_address = a.address.clone();
    let dropped = wait_for_list(&rx, "a dropped", Duration::from_secs(15), |l| {
        !l.contains(&a_address)
    })
    .await;
    println!("killed provider dropped from the consumer's list after {dropped:?}");
    let after_drop = Instant::now();
    wait_until("b carries on", Duration::from_secs(5), || {
        load.served_by("b", after_drop) > 50
    })
    .await;
    let failures = load.failures_since(killed_at);
    assert!(
        failures.len() <= workers,
        "only calls in flight on the dead connection may fail: {failures:?}"
    );
    assert!(
        failures.iter().all(|s| s.code() == Code::Unavailable),
        "{failures:?}"
    );
    assert_eq!(load.served_by("a", after_drop), 0);

    // A provider started during load gets traffic quickly.
    let c = ProviderProcess::start(PROVIDER, &[&["c"][..], &session[..]].concat());
    let registered = Instant::now();
    wait_until("c gets traffic", Duration::from_secs(10), || {
        load.served_by("c", registered) > 0
    })
    .await;
    println!(
        "new provider got its first call {:?} after registering",
        registered.elapsed()
    );
    assert!(load.failures_since(registered).is_empty());
    load.stop().await;
    drop((b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_continue_while_zookeeper_is_down_and_registrations_come_back() {
    let zk = ZkServer::standalone();
    let providers = registry(&zk, Duration::from_secs(4));
    let (_a, a) = provider("a", 100, 0, providers.clone()).await;
    let (_b, b) = provider("b", 100, 0, providers.clone()).await;
    let consumers = registry(&zk, Duration::from_secs(4));
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "a and b", Duration::from_secs(10), |l| l.len() == 2).await;
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    let load = Load::start(&client, 2);

    zk.kill_node(1);
    let down = Instant::now();
    wait_until(
        "the consumer sees ZooKeeper gone",
        Duration::from_secs(10),
        || consumers.status() != SessionStatus::Connected,
    )
    .await;
    // Well past the session timeout with ZooKeeper down: calls go on to the known providers.
    wait_until("calls continue", Duration::from_secs(20), || {
        load.served_by("a", down) > 100
            && load.served_by("b", down) > 100
            && down.elapsed() > Duration::from_secs(5)
    })
    .await;
    assert!(
        load.failures_since(down).is_empty(),
        "{:?}",
        load.failures_since(down)
    );
    assert_eq!(rx.borrow().len(), 2, "the known list is kept");

    zk.start_node(1);
    wait_until("the consumer reconnects", Duration::from_secs(20), || {
        consumers.status() == SessionStatus::Connected
    })
    .await;
    // A fresh consumer finds both registrations again.
    let fresh = registry(&zk, Duration::from_secs(4));
    let fresh_rx = fresh.discover(SERVICE).await.unwrap();
    wait_for_list(
        &fresh_rx,
        "registrations back",
        Duration::from_secs(20),
        |l| l.len() == 2,
    )
    .await;
    // And the old consumer's watch works again: a new provider is picked up.
    let (c_addr, c) = provider("c", 100, 0, providers.clone()).await;
    wait_for_list(&rx, "c discovered", Duration::from_secs(10), |l| {
        l.contains(&c_addr)
    })
    .await;
    load.stop().await;
    for p in [a, b, c] {
        p.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_frozen_past_its_session_registers_again() {
    let zk = ZkServer::standalone();
    let p = ProviderProcess::start(
        PROVIDER,
        &[
            "frozen",
            "--zk",
            &zk.connect,
            "--session-timeout-ms",
            "2000",
        ],
    );
    let consumers = registry(&zk, Duration::from_secs(5));
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "registered", Duration::from_secs(10), |l| l.len() == 1).await;

    p.signal(Signal::SIGSTOP);
    wait_for_list(
        &rx,
        "dropped after its session expired",
        Duration::from_secs(20),
        |l| l.is_empty(),
    )
    .await;
    p.signal(Signal::SIGCONT);
    let back = wait_for_list(&rx, "registered again", Duration::from_secs(20), |l| {
        l.len() == 1
    })
    .await;
    println!("a resumed provider registered again after {back:?}");
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    assert_eq!(
        client.echo(EchoRequest::default()).await.unwrap().served_by,
        "frozen"
    );
}

async fn raw_client(zk: &ZkServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&zk.connect)
        .await
        .expect("connect to ZooKeeper")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_provider_replaces_the_node_of_its_dead_session() {
    let zk = ZkServer::standalone();
    let raw = raw_client(&zk).await;
    // The old process dies, and its session (10 s) outlives it.
    let old = ProviderProcess::start(
        PROVIDER,
        &["old", "--zk", &zk.connect, "--session-timeout-ms", "10000"],
    );
    let node = format!("{ROOT}/{SERVICE}/providers/{}", old.address);
    let (_, stat) = raw.get_data(&node).await.unwrap();
    let old_owner = stat.ephemeral_owner;
    old.signal(Signal::SIGKILL);
    let address = old.address.clone();
    drop(old);
    // The new process takes the same address at once: the old node is still there.
    let new = ProviderProcess::start(
        PROVIDER,
        &[
            "new",
            "--zk",
            &zk.connect,
            "--session-timeout-ms",
            "10000",
            "--listen",
            &address,
        ],
    );
    let (_, stat) = raw.get_data(&node).await.expect("node exists");
    assert_ne!(
        stat.ephemeral_owner, old_owner,
        "the stale node was replaced, not skipped"
    );
    assert_ne!(stat.ephemeral_owner, 0);
    // So it survives the old session's expiry: it belongs to the live one.
    drop(new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_node_deleted_from_outside_is_put_back() {
    let zk = ZkServer::standalone();
    let raw = raw_client(&zk).await;
    let providers = registry(&zk, Duration::from_secs(5));
    let (addr, p) = provider("a", 100, 0, providers.clone()).await;
    let node = format!("{ROOT}/{SERVICE}/providers/{addr}");
    let (_, before) = raw.get_data(&node).await.unwrap();
    raw.delete(&node, None).await.unwrap();
    let started = Instant::now();
    loop {
        if let Ok(Some(stat)) = raw.check_stat(&node).await {
            assert!(stat.czxid > before.czxid);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node not restored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("deleted node restored after {:?}", started.elapsed());
    p.shutdown().await.unwrap();
    // Deregistered in the graceful shutdown.
    assert_eq!(raw.check_stat(&node).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_losing_each_node_in_turn_keeps_registrations_and_watches() {
    let zk = ZkServer::ensemble();
    let providers = registry(&zk, Duration::from_secs(4));
    let consumers = registry(&zk, Duration::from_secs(4));
    let (first, p0) = provider("p0", 100, 0, providers.clone()).await;
    let rx = consumers.discover(SERVICE).await.unwrap();
    wait_for_list(&rx, "p0", Duration::from_secs(10), |l| l.len() == 1).await;
    let mut running = vec![p0];
    let mut expected = vec![first];
    // Killing every node in turn kills, at some point, the one each client is connected to.
    // (The leader goes first.)
    let leader = zk.leader();
    let order: Vec<usize> = std::iter::once(leader)
        .chain((1..=3).filter(|n| *n != leader))
        .collect();
    for (round, node) in order.into_iter().enumerate() {
        zk.kill_node(node);
        let name = format!("p{}", round + 1);
        let (addr, p) = provider(&name, 100, 0, providers.clone()).await;
        expected.push(addr.clone());
        running.push(p);
        let took = wait_for_list(
            &rx,
            &format!("{name} discovered after node {node} died"),
            Duration::from_secs(20),
            |l| expected.iter().all(|a| l.contains(a)),
        )
        .await;
        println!("node {node} killed: new provider discovered after {took:?}");
        zk.start_node(node);
    }
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));
    let counts = count_calls(&client, 40, None).await;
    assert_eq!(counts.len(), 4, "{counts:?}");
    for p in running {
        p.shutdown().await.unwrap();
    }
}

/// `127.0.0.1:PORT` where nothing listens: a port bound, noted and closed again.
fn nothing_listens() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_named_by_consumers_and_providers() {
    let connect = nothing_listens();
    let named = format!("the registry at {connect} could not be reached");
    let registry = Arc::new(
        ZkRegistry::new(connect.clone(), ROOT.to_owned(), Duration::from_secs(2)).unwrap(),
    );

    // A provider keeps trying for 15 s, then gives up with one line naming the address.
    let provider = tokio::spawn({
        let registry = registry.clone();
        async move {
            let started = Instant::now();
            let outcome = registry
                .register(ServiceInstance::new(SERVICE, "127.0.0.1:1"))
                .await;
            (outcome.err(), started.elapsed())
        }
    });

    // A consumer's call fails before its deadline: the registry refused, so Unavailable.
    let config = ClientConfig {
        timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::new(config, registry.clone()));
    for _ in 0..2 {
        let started = Instant::now();
        let status = client
            .echo(EchoRequest::default())
            .await
            .expect_err("no registry, no providers");
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(status.message().contains(&named), "{status}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}: {status}",
            started.elapsed()
        );
    }
    let error = registry.services().await.expect_err("no registry");
    assert!(error.to_string().contains(&named), "{error}");

    let (error, took) = provider.await.unwrap();
    let error = error.expect("registering fails").to_string();
    assert!(error.contains(&named), "{error}");
    assert!(!error.contains('\n'), "{error}");
    assert!(
        took >= Duration::from_secs(15),
        "gave up after {took:?}: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_is_named_when_the_deadline_passes() {
    // Connections to it complete in the backlog, and nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connect = silent.local_addr().unwrap().to_string();
    let registry = Arc::new(
        ZkRegistry::new(connect.clone(), ROOT.to_owned(), Duration::from_secs(4)).unwrap(),
    );
    let config = ClientConfig {
        timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::new(config, registry));
    let status = client
        .echo(EchoRequest::default())
        .await
        .expect_err("no registry, no providers");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        status
            .message()
            .contains(&format!("the registry at {connect} could not be reached")),
        "{status}"
    );
    drop(silent);
}
