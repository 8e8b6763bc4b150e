//! `MessageBatch` frames (a run of one stream's messages in one frame): a provider sends its
//! replies in them only to a caller that asked, and a run that is not one (a length past the
//! end of its frame, no message at all, a frame over the receiver's limit) ends that stream
//! with a clear error on either side, never a hang or a misread message.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mprpc::client::Channel;
use mprpc::config::{ClientConfig, ServerConfig};
use mprpc::protocol::batch::{begin_batch, check_batch, finish_batch, next_batched, push_batched};
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{
    FrameDecoder, FrameKind, OutFrame, RequestHeader, StreamHeader, FIXED_HEADER_LEN, MAGIC,
    VERSION,
};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::stream::MethodKind;
use mprpc::{Code, Status};
use mprpc_tests::fake::fake_provider;
use mprpc_tests::raw;
use mprpc_tests::{EchoClient, EchoServer, EchoService, StreamReply, StreamRequest};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const LIMIT: Duration = Duration::from_secs(30);

/// The bytes of a `MessageBatch` frame of stream `id` whose body is `body`, as it is.
fn batch_frame(id: u64, body: &[u8]) -> Vec<u8> {
    let header = StreamHeader { request_id: id }.encode_to_vec();
    let mut bytes = vec![MAGIC[0], MAGIC[1], VERSION, FrameKind::MessageBatch as u8];
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(body);
    bytes
}

/// A well-formed `MessageBatch` frame of stream `id` carrying `messages`.
fn good_batch(id: u64, messages: &[StreamRequest]) -> Vec<u8> {
    let mut frame = Vec::new();
    let start = begin_batch(&mut frame, id);
    for m in messages {
        push_batched(&mut frame, m, m.encoded_len());
    }
    finish_batch(&mut frame, start);
    frame
}

