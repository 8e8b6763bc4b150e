//! A reader that stops reading a fast stream: the provider (a real process) blocks on credit
//! and both sides' memory stays flat, while other calls on the same connection go on. Alone
//! in its test binary, so that this process's memory is the stream's alone.

use std::time::Duration;

use mprpc::client::Channel;
use mprpc::config::ClientConfig;
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::{EchoClient, EchoRequest, StreamRequest};

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");
const MIB: u64 = 1 << 20;
const MESSAGE: u32 = 64 * 1024;

/// This process's resident memory, in bytes.
fn own_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmRSS line")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_holds_the_sender_back_not_memory() {
    let provider = ProviderProcess::start(PROVIDER, &["stall", "--quiet"]);
    let window = 1024 * 1024;
    let config = ClientConfig {
        stream_window: window,
        ..ClientConfig::default()
    };
    let channel = Channel::to_addresses(vec![provider.address.clone()], config);
    let client = EchoClient::new(channel);
    // Warm both processes up, so that what follows is the stream's cost alone.
    for _ in 0..100 {
        client.echo(EchoRequest::default()).await.expect("warm-up");
    }
    let mut replies = client
        .subscribe(StreamRequest {
            count: u32::MAX,
            size: MESSAGE,
            ..StreamRequest::default()
        })
        .await
        .expect("stream opens");
    // Reads 64 MiB, then stops reading.
    for _ in 0..1024 {
        replies.message().await.expect("a reply").expect("goes on");
    }
    // The window fills (it would have at once at this speed); then memory is measured over
    // 3 s in which, unbounded, the provider would have sent gigabytes.
    let full = (window as u64 * 9) / 10;
    let mut checks = 0;
    while (replies.buffered_bytes() as u64) < full {
        checks += 1;
        assert!(checks < 500, "the window never filled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (provider_before, own_before) = (provider.rss(), own_rss());
    let mut highest = (provider_before, own_before, replies.buffered_bytes() as u64);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        highest.0 = highest.0.max(provider.rss());
        highest.1 = highest.1.max(own_rss());
        highest.2 = highest.2.max(replies.buffered_bytes() as u64);
        // Other calls on the same connection are answered meanwhile.
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            client.echo(EchoRequest {
                payload: vec![7; 100],
                ..EchoRequest::default()
            }),
        )
        .await
        .expect("a unary call beside the stalled stream is answered")
        .expect("answered well");
        assert_eq!(reply.payload.len(), 100);
    }
    let grown = (
        highest.0.saturating_sub(provider_before),
        highest.1.saturating_sub(own_before),
    );
    println!(
        "stalled 3 s: consumer buffered at most {} KiB (window {} KiB); RSS grew by {} KiB \
         (provider) and {} KiB (consumer)",
        highest.2 / 1024,
        window / 1024,
        grown.0 / 1024,
        grown.1 / 1024
    );
    assert!(
        highest.2 <= window as u64 + u64::from(MESSAGE),
        "the consumer holds at most its window and one message: {}",
        highest.2
    );
    assert!(grown.0 < 16 * MIB, "the provider's memory grew {grown:?}");
    assert!(grown.1 < 16 * MIB, "the consumer's memory grew {grown:?}");
    // Reading again: the stream picks up where it stopped.
    for _ in 0..256 {
        replies.message().await.expect("a reply").expect("goes on");
    }
    drop(replies);
}
