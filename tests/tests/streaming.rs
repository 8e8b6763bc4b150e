//! Streaming calls end to end over real TCP on 127.0.0.1: the three kinds, flow control,
//! cancellation from either side, deadlines, and what a provider's end does to its streams.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use mprpc::client::{BlockingChannel, Channel};
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::{
    wait_until, EchoBlockingClient, EchoClient, EchoServer, EchoService, StreamRequest,
};

async fn start(service: EchoService, config: ServerConfig) -> (String, LocalServer) {
    let server = Server::new(config).add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

fn chunk(payload: &[u8]) -> StreamRequest {
    StreamRequest {
        payload: payload.to_vec(),
        ..StreamRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_delivers_every_reply_in_order_then_ends() {
    let service = EchoService::named("a");
    let (addr, server) = start(service.clone(), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let request = StreamRequest {
        count: 1000,
        size: 100,
        ..StreamRequest::default()
    };
    let mut replies = client.subscribe(request).await.expect("stream opens");
    let mut seq = 0;
    while let Some(reply) = replies.message().await.expect("reply") {
        assert_eq!(reply.seq, seq);
        assert_eq!(reply.payload.len(), 100);
        seq += 1;
    }
    assert_eq!(seq, 1000);
    assert!(replies.trailers().is_some(), "ended well, with trailers");
    assert_eq!(service.counters.finished.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_counts_every_request() {
    let (addr, server) = start(EchoService::named("a"), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let chunks = (0..500).map(|i| chunk(&vec![7u8; i]));
    let reply = client
        .upload(futures_util::stream::iter(chunks))
        .await
        .expect("upload");
    assert_eq!(reply.messages, 500);
    assert_eq!(reply.bytes, (0..500u64).sum::<u64>());
    // An empty stream is a valid upload too.
    let reply = client
        .upload(futures_util::stream::iter(Vec::<StreamRequest>::new()))
        .await
        .expect("empty upload");
    assert_eq!((reply.messages, reply.bytes), (0, 0));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_streaming_answers_as_requests_arrive() {
    let (addr, server) = start(EchoService::named("a"), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    // A ping-pong: each reply comes back before the next request is sent.
    let (tx2, mut rx2) = tokio::sync::mpsc::channel::<StreamRequest>(1);
    let requests = futures_util::stream::poll_fn(move |cx| rx2.poll_recv(cx));
    let mut replies = client.chat(requests).await.expect("chat opens");
    for i in 0..100u32 {
        tx2.send(chunk(&i.to_be_bytes())).await.unwrap();
        let reply = replies.message().await.expect("reply").expect("not ended");
        assert_eq!(reply.payload, i.to_be_bytes().to_vec());
    }
    drop(tx2);
    assert!(replies.message().await.expect("ends well").is_none());
    server.shutdown().await.unwrap();
}

#[test]
fn the_blocking_client_streams_with_iterators() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, server) = runtime.block_on(start(EchoService::named("a"), ServerConfig::default()));
    let client = EchoBlockingClient::new(BlockingChannel::to_address(addr).unwrap());
    let request = StreamRequest {
        count: 10,
        ..StreamRequest::default()
    };
    let seqs: Vec<u64> = client
        .subscribe(request)
        .unwrap()
        .map(|r| r.unwrap().seq)
        .collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    let reply = client.upload((0..10).map(|_| chunk(b"abc"))).unwrap();
    assert_eq!((reply.messages, reply.bytes), (10, 30));
    let echoed: Vec<Vec<u8>> = client
        .chat(vec![chunk(b"x"), chunk(b"y")])
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect();
    assert_eq!(echoed, vec![b"x".to_vec(), b"y".to_vec()]);
    runtime.block_on(server.shutdown()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_mid_stream_ends_it_with_its_status() {
    let (addr, server) = start(EchoService::named("a"), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let request = StreamRequest {
        count: 3,
        fail_code: Code::Aborted.as_i32(),
        fail_message: "gave up".into(),
        ..StreamRequest::default()
    };
    let mut replies = client.subscribe(request).await.unwrap();
    for _ in 0..3 {
        replies.message().await.unwrap().unwrap();
    }
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "gave up");
    assert!(replies.next().await.is_none(), "nothing after the failure");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_cancels_the_handler_promptly() {
    let service = EchoService::named("a");
    let (addr, server) = start(service.clone(), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let request = StreamRequest {
        count: 1_000_000,
        interval_ms: 1,
        ..StreamRequest::default()
    };
    let mut replies = client.subscribe(request).await.unwrap();
    replies.message().await.unwrap().unwrap();
    drop(replies);
    let counters = service.counters.clone();
    wait_until("the handler is dropped", Duration::from_secs(5), || {
        counters.abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_ends_a_long_stream_on_both_sides() {
    let service = EchoService::named("a");
    let (addr, server) = start(service.clone(), ServerConfig::default()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let request = StreamRequest {
        count: 1_000_000,
        interval_ms: 5,
        ..StreamRequest::default()
    };
    let started = std::time::Instant::now();
    let mut replies = client
        .subscribe(Request::new(request).with_timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    let mut got = 0;
    let status = loop {
        match replies.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("ended well"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(got > 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    let counters = service.counters.clone();
    wait_until("the handler is dropped", Duration::from_secs(5), || {
        counters.abandoned.load(Ordering::SeqCst) == 1
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_layers_see_a_stream_open_and_end_and_may_refuse_it() {
    use mprpc::client::layer::{self, ClientCall};
    use std::sync::{Arc, Mutex};
    let (addr, server) = start(EchoService::named("a"), ServerConfig::default()).await;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = log.clone();
    let watch = layer::from_fn(move |mut call: ClientCall<'_>, next: layer::Next<'_>| {
        let log = seen.clone();
        Box::pin(async move {
            if call.method() == "Chat" {
                return Err(mprpc::Status::permission_denied("no chatting"));
            }
            call.metadata_mut().insert("tenant", "t1");
            log.lock().unwrap().push(format!("start {}", call.method()));
            let outcome = next.run(call).await;
            let code = outcome.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
            log.lock().unwrap().push(format!("end {code:?}"));
            outcome
        })
    });
    let client = EchoClient::new(Channel::to_address(addr).layer(watch));
    let mut replies = client
        .subscribe(StreamRequest {
            count: 3,
            ..StreamRequest::default()
        })
        .await
        .unwrap();
    let mut n = 0;
    while replies.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    let ended = log.clone();
    wait_until("the layer sees the end", Duration::from_secs(5), || {
        ended.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*log.lock().unwrap(), ["start Subscribe", "end Ok"]);
    // Dropped early: the layer sees a cancelled call.
    let replies = client
        .subscribe(StreamRequest {
            count: 1000,
            interval_ms: 10,
            ..StreamRequest::default()
        })
        .await
        .unwrap();
    drop(replies);
    let ended = log.clone();
    wait_until("the layer sees the drop", Duration::from_secs(5), || {
        ended.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(log.lock().unwrap()[3], "end Cancelled");
    let refused = client
        .chat(futures_util::stream::iter(vec![chunk(b"x")]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_layers_wrap_a_stream_from_its_start_to_its_end() {
    use mprpc::server::layer::{from_fn, Next, ServerCall};
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = log.clone();
    let server = Server::new(ServerConfig::default())
        .layer(from_fn(move |call: ServerCall, next: Next| {
            let log = seen.clone();
            async move {
                let method = call.method().to_owned();
                if method == "Chat" {
                    return Err(mprpc::Status::permission_denied("no chatting"));
                }
                log.lock().unwrap().push(format!("start {method}"));
                let outcome = next.run(call).await;
                let code = outcome.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
                log.lock().unwrap().push(format!("end {method} {code:?}"));
                outcome
            }
        }))
        .add_service(EchoServer::new(EchoService::named("a")));
    let (addr, server) = spawn_local(server).await.expect("start provider");
    let client = EchoClient::new(Channel::to_address(addr.to_string()));
    let mut replies = client
        .subscribe(StreamRequest {
            count: 3,
            interval_ms: 200,
            fail_code: Code::Aborted.as_i32(),
            ..StreamRequest::default()
        })
        .await
        .unwrap();
    for i in 0..3 {
        replies.message().await.unwrap().unwrap();
        if i < 2 {
            // The layer is still inside the call while its replies flow (the last is
            // at least 200 ms away).
            assert_eq!(*log.lock().unwrap(), ["start Subscribe"]);
        }
    }
    assert_eq!(replies.message().await.unwrap_err().code(), Code::Aborted);
    let ended = log.clone();
    wait_until("the layer sees the end", Duration::from_secs(5), || {
        ended.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(log.lock().unwrap()[1], "end Subscribe Aborted");
    // A layer refuses a stream before its handler runs.
    let mut refused = client
        .chat(futures_util::stream::iter(vec![chunk(b"x")]))
        .await
        .unwrap();
    let status = refused.message().await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status}");
    server.shutdown().await.unwrap();
}
