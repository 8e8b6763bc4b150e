//! Streaming calls against a real provider process: killed (SIGKILL) or frozen (SIGSTOP)
//! mid-stream, and stopped gracefully (SIGTERM) with streams open, some finishing within
//! the shutdown grace and one cut off when it runs out.

use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::ClientConfig;
use mprpc::stream::Streaming;
use mprpc::Code;
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::{EchoClient, StreamReply, StreamRequest};
use nix::sys::signal::Signal;

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");

/// A stream of replies every `interval_ms`, for as long as anyone wants.
fn endless(interval_ms: u32) -> StreamRequest {
    StreamRequest {
        count: u32::MAX,
        interval_ms,
        ..StreamRequest::default()
    }
}

/// Reads `n` replies, each within 10 s.
async fn read(replies: &mut Streaming<StreamReply>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("a reply within 10 s")
            .expect("a reply, not a failure")
            .expect("the stream goes on");
    }
}

/// Reads until the stream fails (within `limit`); returns the failure and when it came.
async fn read_to_failure(
    replies: &mut Streaming<StreamReply>,
    limit: Duration,
) -> (mprpc::Status, Duration) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(limit, async {
        loop {
            match replies.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended well"),
                Err(status) => return status,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not fail within {limit:?}"));
    (outcome, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_stream_ends_it_with_unavailable_at_once() {
    let provider = ProviderProcess::start(PROVIDER, &["killed", "--quiet"]);
    let client = EchoClient::new(Channel::to_address(provider.address.clone()));
    let mut replies = client.subscribe(endless(5)).await.expect("stream opens");
    read(&mut replies, 3).await;
    // A client stream too: its uploader is blocked or sending when the provider dies.
    let upload = {
        let client = client.clone();
        let chunks = futures_util::stream::repeat_with(|| StreamRequest {
            payload: vec![1; 1024],
            interval_ms: 5,
            ..StreamRequest::default()
        });
        tokio::spawn(async move { client.upload(chunks).await })
    };
    provider.signal(Signal::SIGKILL);
    let (status, took) = read_to_failure(&mut replies, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let status = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("the upload ends")
        .unwrap()
        .expect_err("the provider died");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_frozen_mid_stream_is_noticed_by_the_ping() {
    let provider = ProviderProcess::start(PROVIDER, &["frozen", "--quiet"]);
    let config = ClientConfig {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(400),
        ..ClientConfig::default()
    };
    let channel = Channel::to_addresses(vec![provider.address.clone()], config);
    let client = EchoClient::new(channel);
    let mut replies = client.subscribe(endless(5)).await.expect("stream opens");
    read(&mut replies, 3).await;
    provider.signal(Signal::SIGSTOP);
    let (status, took) = read_to_failure(&mut replies, Duration::from_secs(20)).await;
    provider.signal(Signal::SIGCONT);
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    // No deadline was set: only the ping can end this stream.
    assert!(took < Duration::from_secs(5), "noticed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_streams_finish_within_the_grace_then_cuts_off_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("provider.toml");
    std::fs::write(
        &config,
        "[server]\naddress = \"127.0.0.1:0\"\nshutdown_grace = \"1500ms\"\n",
    )
    .unwrap();
    let mut provider = ProviderProcess::start(
        PROVIDER,
        &["graceful", "--quiet", "--config", config.to_str().unwrap()],
    );
    let client = EchoClient::new(Channel::to_address(provider.address.clone()));
    // Ends by itself about 0.5 s after the signal, well within the grace.
    let mut finishing = client
        .subscribe(StreamRequest {
            count: 50,
            interval_ms: 10,
            ..StreamRequest::default()
        })
        .await
        .expect("stream opens");
    let mut endless = client.subscribe(endless(10)).await.expect("stream opens");
    read(&mut finishing, 1).await;
    read(&mut endless, 1).await;
    provider.signal(Signal::SIGTERM);
    let mut got = 1;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), finishing.message()).await {
            Ok(Ok(Some(reply))) => {
                assert_eq!(reply.seq, got);
                got += 1;
            }
            Ok(Ok(None)) => break,
            Ok(Err(status)) => panic!("the finishing stream failed after {got}: {status}"),
            Err(_) => panic!("the finishing stream stalled after {got}"),
        }
    }
    assert_eq!(
        got, 50,
        "every reply of the stream that ended within the grace"
    );
    let (status, _) = read_to_failure(&mut endless, Duration::from_secs(15)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(
        status.message().contains("shutdown grace"),
        "says why: {status}"
    );
    let exit = tokio::task::spawn_blocking(move || provider.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("the provider exits after its grace");
    assert!(exit.success(), "{exit:?}");
}
