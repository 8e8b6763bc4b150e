//! What peers that do not speak the protocol, or abuse it, get: a clear error on their own
//! connection, and no effect on anybody else's.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::metrics::Metrics;
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{FrameDecoder, FrameKind, GoAwayHeader, OutFrame, RequestHeader};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::Code;
use mprpc_tests::{wait_until, EchoClient, EchoRequest, EchoServer, EchoService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// The next whole frame in `buf`, if there is one.
fn next_frame(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Option<mprpc::protocol::Frame> {
    decoder.decode(buf).expect("provider sends valid frames")
}

async fn start(config: ServerConfig) -> (String, LocalServer, EchoService) {
    let service = EchoService::named("a");
    let server = Server::new(config).add_service(EchoServer::new(service.clone()));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle, service)
}

/// Reads frames until the provider closes the connection; returns the GoAway it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Option<GoAwayHeader> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut go_away = None;
    loop {
        while let Some(frame) = next_frame(&mut decoder, &mut buf) {
            if frame.kind == FrameKind::GoAway {
                go_away = Some(decode_header(&frame).expect("GoAway header"));
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
            .await
            .expect("provider closes the connection in time");
        match read {
            Ok(0) | Err(_) => return go_away,
            Ok(_) => {}
        }
    }
}

/// Long calls on a healthy connection, started before the abuse and checked after it.
fn healthy_calls(addr: &str, n: usize) -> Vec<tokio::task::JoinHandle<Result<(), mprpc::Status>>> {
    let client = EchoClient::new(Channel::to_address(addr.to_owned()));
    (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let payload = format!("call {i}").into_bytes();
                let reply = client
                    .echo(EchoRequest {
                        payload: payload.clone(),
                        delay_ms: 300,
                        ..EchoRequest::default()
                    })
                    .await?;
                assert_eq!(reply.payload, payload);
                Ok(())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_get_an_error_and_never_affect_another_connection() {
    let (addr, server, service) = start(ServerConfig::default()).await;
    let healthy = healthy_calls(&addr, 100);
    let counters = service.counters.clone();
    wait_until("healthy calls running", Duration::from_secs(5), || {
        counters.started.load(Ordering::SeqCst) == 100
    })
    .await;

    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"\x19\x00\x00\x00\x0a\x0eUserServiceRpc"[..],
        &b"mp\x07\x01"[..],
        &b"mp\x01\x63\x00\x00\x00\x00\x00\x00\x00\x00"[..],
    ] {
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(garbage).await.unwrap();
        let go_away = read_until_closed(&mut raw)
            .await
            .expect("a GoAway saying why");
        assert_ne!(go_away.code, 0);
        assert!(!go_away.message.is_empty());
    }
    for call in healthy {
        call.await.unwrap().expect("healthy connection unaffected");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_maximum_gets_a_clear_error_and_others_are_served() {
    let config = ServerConfig {
        max_frame_size: 1 << 20,
        ..ServerConfig::default()
    };
    let (addr, server, service) = start(config).await;
    let healthy = healthy_calls(&addr, 20);
    let counters = service.counters.clone();
    wait_until("healthy calls running", Duration::from_secs(5), || {
        counters.started.load(Ordering::SeqCst) == 20
    })
    .await;

    // Announce a 2 GiB body; send only the fixed header.
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let mut head = Vec::new();
    head.extend_from_slice(b"mp\x01\x01");
    head.extend_from_slice(&0u32.to_be_bytes());
    head.extend_from_slice(&(2u32 << 30).to_be_bytes());
    raw.write_all(&head).await.unwrap();
    let go_away = read_until_closed(&mut raw).await.expect("a GoAway");
    assert_eq!(go_away.code, Code::ResourceExhausted.as_i32());
    assert!(go_away.message.contains("exceeds"), "{}", go_away.message);

    for call in healthy {
        call.await.unwrap().expect("other connections served");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_truncated_frame_then_close_leaves_the_provider_serving() {
    let (addr, server, _service) = start(ServerConfig::default()).await;
    let mut buf = BytesMut::new();
    OutFrame::Request(
        RequestHeader {
            request_id: 1,
            service: "mprpc.test.Echo".into(),
            method: "Echo".into(),
            timeout_us: 0,
            metadata: vec![],
            ..RequestHeader::default()
        },
        bytes::Bytes::from_static(b"\x0a\x05hello").into(),
    )
    .encode(&mut buf);
    for cut in [1, 5, 12, buf.len() - 1] {
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&buf[..cut]).await.unwrap();
        raw.shutdown().await.unwrap();
        let _ = read_until_closed(&mut raw).await;
    }
    let client = EchoClient::new(Channel::to_address(addr));
    client
        .echo(EchoRequest::default())
        .await
        .expect("provider still serves");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_in_one_write_all_get_answers() {
    let (addr, server, _service) = start(ServerConfig::default()).await;
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&echo_calls(3, Bytes::new())).await.unwrap();
    let mut answered: Vec<u64> = read_replies(&mut raw, 3)
        .await
        .into_iter()
        .map(|h| {
            assert_eq!(h.code, 0);
            h.request_id
        })
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, vec![1, 2, 3]);
    server.shutdown().await.unwrap();
}

/// `n` Echo calls with request ids 1 to `n` and the same `body`, in one buffer.
fn echo_calls(n: u64, body: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    for id in 1..=n {
        buf.extend_from_slice(&mprpc_tests::raw::request(
            id,
            "mprpc.test.Echo",
            "Echo",
            None,
            body.clone(),
        ));
    }
    buf
}

/// Reads `n` response headers, in the order they come.
async fn read_replies(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    n: usize,
) -> Vec<mprpc::protocol::ResponseHeader> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut input = BytesMut::new();
    let mut replies = Vec::with_capacity(n);
    loop {
        while let Some(frame) = next_frame(&mut decoder, &mut input) {
            assert_eq!(frame.kind, FrameKind::Response);
            replies.push(decode_header(&frame).expect("response header"));
        }
        if replies.len() >= n {
            return replies;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut input))
            .await
            .expect("replies in time")
            .unwrap();
        assert!(read > 0, "provider closed early");
    }
}

/// `n` calls for 16 KiB replies, in one buffer.
fn greedy_calls(n: u64) -> BytesMut {
    use prost::Message;
    let request = EchoRequest {
        payload: vec![7; 16 * 1024],
        ..EchoRequest::default()
    };
    echo_calls(n, Bytes::from(request.encode_to_vec()))
}

async fn start_with_metrics(
    config: ServerConfig,
) -> (SocketAddr, LocalServer, EchoService, Metrics) {
    let metrics = Metrics::new();
    let service = EchoService::named("a");
    let server = Server::new(config)
        .with_metrics(metrics.clone())
        .add_service(EchoServer::new(service.clone()));
    let (addr, server) = spawn_local(server).await.expect("start provider");
    (addr, server, service, metrics)
}

/// A well-behaved client, served 100 calls in full; it is returned to call again.
async fn served_in_full(addr: SocketAddr) -> EchoClient {
    let client = EchoClient::new(Channel::to_address(addr.to_string()));
    for i in 0..100 {
        let reply = client
            .echo(EchoRequest {
                payload: format!("call {i}").into_bytes(),
                ..EchoRequest::default()
            })
            .await
            .expect("a well-behaved client is served");
        assert_eq!(reply.payload, format!("call {i}").into_bytes());
    }
    client
}

/// Waits until the greedy client's connection is closed, for its write timeout (the
/// well-behaved client's stays open).
async fn greedy_closed_after_its_write_timeout(metrics: &Metrics) {
    wait_until(
        "the greedy connection closed",
        Duration::from_secs(15),
        || metrics.snapshot().server_connections == 1,
    )
    .await;
    assert_eq!(metrics.snapshot().server_write_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_starves_nobody_and_is_cut_off() {
    let (addr, server, service, metrics) = start_with_metrics(ServerConfig {
        max_concurrent_calls: 32,
        max_calls_per_connection: 64,
        write_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await;

    // The greedy client: 4,000 calls for 16 KiB replies (64 MB), and it never reads one.
    let buf = greedy_calls(4_000);
    let (greedy_rd, mut greedy_wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let sender = tokio::spawn(async move {
        // Fails once the provider gives up on the connection.
        let _ = greedy_wr.write_all(&buf).await;
        greedy_wr
    });
    // Its replies fill the socket and the connection's queue (1,024 frames); then its calls
    // wait for room, up to its 64 slots, more than the provider's 32 permits.
    let counters = service.counters.clone();
    wait_until(
        "the greedy client's replies fill its connection",
        Duration::from_secs(10),
        || {
            metrics
                .snapshot()
                .rejected
                .contains_key(&Code::ResourceExhausted)
        },
    )
    .await;
    assert!(
        counters.finished.load(Ordering::SeqCst) < 4_000,
        "the provider stopped taking calls it cannot deliver"
    );

    // Meanwhile a well-behaved client is served in full: waiting replies hold no permits.
    let _client = served_in_full(addr).await;

    // And after `write_timeout` with no byte read, the greedy connection is closed.
    greedy_closed_after_its_write_timeout(&metrics).await;
    drop(greedy_rd);
    drop(sender.await.unwrap());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_on_its_replies_is_read_no_further_until_it_catches_up() {
    let (addr, server, service, metrics) = start_with_metrics(ServerConfig {
        max_unwritten_bytes: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let buf = greedy_calls(4_000);
    let sender = tokio::spawn(async move { wr.write_all(&buf).await.map(|()| wr) });
    wait_until(
        "the provider pauses reading while 1 MiB of replies is unread",
        Duration::from_secs(10),
        || metrics.snapshot().read_pauses > 0,
    )
    .await;
    let ran = service.counters.finished.load(Ordering::SeqCst);
    assert!(ran < 4_000, "paused after running {ran} calls");

    // Now read: every call is answered, none refused.
    for reply in read_replies(&mut rd, 4_000).await {
        assert_eq!(reply.code, 0, "{}", reply.message);
    }
    let snapshot = metrics.snapshot();
    println!(
        "{ran} calls ran before the first pause; {} pauses in all",
        snapshot.read_pauses
    );
    assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
    assert_eq!(snapshot.server_write_timeouts, 0);
    sender.await.unwrap().unwrap();
    server.shutdown().await.unwrap();
}

/// `n` Echo calls for replies of 1 KiB: small enough that the provider's reader writes
/// them itself (`protocol/direct.rs`), `n` KiB in all.
fn small_calls(n: u64) -> BytesMut {
    use prost::Message;
    let request = EchoRequest {
        payload: vec![3; 1024],
        ..EchoRequest::default()
    };
    echo_calls(n, Bytes::from(request.encode_to_vec()))
}

/// A connection to `addr` whose receive buffer is small, so that the provider's replies
/// back up into its own socket soon.
async fn connect_with_small_window(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_its_small_replies_late_gets_every_one_whole() {
    let (addr, server, _service, metrics) = start_with_metrics(ServerConfig {
        max_unwritten_bytes: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let (mut rd, mut wr) = connect_with_small_window(addr).await.into_split();
    // 20 MiB of replies: far more than the sockets hold, so the reader's own writes stop
    // part-way through a frame (a task writes the rest), later batches queue behind them,
    // and the provider stops reading at its budget until the client reads.
    let n = 20_000;
    let buf = small_calls(n);
    let sender = tokio::spawn(async move { wr.write_all(&buf).await.map(|()| wr) });
    wait_until(
        "the provider stops reading while the client is behind",
        Duration::from_secs(20),
        || metrics.snapshot().read_pauses > 0,
    )
    .await;
    let mut answered: Vec<u64> = read_replies(&mut rd, n as usize)
        .await
        .into_iter()
        .map(|reply| {
            assert_eq!(reply.code, 0, "{}", reply.message);
            reply.request_id
        })
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, (1..=n).collect::<Vec<_>>());
    let snapshot = metrics.snapshot();
    assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
    assert_eq!(snapshot.server_write_timeouts, 0);
    sender.await.unwrap().unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_replies_written_by_the_reader_and_the_writer_arrive_whole() {
    use prost::Message;
    let (addr, server, _service, metrics) = start_with_metrics(ServerConfig {
        max_unwritten_bytes: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let (mut rd, mut wr) = connect_with_small_window(addr).await.into_split();
    // Most calls ask for 1 KiB (the reader writes those itself when it can, a task the rest
    // of a batch the socket took in part), one in 16 for 32 KiB (always the writer task's):
    // they write to the socket in turns, each part-way at times.
    let n = 8_000u64;
    let size = |id: u64| if id % 16 == 0 { 32 * 1024 } else { 1024 };
    let mut buf = BytesMut::new();
    for id in 1..=n {
        let request = EchoRequest {
            payload: vec![(id % 251) as u8; size(id)],
            ..EchoRequest::default()
        };
        buf.extend_from_slice(&mprpc_tests::raw::request(
            id,
            "mprpc.test.Echo",
            "Echo",
            None,
            Bytes::from(request.encode_to_vec()),
        ));
    }
    let sender = tokio::spawn(async move { wr.write_all(&buf).await.map(|()| wr) });
    // Read late (once the provider has stopped reading, the client behind), then
    // everything, decoding every frame whole.
    wait_until(
        "the provider stops reading while the client is behind",
        Duration::from_secs(20),
        || metrics.snapshot().read_pauses > 0,
    )
    .await;
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut input = BytesMut::new();
    let mut seen = vec![false; n as usize + 1];
    let mut answered = 0;
    while answered < n {
        while let Some(frame) = next_frame(&mut decoder, &mut input) {
            assert_eq!(frame.kind, FrameKind::Response);
            let header: mprpc::protocol::ResponseHeader = decode_header(&frame).unwrap();
            assert_eq!(header.code, 0, "{}", header.message);
            let id = header.request_id;
            let reply = mprpc_tests::EchoResponse::decode(frame.body).expect("a whole reply");
            assert_eq!(
                reply.payload,
                vec![(id % 251) as u8; size(id)],
                "reply {id}"
            );
            assert!(
                !std::mem::replace(&mut seen[id as usize], true),
                "{id} twice"
            );
            answered += 1;
        }
        if answered == n {
            break;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), rd.read_buf(&mut input))
            .await
            .unwrap_or_else(|_| panic!("no reply for 10 s after {answered}"))
            .unwrap();
        assert!(read > 0, "closed after {answered} replies");
    }
    sender.await.unwrap().unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_small_replies_is_cut_off_after_the_write_timeout() {
    let (addr, server, _service, metrics) = start_with_metrics(ServerConfig {
        write_timeout: Duration::from_secs(1),
        max_unwritten_bytes: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let (greedy_rd, mut greedy_wr) = connect_with_small_window(addr).await.into_split();
    let buf = small_calls(20_000);
    let sender = tokio::spawn(async move {
        // Fails once the provider gives up on the connection.
        let _ = greedy_wr.write_all(&buf).await;
        greedy_wr
    });
    wait_until(
        "the provider stops reading the greedy client",
        Duration::from_secs(20),
        || metrics.snapshot().read_pauses > 0,
    )
    .await;
    // Meanwhile another client is served in full.
    let client = served_in_full(addr).await;
    // And after `write_timeout` with no byte read, the greedy connection is closed.
    greedy_closed_after_its_write_timeout(&metrics).await;
    drop(greedy_rd);
    drop(sender.await.unwrap());
    // The well-behaved client's connection still serves.
    client
        .echo(EchoRequest::default())
        .await
        .expect("served after the greedy client is gone");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_reads_fails_the_calls_after_the_write_timeout() {
    // A "provider" that accepts and then reads nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream
    });
    let config = mprpc::config::ClientConfig {
        timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(1),
        ..mprpc::config::ClientConfig::default()
    };
    let client = EchoClient::new(Channel::to_addresses(vec![addr.to_string()], config));
    let started = std::time::Instant::now();
    let status = client
        .echo(EchoRequest {
            payload: vec![1; 8 << 20],
            ..EchoRequest::default()
        })
        .await
        .expect_err("nothing reads the request");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("accepted no bytes"), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed after {:?}, well before the 60 s call timeout",
        started.elapsed()
    );
    drop(holder.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_bomb_is_refused_without_being_decoded() {
    let (addr, server, service, metrics) = start_with_metrics(ServerConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    // A request header of 400,000 empty metadata entries (the attack sent 8 million).
    let mut request = mprpc_tests::raw::echo(1, None);
    let header_len = u32::from_be_bytes(request[4..8].try_into().unwrap()) as usize;
    let bomb = 400_000;
    let mut header = request.split_off(12).split_to(header_len);
    for _ in 0..bomb {
        header.extend_from_slice(&[0x2a, 0x00]);
    }
    request[4..8].copy_from_slice(&(header.len() as u32).to_be_bytes());
    request.extend_from_slice(&header);
    raw.write_all(&request).await.unwrap();
    let replies = read_replies(&mut raw, 1).await;
    assert_eq!(replies[0].request_id, 1);
    assert_eq!(replies[0].code, Code::ResourceExhausted.as_i32());
    assert!(
        replies[0].message.contains("400000 entries")
            && replies[0].message.contains("max_metadata_entries 64"),
        "{}",
        replies[0].message
    );
    assert_eq!(service.counters.started.load(Ordering::SeqCst), 0);
    assert_eq!(metrics.snapshot().rejected[&Code::ResourceExhausted], 1);
    // The connection is still good.
    raw.write_all(&mprpc_tests::raw::echo(2, None))
        .await
        .unwrap();
    assert_eq!(read_replies(&mut raw, 1).await[0].code, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_the_peer_are_quoted_short_in_errors() {
    let (addr, server, _service) = start(ServerConfig::default()).await;
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let long = format!("\x1b[2J{}", "s".repeat(1 << 20));
    raw.write_all(&mprpc_tests::raw::request(
        1,
        &long,
        "M",
        None,
        Bytes::new(),
    ))
    .await
    .unwrap();
    raw.write_all(&mprpc_tests::raw::request(
        2,
        "mprpc.test.Echo",
        &long,
        None,
        Bytes::new(),
    ))
    .await
    .unwrap();
    for reply in read_replies(&mut raw, 2).await {
        assert_eq!(reply.code, Code::Unimplemented.as_i32());
        assert!(reply.message.len() < 512, "{} bytes", reply.message.len());
        assert!(
            reply.message.contains("\\u{1b}[2Jsss") && reply.message.contains("more bytes"),
            "{}",
            reply.message
        );
        assert!(!reply.message.contains('\x1b'));
    }
    server.shutdown().await.unwrap();
}

/// The names in a request's header are UTF-8 on the wire; the provider compares them as
/// bytes, so names that are not UTF-8 name nothing it hosts: each call is refused on its own,
/// and the connection goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_utf8_are_refused_and_the_connection_serves_on() {
    let (addr, server, _service) = start(ServerConfig::default()).await;
    let mut raw = TcpStream::connect(&addr).await.unwrap();
    let mut buf = BytesMut::new();
    let bad: [(u64, &[u8], &[u8]); 2] = [
        (1, b"mprpc.test.\xffEcho", b"Echo"),
        (2, b"mprpc.test.Echo", b"Ec\xc3ho"),
    ];
    for (id, service, method) in bad {
        let header = RequestHeader {
            request_id: id,
            service: Bytes::copy_from_slice(service),
            method: Bytes::copy_from_slice(method),
            ..RequestHeader::default()
        };
        OutFrame::Request(header, Bytes::new().into()).encode(&mut buf);
    }
    buf.extend_from_slice(&mprpc_tests::raw::request(
        3,
        "mprpc.test.Echo",
        "Echo",
        None,
        Bytes::new(),
    ));
    raw.write_all(&buf).await.unwrap();
    let mut replies = read_replies(&mut raw, 3).await;
    replies.sort_by_key(|r| r.request_id);
    assert_eq!(replies[0].code, Code::Unimplemented.as_i32());
    assert!(
        replies[0].message.contains("no service"),
        "{}",
        replies[0].message
    );
    assert_eq!(replies[1].code, Code::Unimplemented.as_i32());
    assert!(
        replies[1].message.contains("has no method"),
        "{}",
        replies[1].message
    );
    assert_eq!(replies[2].code, 0, "{}", replies[2].message);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_trickled_in_too_slowly_closes_the_connection() {
    let (addr, server, _service, metrics) = start_with_metrics(ServerConfig {
        frame_timeout: Duration::from_millis(300),
        min_frame_rate: 1 << 20,
        ..ServerConfig::default()
    })
    .await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let request = mprpc_tests::raw::echo(1, None);
    // The first bytes of the frame, and then nothing: the idle timeout is five minutes away.
    raw.write_all(&request[..request.len() - 1]).await.unwrap();
    let started = std::time::Instant::now();
    let go_away = read_until_closed(&mut raw).await.expect("a GoAway");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(go_away.code, Code::DeadlineExceeded.as_i32());
    assert!(
        go_away.message.contains("still incomplete"),
        "{}",
        go_away.message
    );
    assert_eq!(metrics.snapshot().protocol_errors["slow_frame"], 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_counted_by_kind() {
    let (addr, server, _service, metrics) = start_with_metrics(ServerConfig::default()).await;
    for _ in 0..20 {
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        read_until_closed(&mut raw).await.expect("a GoAway");
    }
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"mp\x09").await.unwrap();
    read_until_closed(&mut raw).await.expect("a GoAway");
    let errors = metrics.snapshot().protocol_errors;
    assert_eq!(errors["bad_magic"], 20, "{errors:?}");
    assert_eq!(errors["unsupported_version"], 1, "{errors:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_frame_would_be_too_large_fails_alone() {
    // The message fits max_frame_size, its header with it does not: the consumer refuses
    // the call itself (the provider would have closed the connection, failing every call
    // on it), and the connection serves on.
    let (addr, handle, _) = start(ServerConfig::default()).await;
    let channel = Channel::to_address(addr.clone());
    let max = mprpc::config::ClientConfig::default().max_frame_size;
    let mut request = mprpc::Request::new(Bytes::from(vec![0u8; max - 100]));
    request.metadata_mut().insert("padding", "p".repeat(1000));
    let status = channel
        .unary_raw("mprpc.test.Echo", "Echo", request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    assert!(status.message().contains("header and message"), "{status}");
    let client = EchoClient::new(channel);
    let reply = client
        .echo(EchoRequest {
            payload: b"still".to_vec(),
            ..EchoRequest::default()
        })
        .await
        .expect("the connection serves on");
    assert_eq!(reply.payload, b"still");
    handle.shutdown().await.unwrap();
}
