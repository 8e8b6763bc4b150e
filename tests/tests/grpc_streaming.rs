//! gRPC streaming calls (`[server.protocols] grpc`) from Python's `grpcio`: server, client
//! and bidirectional streams run as the provider's own streams, with failures mid-stream,
//! `grpc-timeout` over the whole stream, compressed requests, a bidirectional call whose
//! requests wait for the answers, and a caller's cancel reaching the handler; mprpc's own
//! callers stream on the same port meanwhile.

use mprpc_tests::python;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use mprpc::client::Channel;
use mprpc::config::{ProtocolsConfig, ServerConfig};
use mprpc::server::{spawn_local, Server};
use mprpc_tests::{wait_until, EchoClient, EchoServer, EchoService, StreamRequest};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/grpc_streams.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_streams_with_an_mprpc_provider() {
    let config = ServerConfig {
        protocols: ProtocolsConfig {
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let service = EchoService::named("grpc-streams");
    let counters = service.counters.clone();
    let server = Server::new(config).add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local(server).await.expect("start provider");

    // An mprpc caller streaming on the same port while grpcio runs.
    let client = EchoClient::new(Channel::to_address(addr.to_string()));
    let own = tokio::spawn(async move {
        let request = StreamRequest {
            count: 200,
            interval_ms: 2,
            ..StreamRequest::default()
        };
        let replies = client.subscribe(request).await?;
        Ok::<usize, mprpc::Status>(replies.count().await)
    });

    let target = addr.to_string();
    let output = python::run(&[CLIENT, &target], 90).await;
    output.assert_ok("grpc_streams.py");
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    let line = |name: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    assert_eq!(line("subscribe"), "0,1,2,3,4");
    assert_eq!(line("subscribe_payload"), "xxx");
    assert_eq!(line("failure"), "3 NOT_FOUND gone");
    assert_eq!(line("deadline"), "DEADLINE_EXCEEDED after_some True");
    assert_eq!(line("upload"), "100 1000");
    assert_eq!(line("upload_gzip"), "20 100000");
    assert_eq!(line("chat"), "abc");
    assert_eq!(line("chat_paced"), "ABCDE");
    assert_eq!(line("cancelled"), "CANCELLED");

    // The cancelled stream's handler was dropped, promptly: every stream started has ended.
    wait_until(
        "every stream's handler ended",
        Duration::from_secs(10),
        || {
            let c = &counters;
            c.started.load(Ordering::SeqCst)
                == c.finished.load(Ordering::SeqCst) + c.abandoned.load(Ordering::SeqCst)
        },
    )
    .await;
    assert!(
        counters.abandoned.load(Ordering::SeqCst) >= 2,
        "the deadline's and the cancel's streams were abandoned"
    );
    assert_eq!(own.await.unwrap().unwrap(), 200);
    handle.shutdown().await.unwrap();
}

/// A server-streaming request whose message fits `max_frame_size` but whose frame on the
/// bridge would not: that call is refused, and the connection's other streams carry on.
const GRPCIO_TOO_LARGE: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
subscribe = channel.unary_stream("/mprpc.test.Echo/Subscribe",
    request_serializer=lambda b: b, response_deserializer=lambda b: b)
from protowire import field_bytes, field_varint
def request(count, payload):
    return field_varint(1, count) + field_bytes(6, payload)
try:
    list(subscribe(request(1, b"x" * (64 * 1024 - 40)), timeout=10))
    print("large none")
except grpc.RpcError as e:
    print("large", e.code().name)
print("after", len(list(subscribe(request(3, b"y"), timeout=10))))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_too_large_for_the_bridge_fails_alone() {
    let config = ServerConfig {
        max_frame_size: 64 * 1024,
        protocols: ProtocolsConfig {
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("small")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    let target = addr.to_string();
    let output = python::run(&["-c", GRPCIO_TOO_LARGE, &target], 60).await;
    output.assert_ok("the grpcio client");
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    assert!(
        stdout.contains("large RESOURCE_EXHAUSTED"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("after 3"), "{stdout}\n{stderr}");
    handle.shutdown().await.unwrap();
}
