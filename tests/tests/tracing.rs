//! A trace id crosses services: a call through two providers carries one trace id, and both
//! providers' log lines are stamped with it.

use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, Server};
use mprpc::trace::TraceContext;
use mprpc::Request;
use mprpc_tests::logs::LogCapture;
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService, TRACE_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_follows_a_call_through_two_services() {
    let logs = LogCapture::global("info");

    let start = |name: &str| {
        let server = Server::new(ServerConfig::default())
            .add_service(EchoServer::new(EchoService::named(name)));
        spawn_local(server)
    };
    let (front_addr, front) = start("front").await.unwrap();
    let (back_addr, back) = start("back").await.unwrap();

    let root = TraceContext::new_root();
    let client = EchoClient::new(Channel::to_address(front_addr.to_string()));
    let reply = root
        .scope(client.echo(Request::new(EchoRequest {
            forward_to: back_addr.to_string(),
            metadata_key: TRACE_KEY.into(),
            payload: b"hi".to_vec(),
            ..EchoRequest::default()
        })))
        .await
        .expect("call through two services");
    assert_eq!(reply.served_by, "back");
    assert_eq!(
        reply.metadata_value,
        root.trace_hex(),
        "the back service saw the caller's trace"
    );

    front.shutdown().await.unwrap();
    back.shutdown().await.unwrap();
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&root.trace_hex()))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rpc.server") && l.contains("handler") && l.contains("forwarding")),
        "the front provider's handler log carries the trace:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rpc.server") && l.contains("served_by=back")),
        "the back provider's handler log carries the same trace:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rpc.server") && l.contains("queue_us")),
        "spans record the queue time:\n{text}"
    );
    // Two providers' server spans: one trace, distinct span ids, the back one's parent being
    // the front handler's outgoing call.
    let span_ids: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.split(" span_id=").nth(1))
        .map(|rest| &rest[..16])
        .collect();
    assert_eq!(span_ids.len(), 2, "{text}");
    // A call without a context starts a new trace.
    assert!(mprpc::trace::current().is_none());
}
