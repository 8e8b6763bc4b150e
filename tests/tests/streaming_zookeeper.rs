//! Streaming calls to providers found through a real ZooKeeper: the three kinds, spread
//! over the providers like unary calls, and a stream that outlives its provider's
//! registration (the provider leaves ZooKeeper and drains) ending well.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, ServerConfig};
use mprpc::registry::{Registry, ZkRegistry};
use mprpc::server::{spawn_local_registered, LocalServer, Server};
use mprpc_tests::zk::ZkServer;
use mprpc_tests::{EchoClient, EchoServer, EchoService, StreamRequest};

const SERVICE: &str = "mprpc.test.Echo";

fn registry(zk: &ZkServer) -> Arc<ZkRegistry> {
    let session = Duration::from_secs(4);
    Arc::new(ZkRegistry::new(zk.connect.clone(), "/mprpc".to_owned(), session).unwrap())
}

async fn provider(name: &str, zk: &ZkServer) -> LocalServer {
    let server =
        Server::new(ServerConfig::default()).add_service(EchoServer::new(EchoService::named(name)));
    let registry: Arc<dyn Registry> = registry(zk);
    let (_, handle) = spawn_local_registered(server, registry)
        .await
        .expect("provider starts and registers");
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_every_kind_reach_providers_found_in_zookeeper() {
    let zk = ZkServer::standalone();
    let a = provider("a", &zk).await;
    let b = provider("b", &zk).await;
    let consumers = registry(&zk);
    let rx = consumers.discover(SERVICE).await.unwrap();
    mprpc_tests::wait_until("two providers listed", Duration::from_secs(10), || {
        rx.borrow().len() == 2
    })
    .await;
    let client = EchoClient::new(Channel::new(ClientConfig::default(), consumers.clone()));

    // Server streaming, spread over both providers.
    let mut served_by = HashSet::new();
    for _ in 0..10 {
        let request = StreamRequest {
            count: 5,
            ..StreamRequest::default()
        };
        let mut replies = client.subscribe(request).await.expect("stream opens");
        let mut n = 0;
        while let Some(reply) = replies.message().await.expect("a reply") {
            served_by.insert(reply.served_by);
            n += 1;
        }
        assert_eq!(n, 5);
    }
    assert_eq!(
        served_by.len(),
        2,
        "both providers served streams: {served_by:?}"
    );

    // Client streaming.
    let chunks = (0..100).map(|_| StreamRequest {
        payload: vec![1; 1000],
        ..StreamRequest::default()
    });
    let reply = client
        .upload(futures_util::stream::iter(chunks))
        .await
        .expect("upload");
    assert_eq!((reply.messages, reply.bytes), (100, 100_000));

    // Both ways, left open while its provider leaves ZooKeeper and drains: it still ends well.
    let (tx, mut rx_requests) = tokio::sync::mpsc::channel::<StreamRequest>(1);
    let requests = futures_util::stream::poll_fn(move |cx| rx_requests.poll_recv(cx));
    let mut replies = client.chat(requests).await.expect("chat opens");
    let hello = StreamRequest {
        payload: b"hello".to_vec(),
        ..StreamRequest::default()
    };
    tx.send(hello.clone()).await.unwrap();
    let first = replies.message().await.unwrap().expect("a reply");
    let (leaving, staying) = if first.served_by == "a" {
        (a, b)
    } else {
        (b, a)
    };
    let shutdown = tokio::spawn(leaving.shutdown());
    mprpc_tests::wait_until("one provider listed", Duration::from_secs(10), || {
        rx.borrow().len() == 1
    })
    .await;
    tx.send(hello).await.unwrap();
    let second = replies.message().await.unwrap().expect("a reply");
    assert_eq!(
        second.served_by, first.served_by,
        "a stream stays on its provider"
    );
    drop(tx);
    assert!(replies.message().await.unwrap().is_none(), "ends well");
    shutdown.await.unwrap().unwrap();
    staying.shutdown().await.unwrap();
}
