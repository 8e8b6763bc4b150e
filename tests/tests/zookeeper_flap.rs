//! A provider's node that goes and comes back, as after a ZooKeeper outage longer than the
//! provider's session: ZooKeeper deletes the old node a session timeout after it is back, and
//! the provider, retrying to reach it up to 5 s apart, registers again only later. A consumer
//! must not drop it meanwhile (with a one-second confirmation it did, and every call failed
//! until the provider was back: the fault matrix's case (d), `resilience_faults.rs`), and must
//! still drop a provider that stays away.

use std::time::{Duration, Instant};

use mprpc::registry::{Registry, ServiceInstance, ZkRegistry};
use mprpc_tests::wait_until;
use mprpc_tests::zk::ZkServer;

const SERVICE: &str = "mprpc.test.Echo";
const ROOT: &str = "/mprpc";
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_back_within_its_reconnect_backoff_is_kept_and_one_that_stays_away_is_not() {
    let zk = ZkServer::standalone();
    let provider = ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), Duration::from_secs(2))
        .expect("a registry");
    let instance = ServiceInstance::new(SERVICE, "127.0.0.1:1");
    let registration = provider
        .register(instance.clone())
        .await
        .expect("registered");
    let consumer = ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), Duration::from_secs(10))
        .expect("a registry");
    let list = consumer.discover(SERVICE).await.expect("the providers");
    wait_until("the provider is listed", BOUND, || list.borrow().len() == 1).await;

    // Away for 3 s (its node deleted, then made again), less than the 5 s between a
    // provider's attempts to reach ZooKeeper: kept all along, past the confirmation too.
    registration.deregister().await.expect("deregistered");
    let gone = Instant::now();
    let away = Duration::from_secs(3);
    wait_until("3 s without the provider's node", BOUND, || {
        assert_eq!(list.borrow().len(), 1, "dropped after {:?}", gone.elapsed());
        gone.elapsed() >= away
    })
    .await;
    let registration = provider.register(instance).await.expect("registered again");
    let confirmed = Duration::from_secs(8);
    wait_until("past the confirmation of the drop", BOUND, || {
        assert_eq!(list.borrow().len(), 1, "dropped after {:?}", gone.elapsed());
        gone.elapsed() >= confirmed
    })
    .await;

    // Away for good: dropped once the confirmation agrees.
    registration.deregister().await.expect("deregistered");
    let gone = Instant::now();
    wait_until("the provider that left is dropped", BOUND, || {
        list.borrow().is_empty()
    })
    .await;
    println!(
        "a provider that left was dropped after {:?}",
        gone.elapsed()
    );
}
