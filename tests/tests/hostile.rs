//! A provider process against clients an attacker or a broken network makes: one that never
//! reads what it asked for, and callers that give up while the provider is frozen (SIGSTOP),
//! whose calls must then never run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mprpc::client::Channel;
use mprpc::protocol::FrameKind;
use mprpc_tests::http::{get, sample};
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::raw;
use mprpc_tests::{EchoClient, EchoRequest};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");
const MIB: usize = 1 << 20;

async fn metrics(provider: &ProviderProcess) -> String {
    let admin = provider.admin.expect("started with --admin");
    let reply = get(admin, "/metrics").await;
    assert_eq!(reply.status, 200);
    reply.body
}

const ECHO_CALLS: &str =
    r#"mprpc_calls_total{side="server",service="mprpc.test.Echo",method="Echo",code="Ok"}"#;

fn rejected(code: &str) -> String {
    format!(r#"mprpc_rejected_calls_total{{code="{code}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_make_the_provider_hold_more_than_its_budget() {
    let budget = MIB;
    let provider = ProviderProcess::start(
        PROVIDER,
        &[
            "budget",
            "--admin",
            "127.0.0.1:0",
            "--max-unwritten-bytes",
            &budget.to_string(),
        ],
    );
    let rss_before = provider.rss();

    // 64 pings of 1 MiB (each answered by a 1 MiB pong) and 64 calls to a service whose
    // name is 1 MiB long (each answered by an error naming it), 128 MiB in all; never read.
    let mut abuse = BytesMut::new();
    for id in 1..=64u64 {
        abuse.extend_from_slice(&raw::ping(Bytes::from(vec![b'p'; MIB])));
        let name = "s".repeat(MIB);
        abuse.extend_from_slice(&raw::request(id, &name, "M", None, Bytes::new()));
    }
    let total = abuse.len();
    let mut hostile = TcpStream::connect(&provider.address).await.unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for chunk in abuse.chunks(64 * 1024) {
                if hostile.write_all(chunk).await.is_err() {
                    break;
                }
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            hostile
        })
    };

    // The provider stops reading: the sender stalls, with most of the abuse unsent.
    let mut last = usize::MAX;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics(&provider).await;
        let now = sent.load(Ordering::SeqCst);
        if sample(&text, "mprpc_read_pauses_total") >= 1.0 && now == last {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender never stalled: {now} of {total} bytes sent"
        );
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let accepted = sent.load(Ordering::SeqCst);
    assert!(
        accepted < 40 * MIB,
        "the provider took {accepted} of {total} bytes from a client that reads nothing"
    );
    let text = metrics(&provider).await;
    let queued = sample(&text, "mprpc_queued_bytes") as usize;
    assert!(queued >= budget / 2, "the gauge shows the queue: {queued}");
    assert!(
        queued <= budget + 3 * MIB,
        "queued {queued} bytes against a budget of {budget}"
    );
    let grown = provider.rss().saturating_sub(rss_before);
    assert!(
        grown < 48 * MIB as u64,
        "the provider grew by {} MiB",
        grown >> 20
    );

    // Others are served all the while.
    let client = EchoClient::new(Channel::to_address(provider.address.clone()));
    let reply = client
        .echo(EchoRequest {
            payload: b"still here".to_vec(),
            ..EchoRequest::default()
        })
        .await
        .expect("another client is served");
    assert_eq!(reply.payload, b"still here");
    writer.abort();
}

/// Opens a connection and makes sure the provider is reading it (a ping answered).
async fn connected(provider: &ProviderProcess) -> TcpStream {
    let mut stream = TcpStream::connect(&provider.address).await.unwrap();
    // Every write goes out at once (no Nagle delay), so it is in the provider's socket
    // before the provider resumes.
    stream.set_nodelay(true).unwrap();
    stream.write_all(&raw::ping(Bytes::new())).await.unwrap();
    raw::read_until(&mut stream, FrameKind::Pong, Duration::from_secs(10)).await;
    stream
}

/// A provider process with its admin pages, frozen (SIGSTOP) with an `Echo` call (id 1,
/// budget `timeout`) waiting in its socket, and the caller's connection.
async fn frozen_with_a_call(name: &str, timeout: Option<Duration>) -> (ProviderProcess, TcpStream) {
    let provider = ProviderProcess::start(PROVIDER, &[name, "--admin", "127.0.0.1:0"]);
    let mut stream = connected(&provider).await;
    provider.signal(Signal::SIGSTOP);
    stream.write_all(&raw::echo(1, timeout)).await.unwrap();
    (provider, stream)
}

/// After the provider resumes: a ping on the same connection is answered, and nothing came
/// before its pong (a call that ran would have replied first: it answers at once).
async fn nothing_replied_before_a_ping(stream: &mut TcpStream) {
    stream
        .write_all(&raw::ping(Bytes::from_static(b"marker")))
        .await
        .unwrap();
    let frames = raw::read_until(stream, FrameKind::Pong, Duration::from_secs(10)).await;
    assert_eq!(&frames.last().unwrap().body[..], b"marker");
    assert!(
        raw::responses(&frames).is_empty(),
        "a call that should not have run replied: {:?}",
        raw::responses(&frames)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_deadline_passed_while_the_provider_was_frozen_never_runs() {
    let (provider, mut stream) =
        frozen_with_a_call("expired", Some(Duration::from_millis(200))).await;
    // The caller's budget runs out while the request waits in the provider's socket.
    tokio::time::sleep(Duration::from_millis(600)).await;
    provider.signal(Signal::SIGCONT);
    nothing_replied_before_a_ping(&mut stream).await;
    let text = metrics(&provider).await;
    assert_eq!(sample(&text, &rejected("DeadlineExceeded")), 1.0, "{text}");
    assert_eq!(sample(&text, ECHO_CALLS), 0.0, "the handler ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_while_the_provider_was_frozen_never_runs() {
    let (provider, mut stream) =
        frozen_with_a_call("cancelled", Some(Duration::from_secs(30))).await;
    stream.write_all(&raw::cancel(1)).await.unwrap();
    provider.signal(Signal::SIGCONT);
    nothing_replied_before_a_ping(&mut stream).await;
    let text = metrics(&provider).await;
    assert_eq!(sample(&text, &rejected("Cancelled")), 1.0, "{text}");
    assert_eq!(sample(&text, ECHO_CALLS), 0.0, "the handler ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_caller_left_while_the_provider_was_frozen_never_runs() {
    let (provider, stream) = frozen_with_a_call("left", Some(Duration::from_secs(30))).await;
    drop(stream);
    provider.signal(Signal::SIGCONT);
    // The provider reads the request and the end of the stream together.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(&provider).await;
        assert_eq!(sample(&text, ECHO_CALLS), 0.0, "the handler ran");
        if sample(&text, &rejected("Cancelled")) == 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call was never dropped: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
