//! Compact headers (`docs/PROTOCOL.md`, "Compact headers"): a provider answers compactly only
//! a caller that said it reads them, a consumer sends compact requests only to a provider
//! that answered compactly, and a compact header that lies about its size is refused on its
//! own connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::protocol::codec::compact::{request_header, response_header};
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{
    FrameDecoder, FrameKind, GoAwayHeader, OutFrame, RequestHeader, ResponseHeader,
};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc_tests::raw::{read_until, unix_now_us};
use mprpc_tests::{EchoClient, EchoRequest, EchoServer, EchoService};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const LIMIT: Duration = Duration::from_secs(10);

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

async fn start() -> (String, LocalServer) {
    let server =
        Server::new(ServerConfig::default()).add_service(EchoServer::new(EchoService::named("a")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

fn echo_header(id: u64, compact: bool) -> RequestHeader {
    RequestHeader {
        request_id: id,
        service: "mprpc.test.Echo".into(),
        method: "Echo".into(),
        sent_unix_us: unix_now_us(),
        compact,
        ..RequestHeader::default()
    }
}

/// An `Echo` request for `message`, its header compact if `compact_frame`.
fn echo(id: u64, message: &str, compact_header: bool, compact_frame: bool) -> BytesMut {
    let body = EchoRequest {
        payload: message.as_bytes().to_vec(),
        ..EchoRequest::default()
    }
    .encode_to_vec();
    let mut buf = BytesMut::new();
    let body = OutFrame::Request(echo_header(id, compact_header), Bytes::from(body).into())
        .encode_head(&mut buf, compact_frame);
    for part in body.parts() {
        buf.extend_from_slice(part);
    }
    buf
}

/// The one response among `frames` (the last), decoded whichever its form, and its kind.
fn answer(frames: &[mprpc::protocol::Frame]) -> (FrameKind, ResponseHeader, String) {
    let frame = frames.last().expect("a response");
    let header = response_header(frame).expect("a valid response header");
    let reply = mprpc_tests::EchoResponse::decode(frame.body.clone()).expect("an echo reply");
    (frame.kind, header, text(&reply.payload))
}

async fn next_answer(stream: &mut TcpStream) -> (FrameKind, ResponseHeader, String) {
    let mut frames = Vec::new();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
            if matches!(frame.kind, FrameKind::Response | FrameKind::CompactResponse) {
                frames.push(frame);
                return answer(&frames);
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "the provider closed the connection");
    }
}

#[tokio::test]
async fn a_provider_answers_compactly_only_a_caller_that_reads_compact_headers() {
    let (addr, _server) = start().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();

    // A caller that does not say it reads them (one built before them) gets `Response`s.
    stream
        .write_all(&echo(1, "one", false, false))
        .await
        .unwrap();
    let (kind, header, message) = next_answer(&mut stream).await;
    assert_eq!(kind, FrameKind::Response);
    assert_eq!((header.request_id, header.code, &*message), (1, 0, "one"));
    stream
        .write_all(&echo(2, "two", false, false))
        .await
        .unwrap();
    assert_eq!(next_answer(&mut stream).await.0, FrameKind::Response);

    // Once it says it does, the answers are compact...
    stream
        .write_all(&echo(3, "three", true, false))
        .await
        .unwrap();
    let (kind, header, message) = next_answer(&mut stream).await;
    assert_eq!(kind, FrameKind::CompactResponse);
    assert_eq!((header.request_id, header.code, &*message), (3, 0, "three"));

    // ... and so are its requests, read like the others.
    stream
        .write_all(&echo(4, "four", true, true))
        .await
        .unwrap();
    let (kind, header, message) = next_answer(&mut stream).await;
    assert_eq!(kind, FrameKind::CompactResponse);
    assert_eq!((header.request_id, header.code, &*message), (4, 0, "four"));

    // A failure, compact: its message travels in the protobuf rest.
    let mut unknown = echo_header(5, true);
    unknown.method = "Missing".into();
    let mut buf = BytesMut::new();
    let _ = OutFrame::Request(unknown, mprpc::Body::new()).encode_head(&mut buf, true);
    stream.write_all(&buf).await.unwrap();
    let frames = read_until(&mut stream, FrameKind::CompactResponse, LIMIT).await;
    let header = response_header(frames.last().unwrap()).unwrap();
    assert_eq!(header.request_id, 5);
    assert_eq!(header.code, mprpc::Code::Unimplemented as i32);
    assert!(header.message.contains("Missing"), "{}", header.message);
}

#[tokio::test]
async fn a_compact_header_shorter_than_it_says_closes_only_its_own_connection() {
    let (addr, _server) = start().await;
    let client = EchoClient::new(Channel::to_address(addr.clone()));
    let echo_call = |message: &'static str| {
        let client = client.clone();
        async move {
            client
                .echo(EchoRequest {
                    payload: message.as_bytes().to_vec(),
                    ..EchoRequest::default()
                })
                .await
        }
    };
    assert_eq!(text(&echo_call("before").await.unwrap().payload), "before");

    let good = echo(1, "x", true, true);
    let header_len = u32::from_be_bytes(good[4..8].try_into().unwrap()) as usize;
    for bad in [
        // 20 bytes of a 52-byte fixed part.
        {
            let mut frame = BytesMut::from(&good[..12]);
            frame[4..8].copy_from_slice(&20u32.to_be_bytes());
            frame[8..12].copy_from_slice(&0u32.to_be_bytes());
            frame.extend_from_slice(&[0; 20]);
            frame
        },
        // A service name that runs past the header.
        {
            let mut frame = good.clone();
            frame[12 + 48] = 0xff;
            frame[12 + 49] = 0xff;
            frame
        },
        // A protobuf rest that is not protobuf.
        {
            let mut frame = BytesMut::from(&good[..12 + header_len]);
            frame[4..8].copy_from_slice(&((header_len + 3) as u32).to_be_bytes());
            frame[8..12].copy_from_slice(&0u32.to_be_bytes());
            frame.extend_from_slice(&[0xff, 0xff, 0xff]);
            frame
        },
    ] {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(&bad).await.unwrap();
        let frames = read_until(&mut stream, FrameKind::GoAway, LIMIT).await;
        let go_away: GoAwayHeader = decode_header(frames.last().unwrap()).unwrap();
        assert!(
            go_away.message.contains("CompactRequest header"),
            "{}",
            go_away.message
        );
        // Closed after it.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(LIMIT, stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "closed in time");
    }
    assert_eq!(text(&echo_call("after").await.unwrap().payload), "after");
}

/// A provider played by hand: it answers each request with an empty success, compact from
/// the first one on if `compact`, and returns the kinds of the request frames it read.
async fn scripted_provider(
    compact: bool,
    calls: usize,
) -> (String, tokio::task::JoinHandle<Vec<FrameKind>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut stream, _) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .expect("the consumer connects")
            .unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut kinds = Vec::new();
        loop {
            while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
                if !matches!(frame.kind, FrameKind::Request | FrameKind::CompactRequest) {
                    continue;
                }
                kinds.push(frame.kind);
                let request = request_header(&frame).expect("a valid request header");
                assert!(
                    request.compact,
                    "the consumer says it reads compact headers"
                );
                let mut out = BytesMut::new();
                OutFrame::Response(
                    ResponseHeader {
                        request_id: request.request_id,
                        ..ResponseHeader::default()
                    },
                    mprpc::Body::new(),
                )
                .encode_head(&mut out, compact);
                stream.write_all(&out).await.unwrap();
            }
            if kinds.len() >= calls {
                break;
            }
            let read = tokio::time::timeout(LIMIT, stream.read_buf(&mut buf))
                .await
                .expect("the consumer's next request in time")
                .unwrap();
            assert!(read > 0, "the consumer closed early");
        }
        kinds
    });
    (address, task)
}

