//! The ZooKeeper registry's session must not depend on the runtime that first used the
//! registry: when that runtime ends, the client crate's session task must not be dropped under
//! a watch that another runtime still polls.
//!
//! `zookeeper-client` 0.11.2 panics (`src/session/watch.rs:147`, an `unwrap()` on `None`) when a
//! `PersistentWatcher` is polled after the session task was dropped without delivering a
//! terminal event, which is what happens when a runtime shuts down under it. A consumer that
//! exited saw that panic message in about 1 exit in 25 (a race between the runtime's worker
//! threads, reproduced with the example consumer in `examples/tests/zookeeper.rs`); this test
//! provokes the same sequence deterministically.
//!
//! Its own test binary, because it installs a panic hook to see panics of background threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mprpc::registry::{Registry, ServiceInstance, ZkRegistry};
use mprpc_tests::wait_until;
use mprpc_tests::zk::ZkServer;

const SERVICE: &str = "mprpc.test.Echo";

/// Records the message of every panic from now on (and still prints it).
fn record_panics() -> Arc<Mutex<Vec<String>>> {
    let panics = Arc::new(Mutex::new(Vec::new()));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.lock().unwrap().push(info.to_string());
        previous(info);
    }));
    panics
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_session_outlives_the_runtime_that_first_used_the_registry() {
    let panics = record_panics();
    let zk = ZkServer::standalone();
    let registry = ZkRegistry::new(
        zk.connect.clone(),
        "/mprpc".to_owned(),
        Duration::from_secs(5),
    )
    .unwrap();

    // First use on a runtime of its own (as a blocking client's runtime would be).
    let first = runtime();
    first
        .block_on(registry.services())
        .expect("list the services");

    // Follow a service from another runtime: its watch is armed and nothing is registered.
    let second = runtime();
    let instances = second
        .block_on(registry.discover(SERVICE))
        .expect("follow the service");
    assert!(instances.borrow().is_empty());

    // The first runtime ends while the registry (and the follower) live on.
    drop(first);

    // The registry still works: a provider registered now is seen by the follower.
    second.block_on(async {
        let providers = ZkRegistry::new(
            zk.connect.clone(),
            "/mprpc".to_owned(),
            Duration::from_secs(5),
        )
        .unwrap();
        let registration = providers
            .register(ServiceInstance::new(SERVICE, "127.0.0.1:1"))
            .await
            .expect("register");
        wait_until(
            "the follower sees the new provider",
            Duration::from_secs(10),
            || instances.borrow().len() == 1,
        )
        .await;
        registration.deregister().await.expect("deregister");
    });
    drop(second);

    let panics = panics.lock().unwrap();
    assert!(panics.is_empty(), "panics: {panics:#?}");
}
