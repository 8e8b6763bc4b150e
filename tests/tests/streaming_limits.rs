//! Streaming calls at scale and against callers the library would never be: 10,000 streams
//! open at once on one connection, a flood of opens past the per-connection limit, a sender
//! ignoring its credit (on one stream, then on the connection), messages for streams that
//! are not open, and calls of the wrong kind. Each is refused or bounded, and the
//! connection's other calls carry on.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::metrics::{Metrics, Side};
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{FrameKind, GoAwayHeader};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::stream::MethodKind;
use mprpc::{Code, Request};
use mprpc_tests::raw;
use mprpc_tests::{EchoClient, EchoServer, EchoService, StreamRequest};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start(config: ServerConfig, metrics: Metrics) -> (String, LocalServer, EchoService) {
    let service = EchoService::named("limits");
    let server = Server::new(config)
        .with_metrics(metrics)
        .add_service(EchoServer::new(service.clone()));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle, service)
}

fn chunk(payload: &[u8]) -> StreamRequest {
    StreamRequest {
        payload: payload.to_vec(),
        ..StreamRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_open_at_once_on_one_connection() {
    const STREAMS: usize = 10_000;
    let config = ServerConfig {
        max_calls_per_connection: 12_000,
        max_concurrent_calls: 12_000,
        ..ServerConfig::default()
    };
    let metrics = Metrics::new();
    let (addr, server, service) = start(config, metrics.clone()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    // Every stream is opened and answers once before any of them ends.
    let mut open = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<StreamRequest>(1);
        let requests = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let replies = client.chat(requests).await.expect("stream opens");
        tx.send(chunk(&(i as u32).to_be_bytes())).await.unwrap();
        open.push((tx, replies));
    }
    let answered = futures_util::stream::iter(open.iter_mut().enumerate())
        .map(|(i, (_, replies))| async move {
            let reply = tokio::time::timeout(Duration::from_secs(60), replies.message())
                .await
                .expect("an answer within 60 s")
                .expect("answered")
                .expect("still open");
            assert_eq!(reply.payload, (i as u32).to_be_bytes().to_vec());
        })
        .buffer_unordered(1000)
        .count()
        .await;
    assert_eq!(answered, STREAMS);
    let server_side = metrics.snapshot();
    let chat = server_side
        .methods
        .iter()
        .find(|m| m.side == Side::Server && m.method == "Chat")
        .expect("the provider's Chat counters");
    assert_eq!(chat.in_flight, STREAMS as u64, "all open at once");
    // Then every one ends well.
    let ended = futures_util::stream::iter(open)
        .map(|(tx, mut replies)| async move {
            drop(tx);
            let end = tokio::time::timeout(Duration::from_secs(60), replies.message()).await;
            assert!(matches!(end, Ok(Ok(None))), "ends well: {end:?}");
        })
        .buffer_unordered(1000)
        .count()
        .await;
    assert_eq!(ended, STREAMS);
    let counters = service.counters.clone();
    mprpc_tests::wait_until("every handler finished", Duration::from_secs(30), || {
        counters.finished.load(std::sync::atomic::Ordering::SeqCst) == STREAMS
    })
    .await;
    let snapshot = metrics.snapshot();
    let chat = snapshot
        .methods
        .iter()
        .find(|m| m.side == Side::Server && m.method == "Chat")
        .unwrap();
    assert_eq!(chat.by_code.get(&Code::Ok), Some(&(STREAMS as u64)));
    assert_eq!(chat.messages_received, STREAMS as u64);
    assert_eq!(chat.messages_sent, STREAMS as u64);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_opens_past_the_connection_limit_is_refused() {
    let config = ServerConfig {
        max_calls_per_connection: 100,
        ..ServerConfig::default()
    };
    let (addr, server, _) = start(config, Metrics::new()).await;
    let client = EchoClient::new(Channel::to_address(addr));
    let mut streams = Vec::new();
    for _ in 0..150 {
        let request = StreamRequest {
            count: 1,
            interval_ms: 60_000,
            ..StreamRequest::default()
        };
        streams.push(client.subscribe(request).await.expect("sent"));
    }
    // Each waits for its first item at once: the refused get theirs at once, the admitted
    // none (their one reply is a minute away).
    let firsts = futures_util::future::join_all(
        streams
            .iter_mut()
            .map(|replies| tokio::time::timeout(Duration::from_secs(3), replies.message())),
    )
    .await;
    let mut refused = 0;
    for first in firsts {
        match first {
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
                refused += 1;
            }
            Ok(other) => panic!("a stream of one reply a minute away gave {other:?}"),
            Err(_) => {}
        }
    }
    assert_eq!(refused, 50, "the 50 past the limit of 100 are refused");
    // Dropping the open streams cancels them and frees the connection's slots.
    drop(streams);
    let mut tries = 0;
    while let Err(status) = client.echo(mprpc_tests::EchoRequest::default()).await {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        tries += 1;
        assert!(tries < 200, "the slots were never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await.unwrap();
}

/// An upload whose handler waits a minute before reading its second message.
fn slow_upload(id: u64) -> bytes::BytesMut {
    let mut frames = raw::stream_request(
        id,
        "Upload",
        MethodKind::ClientStreaming.wire(),
        0,
        Bytes::new(),
    );
    let first = StreamRequest {
        interval_ms: 60_000,
        ..StreamRequest::default()
    };
    frames.extend_from_slice(&raw::message(id, Bytes::from(first.encode_to_vec())));
    frames
}

/// Sends a unary call (id 2) after a stream (id 1) that ignored its credit: the stream is
/// ended with `ResourceExhausted`, naming the window, and the call beside it is answered.
async fn stream_1_refused_unary_2_served(conn: &mut TcpStream) {
    conn.write_all(&raw::echo(2, None)).await.unwrap();
    let mut replies = raw::read_responses(conn, 2, Duration::from_secs(10)).await;
    replies.sort_by_key(|r| r.request_id);
    assert_eq!(
        replies[0].code,
        Code::ResourceExhausted as i32,
        "{:?}",
        replies[0]
    );
    assert!(
        replies[0].message.contains("flow-control window"),
        "{:?}",
        replies[0]
    );
    assert_eq!(
        replies[1].code, 0,
        "the unary call beside it: {:?}",
        replies[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_past_its_stream_credit_loses_that_stream_only() {
    let config = ServerConfig {
        stream_window: 256 * 1024,
        ..ServerConfig::default()
    };
    let (addr, server, _) = start(config, Metrics::new()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(&slow_upload(1)).await.unwrap();
    // 1 MiB more in 64 KiB messages, ignoring the window of 256 KiB, then a unary call.
    let chunk = chunk(&vec![0; 64 * 1024]).encode_to_vec();
    for _ in 0..16 {
        conn.write_all(&raw::message(1, Bytes::from(chunk.clone())))
            .await
            .unwrap();
    }
    stream_1_refused_unary_2_served(&mut conn).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_messages_cost_credit_too() {
    // Empty messages to a handler that does not read: each costs a frame's charge of
    // credit, so the window of 64 KiB holds about a thousand of them, not millions.
    let config = ServerConfig {
        stream_window: 64 * 1024,
        ..ServerConfig::default()
    };
    let (addr, server, _) = start(config, Metrics::new()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(&slow_upload(1)).await.unwrap();
    let mut flood = bytes::BytesMut::new();
    for _ in 0..5_000 {
        flood.extend_from_slice(&raw::message(1, Bytes::new()));
    }
    conn.write_all(&flood).await.unwrap();
    stream_1_refused_unary_2_served(&mut conn).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_past_the_connection_credit_is_closed_with_a_go_away() {
    let config = ServerConfig {
        stream_window: 4 * 1024 * 1024,
        connection_window: 1024 * 1024,
        ..ServerConfig::default()
    };
    let (addr, server, _) = start(config, Metrics::new()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // Two streams of 3 MiB each: within each stream's window, past the connection's.
    conn.write_all(&slow_upload(1)).await.unwrap();
    conn.write_all(&slow_upload(3)).await.unwrap();
    let chunk = chunk(&vec![0; 64 * 1024]).encode_to_vec();
    for _ in 0..48 {
        for id in [1, 3] {
            if conn
                .write_all(&raw::message(id, Bytes::from(chunk.clone())))
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let frames = raw::read_until(&mut conn, FrameKind::GoAway, Duration::from_secs(10)).await;
    let go_away: GoAwayHeader = decode_header(frames.last().unwrap()).unwrap();
    assert!(
        go_away.message.contains("connection's flow-control window"),
        "{go_away:?}"
    );
    // The provider serves other connections.
    let client = EchoClient::new(Channel::to_address(addr));
    client
        .echo(mprpc_tests::EchoRequest::default())
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_streams_that_are_not_open_are_dropped_and_the_connection_goes_on() {
    let (addr, server, _) = start(ServerConfig::default(), Metrics::new()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // 4 MiB of messages and half-closes for streams never opened: more than the initial
    // connection window, so their credit must have been given back.
    for id in 0..64u64 {
        conn.write_all(&raw::message(1000 + id, Bytes::from(vec![0; 64 * 1024])))
            .await
            .unwrap();
        conn.write_all(&raw::half_close(1000 + id)).await.unwrap();
    }
    conn.write_all(&raw::echo(1, None)).await.unwrap();
    let frames = raw::read_until(&mut conn, FrameKind::Response, Duration::from_secs(10)).await;
    let replies = raw::responses(&frames);
    assert_eq!((replies[0].request_id, replies[0].code), (1, 0));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_the_wrong_kind_is_refused_before_anything_runs() {
    let (addr, server, service) = start(ServerConfig::default(), Metrics::new()).await;
    let channel = Channel::to_address(addr.clone());
    // A unary call to a streaming method.
    let status = channel
        .unary_raw("mprpc.test.Echo", "Subscribe", Request::new(Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert!(status.message().contains("server-streaming"), "{status}");
    // A streaming call to a unary method.
    let mut replies = channel
        .streaming_raw(
            "mprpc.test.Echo",
            "Echo",
            MethodKind::ServerStreaming,
            Request::new(Bytes::new()),
            None,
        )
        .await
        .unwrap();
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    // A kind that does not exist.
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(&raw::stream_request(1, "Subscribe", 7, 0, Bytes::new()))
        .await
        .unwrap();
    let frames = raw::read_until(&mut conn, FrameKind::Response, Duration::from_secs(10)).await;
    let replies = raw::responses(&frames);
    assert_eq!(
        replies[0].code,
        Code::InvalidArgument as i32,
        "{:?}",
        replies[0]
    );
    assert_eq!(
        service
            .counters
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no handler ran"
    );
    server.shutdown().await.unwrap();
}