#[tokio::test]
async fn a_consumer_sends_compact_requests_only_once_its_provider_answered_compactly() {
    for compact in [false, true] {
        let (address, provider) = scripted_provider(compact, 3).await;
        let client = EchoClient::new(Channel::to_address(address));
        for _ in 0..3 {
            let reply = tokio::time::timeout(LIMIT, client.echo(EchoRequest::default()))
                .await
                .expect("answered in time")
                .expect("an empty success");
            assert_eq!(text(&reply.payload), "");
        }
        let kinds = provider.await.unwrap();
        let expected = if compact {
            vec![
                FrameKind::Request,
                FrameKind::CompactRequest,
                FrameKind::CompactRequest,
            ]
        } else {
            // A provider built before compact headers never sees one.
            vec![FrameKind::Request; 3]
        };
        assert_eq!(kinds, expected, "provider answering compactly: {compact}");
    }
}

fn big_metadata() -> Vec<mprpc::protocol::MetadataEntry> {
    (0..100)
        .map(|i| mprpc::protocol::MetadataEntry {
            key: format!("k{i}"),
            value: "v".repeat(200),
        })
        .collect()
}

#[tokio::test]
async fn metadata_over_the_limit_in_a_compact_request_is_refused_to_its_call() {
    let (addr, _server) = start().await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let header = RequestHeader {
        metadata: big_metadata(),
        ..echo_header(9, true)
    };
    let mut buf = BytesMut::new();
    let _ = OutFrame::Request(header, mprpc::Body::new()).encode_head(&mut buf, true);
    stream.write_all(&buf).await.unwrap();
    // Refused before its header is read, in either form (the caller reads both).
    let (_, header, _) = next_answer(&mut stream).await;
    assert_eq!(header.request_id, 9, "the refusal reaches the call");
    assert_eq!(header.code, mprpc::Code::ResourceExhausted as i32);
    // The connection still serves calls.
    stream
        .write_all(&echo(10, "ten", true, true))
        .await
        .unwrap();
    let (_, header, message) = next_answer(&mut stream).await;
    assert_eq!((header.request_id, header.code, &*message), (10, 0, "ten"));
}

#[tokio::test]
async fn metadata_over_the_limit_in_a_compact_response_fails_its_call_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let provider = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        loop {
            if let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
                let request = request_header(&frame).expect("a request");
                let mut out = BytesMut::new();
                OutFrame::Response(
                    ResponseHeader {
                        request_id: request.request_id,
                        metadata: big_metadata(),
                        ..ResponseHeader::default()
                    },
                    mprpc::Body::new(),
                )
                .encode_head(&mut out, true);
                stream.write_all(&out).await.unwrap();
                // Held open: the consumer must not need the connection to close.
                let _ = tokio::time::timeout(LIMIT, stream.read_buf(&mut buf)).await;
                return;
            }
            let read = tokio::time::timeout(LIMIT, stream.read_buf(&mut buf))
                .await
                .expect("a request in time")
                .unwrap();
            assert!(read > 0);
        }
    });
    let client = EchoClient::new(Channel::to_address(address));
    let status = tokio::time::timeout(LIMIT / 2, client.echo(EchoRequest::default()))
        .await
        .expect("the call ends long before the fake lets go of the connection")
        .expect_err("metadata over the limit");
    // The provider's fault, not the caller's.
    assert_eq!(status.code(), mprpc::Code::Internal, "{status}");
    assert!(status.message().contains("exceeds the limit"), "{status}");
    provider.abort();
}
