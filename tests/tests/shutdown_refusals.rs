//! A call that reaches a provider after it began shutting down is refused without being run,
//! and marked so (`not_run`): its consumer sends it to another provider, even a call of a
//! method that is not idempotent. Without the mark, a call written just before the consumer
//! read the provider's `GoAway` failed `Unavailable` although it never ran (the fault
//! matrix's rolling restart, case (e) of `resilience_faults.rs`, lost such calls).

use std::time::Duration;

use bytes::Bytes;
use mprpc::client::Channel;
use mprpc::config::ClientConfig;
use mprpc::protocol::FrameKind;
use mprpc::server::{spawn_local, Server};
use mprpc::Code;
use mprpc_tests::fake::{fake_provider, response_marked};
use mprpc_tests::raw::{read_until, request, responses};
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_call_arriving_while_the_provider_drains_is_refused_as_not_run() {
    let server =
        Server::new(Default::default()).add_service(EchoServer::new(EchoService::named("a")));
    let (address, handle) = spawn_local(server).await.expect("a provider");
    // A consumer that goes on sending after the GoAway, as one does until it has read it.
    let mut raw = TcpStream::connect(address).await.expect("connect");
    let slow = EchoRequest {
        delay_ms: 1000,
        ..EchoRequest::default()
    };
    let echo = |id, body: &EchoRequest| {
        request(
            id,
            "mprpc.test.Echo",
            "Echo",
            Some(LIMIT),
            Bytes::from(body.encode_to_vec()),
        )
    };
    raw.write_all(&echo(1, &slow)).await.expect("write");
    // Call 1 is running once the provider answers a ping after it.
    raw.write_all(&mprpc_tests::raw::ping(Bytes::new()))
        .await
        .expect("write");
    read_until(&mut raw, FrameKind::Pong, LIMIT).await;

    let stopping = tokio::spawn(handle.shutdown());
    read_until(&mut raw, FrameKind::GoAway, LIMIT).await;
    raw.write_all(&echo(2, &EchoRequest::default()))
        .await
        .expect("write");
    let refused = responses(&read_until(&mut raw, FrameKind::Response, LIMIT).await);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].request_id, 2);
    assert_eq!(
        refused[0].code,
        Code::Unavailable.as_i32(),
        "{:?}",
        refused[0]
    );
    assert!(refused[0].not_run, "marked as never run: {:?}", refused[0]);
    // The call it had read before is answered as usual, unmarked.
    let answered = responses(&read_until(&mut raw, FrameKind::Response, LIMIT).await);
    assert_eq!((answered[0].request_id, answered[0].code), (1, 0));
    assert!(!answered[0].not_run);
    stopping
        .await
        .expect("the shutdown task")
        .expect("a clean stop");
}

#[tokio::test]
async fn a_consumer_sends_a_call_refused_as_not_run_to_another_provider() {
    let server =
        Server::new(Default::default()).add_service(EchoServer::new(EchoService::named("b")));
    let (good, handle) = spawn_local(server).await.expect("a provider");
    for not_run in [true, false] {
        let (asked_tx, asked) = tokio::sync::oneshot::channel();
        let fake = fake_provider(move |id| {
            let _ = asked_tx.send(());
            response_marked(id, Code::Unavailable.as_i32(), "shutting down", not_run)
        })
        .await;
        // Round robin, the fake first.
        let channel = Channel::to_addresses(vec![fake, good.to_string()], ClientConfig::default());
        let client = EchoClient::new(channel);
        // Echo is not idempotent: only a call that was not run may go to another provider.
        let outcome = client.echo(EchoRequest::default()).await;
        asked.await.expect("the fake provider was asked first");
        match (not_run, outcome) {
            (true, Ok(reply)) => assert_eq!(reply.served_by, "b"),
            (false, Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status}"),
            (not_run, outcome) => panic!("not_run {not_run}: {outcome:?}"),
        }
    }
    handle.shutdown().await.expect("a clean stop");
}