/// The first item of a server stream from a fake provider that answers with `answer(id)`.
async fn first_item(
    answer: impl FnOnce(u64) -> Vec<u8> + Send + 'static,
    config: ClientConfig,
) -> Result<Option<StreamReply>, Status> {
    let address = fake_provider(answer).await;
    let client = EchoClient::new(Channel::to_addresses(vec![address], config));
    let read = async {
        let mut replies = client.subscribe(StreamRequest::default()).await?;
        replies.message().await
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("the stream ends in time")
}

/// Reads the first item of a stream whose fake provider answers with one `MessageBatch`
/// frame of `body`: it must be a failure, `Internal` (the provider's fault), saying `why`.
async fn fails_as_internal(body: &'static [u8], why: &str) {
    let status = first_item(move |id| batch_frame(id, body), ClientConfig::default())
        .await
        .expect_err("the batch is not handed on");
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(status.message().contains(why), "{status}");
}

#[tokio::test]
async fn a_length_past_the_end_of_its_batch_fails_that_stream_as_the_providers_fault() {
    // One good message (`08 01`), then one announcing 9 bytes with 3 left.
    fails_as_internal(
        b"\x00\x00\x00\x02\x08\x01\x00\x00\x00\x09abc",
        "a message at byte 6 of a MessageBatch frame announces 9 bytes, but only 3 remain",
    )
    .await;
}

#[tokio::test]
async fn a_batch_with_no_message_or_a_cut_length_fails_that_stream() {
    fails_as_internal(b"", "carries no message").await;
    fails_as_internal(b"\x00\x00", "inside a length prefix").await;
}

#[tokio::test]
async fn a_reply_that_is_not_its_message_type_fails_the_stream_as_internal() {
    // A well-framed run whose one message is a cut varint, not a `StreamReply`.
    fails_as_internal(
        b"\x00\x00\x00\x02\x08\xff",
        "cannot decode a streamed reply",
    )
    .await;
}

#[tokio::test]
async fn a_message_over_the_consumers_limit_inside_a_batch_is_refused_with_its_frame() {
    let config = ClientConfig {
        max_frame_size: 1024,
        ..ClientConfig::default()
    };
    let big = StreamRequest {
        payload: vec![7; 2000],
        ..StreamRequest::default()
    };
    let status = first_item(move |id| good_batch(id, &[big]), config)
        .await
        .expect_err("a frame over the limit is not read");
    assert_eq!(status.code(), Code::Internal, "{status}");
    assert!(
        status
            .message()
            .contains("over this consumer's max_frame_size of 1024 bytes"),
        "{status}"
    );
}

#[tokio::test]
async fn a_good_batch_from_a_fake_provider_is_read_message_by_message() {
    let replies = (0..3u64).map(|seq| StreamReply {
        seq,
        payload: vec![1; seq as usize],
        ..StreamReply::default()
    });
    let replies: Vec<StreamReply> = replies.collect();
    let sent = replies.clone();
    let address = fake_provider(move |id| {
        let mut frame = Vec::new();
        let start = begin_batch(&mut frame, id);
        for r in &sent {
            push_batched(&mut frame, r, r.encoded_len());
        }
        finish_batch(&mut frame, start);
        let mut end = BytesMut::new();
        OutFrame::Response(
            mprpc::protocol::ResponseHeader {
                request_id: id,
                ..Default::default()
            },
            Default::default(),
        )
        .encode(&mut end);
        frame.extend_from_slice(&end);
        frame
    })
    .await;
    let client = EchoClient::new(Channel::to_address(address));
    let read = async {
        let mut stream = client.subscribe(StreamRequest::default()).await?;
        let mut got = Vec::new();
        while let Some(reply) = stream.message().await? {
            got.push(reply);
        }
        Ok::<_, Status>(got)
    };
    let got = tokio::time::timeout(LIMIT, read)
        .await
        .expect("in time")
        .expect("read well");
    assert_eq!(got, replies);
}

async fn start() -> (String, LocalServer) {
    let server = Server::new(ServerConfig::default())
        .add_service(EchoServer::new(EchoService::named("batches")));
    let (addr, handle) = spawn_local(server).await.expect("start provider");
    (addr.to_string(), handle)
}

/// A request opening `method` of `kind`, asking for `MessageBatch` frames if `batches`.
fn open(id: u64, method: &str, kind: MethodKind, batches: bool, body: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Request(
        RequestHeader {
            request_id: id,
            service: "mprpc.test.Echo".into(),
            method: Bytes::copy_from_slice(method.as_bytes()),
            kind: kind.wire(),
            batches,
            sent_unix_us: raw::unix_now_us(),
            ..RequestHeader::default()
        },
        body.into(),
    )
    .encode(&mut buf);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_batches_replies_only_for_a_caller_that_asked() {
    let (addr, server) = start().await;
    let request = StreamRequest {
        count: 50,
        size: 10,
        ..StreamRequest::default()
    };
    for batches in [true, false] {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        let body = Bytes::from(request.encode_to_vec());
        conn.write_all(&open(
            1,
            "Subscribe",
            MethodKind::ServerStreaming,
            batches,
            body,
        ))
        .await
        .unwrap();
        let frames = raw::read_until(&mut conn, FrameKind::Response, LIMIT).await;
        let mut seqs = Vec::new();
        for frame in &frames {
            match frame.kind {
                FrameKind::MessageBatch => {
                    assert!(batches, "a batch for a caller that did not ask");
                    let header: StreamHeader = decode_header(frame).unwrap();
                    assert_eq!(header.request_id, 1);
                    assert!(check_batch(&frame.body).is_ok());
                    let mut run = frame.body.clone();
                    while let Some(m) = next_batched(&mut run) {
                        seqs.push(StreamReply::decode(m).unwrap().seq);
                    }
                }
                FrameKind::Message => {
                    assert!(!batches, "a lone message for a caller that reads batches");
                    seqs.push(StreamReply::decode(frame.body.clone()).unwrap().seq);
                }
                _ => {}
            }
        }
        assert_eq!(seqs, (0..50).collect::<Vec<u64>>(), "batches: {batches}");
        let end = raw::responses(&frames);
        assert_eq!(end[0].code, 0, "{end:?}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_reads_a_batch_of_requests_and_refuses_a_malformed_one() {
    let (addr, server) = start().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // A good batch of three requests, then the end of them: the upload counts three.
    let upload = MethodKind::ClientStreaming;
    let mut frames = open(1, "Upload", upload, false, Bytes::new());
    let chunk = StreamRequest {
        payload: vec![5; 100],
        ..StreamRequest::default()
    };
    frames.extend_from_slice(&good_batch(
        1,
        &[chunk.clone(), chunk.clone(), chunk.clone()],
    ));
    frames.extend_from_slice(&raw::half_close(1));
    // A malformed batch on another upload: that call ends, the connection goes on.
    frames.extend_from_slice(&open(2, "Upload", upload, false, Bytes::new()));
    frames.extend_from_slice(&batch_frame(2, b"\x00\x00\x00\x05ab"));
    frames.extend_from_slice(&raw::echo(3, None));
    // A well-framed request that is not a `StreamRequest` (a cut varint) on a third upload.
    frames.extend_from_slice(&open(4, "Upload", upload, false, Bytes::new()));
    frames.extend_from_slice(&batch_frame(4, b"\x00\x00\x00\x02\x08\xff"));
    conn.write_all(&frames).await.unwrap();
    let mut bodies = std::collections::HashMap::new();
    let mut headers = Vec::new();
    let mut all = Vec::new();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    while headers.len() < 4 {
        while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
            if frame.kind == FrameKind::Response {
                let h: mprpc::protocol::ResponseHeader = decode_header(&frame).unwrap();
                bodies.insert(h.request_id, frame.body.clone());
                headers.push(h);
            }
            all.push(frame.kind);
        }
        if headers.len() < 4 {
            let read = tokio::time::timeout(LIMIT, conn.read_buf(&mut buf))
                .await
                .expect("the replies come in time")
                .unwrap();
            assert!(read > 0, "the provider closed the connection: {all:?}");
        }
    }
    let by_id = |id| headers.iter().find(|h| h.request_id == id).unwrap();
    assert_eq!(by_id(1).code, 0, "{headers:?}");
    let reply = StreamReply::decode(bodies[&1].clone()).unwrap();
    assert_eq!((reply.messages, reply.bytes), (3, 300));
    assert_eq!(by_id(3).code, 0, "the connection goes on: {headers:?}");
    for (id, why) in [
        (2, "announces 5 bytes, but only 2 remain"),
        (4, "cannot decode a streamed message"),
    ] {
        let refused = by_id(id);
        assert_eq!(refused.code, Code::InvalidArgument.as_i32(), "{headers:?}");
        assert!(refused.message.contains(why), "{headers:?}");
    }
    assert!(!all.contains(&FrameKind::GoAway), "{all:?}");
    server.shutdown().await.unwrap();
}

#[test]
fn a_batch_frame_is_twelve_bytes_of_fixed_header_then_its_stream_header() {
    let frame = batch_frame(1, b"\x00\x00\x00\x00");
    assert_eq!(
        &frame[..FIXED_HEADER_LEN],
        b"mp\x01\x0a\x00\x00\x00\x02\x00\x00\x00\x04"
    );
}
