//! gRPC on the RPC port (`[server.protocols] grpc`), called by Python's `grpcio` (from PyPI,
//! installed by `scripts/test.sh`): a call with metadata, a failure with its status and
//! message, a deadline from `grpc-timeout`, unknown methods, the standard health service,
//! 200 calls at once on one connection, server reflection (v1 as `grpcurl` asks it, v1alpha
//! through `grpcio-reflection`); and mprpc's own callers on the same port.

use mprpc::client::Channel;
use mprpc::config::{ProtocolsConfig, ServerConfig};
use mprpc::server::{spawn_local, Server};
use mprpc_tests::{EchoClient, EchoRequest, EchoResponse, EchoServer, EchoService};
use prost::Message;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/grpc_client.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_calls_an_mprpc_provider() {
    let config = ServerConfig {
        protocols: ProtocolsConfig {
            grpc: true,
            ..ProtocolsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::new(config).add_service(EchoServer::new(EchoService::named("grpc")));
    let (addr, server) = spawn_local(server).await.expect("start provider");
    let target = addr.to_string();
    let output = mprpc_tests::python::run(&[CLIENT, &target], 60).await;
    output.assert_ok("grpc_client.py");
    let stdout = &output.stdout;
    let line = |name: &str| output.line(name);
    let hex = line("reply");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let reply = EchoResponse::decode(&bytes[..]).expect("an EchoResponse");
    assert_eq!(reply.payload, b"hello");
    assert_eq!(
        (reply.served_by.as_str(), reply.metadata_value.as_str()),
        ("grpc", "acme")
    );
    assert!(reply.peer.starts_with("127.0.0.1:"), "{reply:?}");
    assert_eq!(line("code"), "OK");
    assert_eq!(line("failure"), "NOT_FOUND no such thing é", "{stdout}");
    assert_eq!(line("deadline"), "DEADLINE_EXCEEDED", "{stdout}");
    assert_eq!(line("unknown"), "UNIMPLEMENTED | UNIMPLEMENTED", "{stdout}");
    assert_eq!(line("health"), "0801", "SERVING: {stdout}");
    assert_eq!(line("health_service"), "0801", "{stdout}");
    assert_eq!(line("health_unknown"), "NOT_FOUND", "{stdout}");
    assert_eq!(line("concurrent"), "200", "{stdout}");
    // 300,000 bytes each way: the reply, in pieces on the provider, arrives whole.
    assert_eq!(line("large"), "True True", "{stdout}");
    // Reflection, both versions: the services, then a service's and a message's shape.
    assert_eq!(line("reflection_v1"), "1 True", "{stdout}");
    assert!(
        line("services").split(' ').any(|s| s == "mprpc.test.Echo"),
        "{stdout}"
    );
    assert_eq!(
        line("methods"),
        "Echo Read Subscribe Upload Chat",
        "{stdout}"
    );
    assert!(
        line("fields").starts_with("payload delay_ms fail_code"),
        "{stdout}"
    );
    // mprpc's own callers, on the same port.
    let client = EchoClient::new(Channel::to_address(addr.to_string()));
    client
        .echo(EchoRequest::default())
        .await
        .expect("an mprpc call");
    server.shutdown().await.unwrap();
}
