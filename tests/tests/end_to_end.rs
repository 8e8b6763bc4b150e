//! End to end over real TCP on 127.0.0.1: a provider and a consumer in one process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mprpc::client::{BlockingChannel, Channel};
use mprpc::config::{ClientConfig, ServerConfig};
use mprpc::registry::StaticRegistry;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::{
    wait_until, EchoBlockingClient, EchoClient, EchoRequest, EchoServer, EchoService,
};
use rand::Rng;

const SERVICE: &str = "mprpc.test.Echo";

async fn start(service: EchoService, config: ServerConfig) -> (String, LocalServer) {
    let server = Server::new(config).add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

async fn start_default(service: EchoService) -> (String, LocalServer) {
    start(service, ServerConfig::default()).await
}

fn echo(payload: &[u8]) -> EchoRequest {
    EchoRequest {
        payload: payload.to_vec(),
        ..EchoRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_on_one_connection_finish_out_of_order() {
    let service = EchoService::named("a");
    let (addr, server) = start_default(service.clone()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let mut rng = rand::rng();
    let mut calls = Vec::new();
    for i in 0..1000u32 {
        let delay_ms = rng.random_range(0..50);
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let reply = client
                .echo(EchoRequest {
                    payload: i.to_be_bytes().to_vec(),
                    delay_ms,
                    ..EchoRequest::default()
                })
                .await
                .expect("call succeeds");
            (i, reply)
        }));
    }
    let mut peers = HashSet::new();
    for call in calls {
        let (i, reply) = call.await.unwrap();
        assert_eq!(
            reply.payload,
            i.to_be_bytes().to_vec(),
            "reply matched to its call"
        );
        peers.insert(reply.peer);
    }
    assert_eq!(peers.len(), 1, "all calls shared one connection: {peers:?}");
    assert_eq!(service.counters.finished.load(Ordering::SeqCst), 1000);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_from_zero_bytes_to_eight_mebibytes_round_trip() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let mut rng = rand::rng();
    for size in [0usize, 1, 100, 1024, 65_535, 65_536, 1 << 20, 8 << 20] {
        let mut payload = vec![0u8; size];
        rng.fill(&mut payload[..]);
        let reply = client
            .echo(Request::new(echo(&payload)).with_timeout(Duration::from_secs(30)))
            .await
            .unwrap_or_else(|s| panic!("{size} bytes: {s}"));
        assert_eq!(reply.payload.len(), size);
        assert!(reply.payload == payload, "{size} bytes came back changed");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_service_and_method_are_unimplemented_with_the_name() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let channel = Channel::to_address(addr);
    let status = channel
        .unary_raw("no.Such", "Thing", Request::new(Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("no.Such"), "{status}");
    assert!(
        status.message().contains(SERVICE),
        "lists what it hosts: {status}"
    );

    let status = channel
        .unary_raw(SERVICE, "Nope", Request::new(Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("Nope"), "{status}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn undecodable_request_is_invalid_argument() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let channel = Channel::to_address(addr);
    let status = channel
        .unary_raw(
            SERVICE,
            "Echo",
            Request::new(Bytes::from_static(b"\xff\xff\xff")),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn handler_error_reaches_the_caller_with_code_and_message() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let status = client
        .echo(EchoRequest {
            fail_code: Code::NotFound.as_i32(),
            fail_message: "user 7 is unknown".into(),
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "user 7 is unknown");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn handler_panic_is_internal_and_the_provider_carries_on() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let status = client
        .echo(EchoRequest {
            panic: true,
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(status.message().contains("panicked"), "{status}");
    client
        .echo(echo(b"still here"))
        .await
        .expect("provider still serves");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeout_gives_deadline_exceeded_and_the_provider_stops_the_work() {
    let service = EchoService::named("a");
    let (addr, server) = start_default(service.clone()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let started = Instant::now();
    let status = client
        .echo(
            Request::new(EchoRequest {
                delay_ms: 10_000,
                ..EchoRequest::default()
            })
            .with_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let counters = service.counters.clone();
    wait_until("the handler is abandoned", Duration::from_secs(5), || {
        counters.abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(service.counters.finished.load(Ordering::SeqCst), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_budget_and_metadata_reach_the_handler() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let mut request = Request::new(EchoRequest {
        metadata_key: "tenant".into(),
        ..EchoRequest::default()
    })
    .with_timeout(Duration::from_secs(2));
    request.metadata_mut().insert("tenant", "acme");
    let reply = client.echo(request).await.unwrap();
    assert_eq!(reply.metadata_value, "acme");
    assert!(
        reply.budget_us > 1_000_000 && reply.budget_us <= 2_000_000,
        "budget {} us",
        reply.budget_us
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_over_the_limit_get_resource_exhausted() {
    let service = EchoService::named("a");
    let config = ServerConfig {
        max_concurrent_calls: 2,
        ..ServerConfig::default()
    };
    let (addr, server) = start(service.clone(), config).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let slow = || {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .echo(EchoRequest {
                    delay_ms: 500,
                    ..EchoRequest::default()
                })
                .await
        })
    };
    let (a, b) = (slow(), slow());
    let counters = service.counters.clone();
    wait_until("two calls running", Duration::from_secs(5), || {
        counters.started.load(Ordering::SeqCst) == 2
    })
    .await;
    let status = client.echo(echo(b"x")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(a.await.unwrap().is_ok());
    assert!(b.await.unwrap().is_ok());
    client.echo(echo(b"x")).await.expect("room again");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_over_the_maximum_is_refused_before_sending() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let config = ClientConfig {
        max_frame_size: 64 * 1024,
        ..ClientConfig::default()
    };
    let client = EchoClient::new(Channel::to_addresses(vec![addr], config));
    let status = client.echo(echo(&vec![7u8; 100 * 1024])).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(status.message().contains("exceeds"), "{status}");
    client
        .echo(echo(b"small"))
        .await
        .expect("small calls still work");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reply_over_the_providers_maximum_is_resource_exhausted() {
    let config = ServerConfig {
        max_frame_size: 64 * 1024,
        ..ServerConfig::default()
    };
    let (addr, server) = start(EchoService::named("a"), config).await;
    let client = EchoClient::new(Channel::to_address(addr));
    // The request fits the provider's limit (60 KiB) but the reply adds fields and does not.
    let status = client
        .echo(echo(&vec![1u8; 64 * 1024 - 40]))
        .await
        .unwrap_err();
    assert!(matches!(status.code(), Code::ResourceExhausted), "{status}");
    client
        .echo(echo(b"small"))
        .await
        .expect("the connection still works");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn round_robin_spreads_calls_over_providers() {
    let (a, server_a) = start_default(EchoService::named("a")).await;
    let (b, server_b) = start_default(EchoService::named("b")).await;
    let mut services = BTreeMap::new();
    services.insert(SERVICE.to_owned(), vec![a, b]);
    let channel = Channel::new(
        ClientConfig::default(),
        Arc::new(StaticRegistry::new(services)),
    );
    let client = EchoClient::new(channel);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..100 {
        let reply = client.echo(echo(b"")).await.unwrap();
        *counts.entry(reply.served_by).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&50), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&50), "{counts:?}");
    server_a.shutdown().await.unwrap();
    // With one provider gone, every call goes to the other one.
    for _ in 0..10 {
        let reply = client.echo(echo(b"")).await.expect("failover to b");
        assert_eq!(reply.served_by, "b");
    }
    server_b.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_provider_is_unavailable_quickly() {
    // A port that was free a moment ago: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let client = EchoClient::new(Channel::to_address(addr));
    let started = Instant::now();
    let status = client.echo(echo(b"")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // And during the reconnect backoff it fails fast again.
    let status = client.echo(echo(b"")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");

    let unknown = Channel::new(
        ClientConfig::default(),
        Arc::new(StaticRegistry::new(BTreeMap::new())),
    );
    let status = EchoClient::new(unknown).echo(echo(b"")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains(SERVICE), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_every_call_in_flight() {
    let service = EchoService::named("a");
    let (addr, server) = start_default(service.clone()).await;
    let client = EchoClient::new(Channel::to_address(addr.clone()));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .echo(EchoRequest {
                        delay_ms: 300,
                        ..EchoRequest::default()
                    })
                    .await
            })
        })
        .collect();
    let counters = service.counters.clone();
    wait_until("50 calls running", Duration::from_secs(5), || {
        counters.started.load(Ordering::SeqCst) == 50
    })
    .await;
    server.shutdown().await.unwrap();
    for call in calls {
        call.await.unwrap().expect("in-flight call answered");
    }
    assert_eq!(service.counters.finished.load(Ordering::SeqCst), 50);
    let status = client.echo(echo(b"")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "after shutdown: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_works_from_plain_threads() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let joined = tokio::task::spawn_blocking(move || {
        let client = EchoBlockingClient::new(BlockingChannel::to_address(addr).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let payload = format!("{t}-{i}").into_bytes();
                        let reply = client.echo(echo(&payload)).expect("blocking call");
                        assert_eq!(reply.payload, payload);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        // Inside an async runtime it refuses instead of dead-locking.
        client
    })
    .await
    .unwrap();
    let status = joined.echo(echo(b"")).unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    // The blocking channel owns a runtime, which must not be dropped in async context.
    tokio::task::spawn_blocking(move || drop(joined))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

/// A payload whose every byte depends on its position, so that a piece out of place shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_go_out_in_pieces_and_arrive_whole() {
    let (addr, server) = start_default(EchoService::named("a")).await;
    let channel = Channel::to_address(addr);
    let client = EchoClient::new(channel.clone());
    // Encoded in pieces on both sides (64 KiB and over), several at once on one connection.
    let calls = [65_536 + 1, 300_000, (1 << 20) + 7].map(|len| {
        let client = client.clone();
        tokio::spawn(async move {
            let payload = patterned(len);
            let reply = client.echo(echo(&payload)).await.expect("a large call");
            assert!(reply.payload == payload, "the reply of {len} bytes differs");
        })
    });
    for call in calls {
        call.await.unwrap();
    }
    // A body of 300 pieces by hand (more than one `writev` takes): field 1, its length, then
    // the payload in pieces of 3,000 bytes.
    let payload = patterned(900_000);
    let mut head = vec![0x0a];
    prost::encoding::encode_varint(payload.len() as u64, &mut head);
    let pieces =
        std::iter::once(Bytes::from(head)).chain(payload.chunks(3000).map(Bytes::copy_from_slice));
    let body = mprpc::Body::from_parts(pieces);
    assert_eq!(body.parts().len(), 301);
    let reply = channel
        .unary_raw(SERVICE, "Echo", Request::new(body))
        .await
        .expect("a call in pieces");
    let reply = <mprpc_tests::EchoResponse as prost::Message>::decode(reply).unwrap();
    assert!(reply.payload == payload, "the reply differs");
    server.shutdown().await.unwrap();
}
