//! Speaking the wire protocol by hand, for tests that play a client the library would never
//! be: one that never reads, cancels behind the provider's back, or sends what it likes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use mprpc::protocol::codec::decode_header;
use mprpc::protocol::{
    CancelHeader, Frame, FrameDecoder, FrameKind, OutFrame, RequestHeader, ResponseHeader,
    StreamHeader,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// This host's wall clock in microseconds since the Unix epoch, as a caller stamps requests.
pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A request frame for `service`/`method`, stamped with the time now.
pub fn request(
    id: u64,
    service: &str,
    method: &str,
    timeout: Option<Duration>,
    body: Bytes,
) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Request(
        RequestHeader {
            request_id: id,
            service: Bytes::copy_from_slice(service.as_bytes()),
            method: Bytes::copy_from_slice(method.as_bytes()),
            timeout_us: timeout.map_or(0, |t| t.as_micros() as u64),
            metadata: vec![],
            sent_unix_us: unix_now_us(),
            ..RequestHeader::default()
        },
        body.into(),
    )
    .encode(&mut buf);
    buf
}

/// A request frame opening a streaming call of `kind` (a wire value: 1 client streaming, 2
/// server streaming, 3 both), announcing a window of `window` bytes for its replies.
pub fn stream_request(id: u64, method: &str, kind: u32, window: u64, body: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Request(
        RequestHeader {
            request_id: id,
            service: "mprpc.test.Echo".into(),
            method: Bytes::copy_from_slice(method.as_bytes()),
            timeout_us: 0,
            metadata: vec![],
            sent_unix_us: unix_now_us(),
            kind,
            window,
            ..RequestHeader::default()
        },
        body.into(),
    )
    .encode(&mut buf);
    buf
}

/// A `Message` frame of stream `id`.
pub fn message(id: u64, body: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Message(StreamHeader { request_id: id }, body.into()).encode(&mut buf);
    buf
}

/// A `HalfClose` frame of stream `id`.
pub fn half_close(id: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::HalfClose(StreamHeader { request_id: id }).encode(&mut buf);
    buf
}

/// An `Echo` request of the test service that answers at once.
pub fn echo(id: u64, timeout: Option<Duration>) -> BytesMut {
    request(id, "mprpc.test.Echo", "Echo", timeout, Bytes::new())
}

/// A cancel frame for call `id`.
pub fn cancel(id: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Cancel(CancelHeader { request_id: id }).encode(&mut buf);
    buf
}

/// A ping frame with `body`.
pub fn ping(body: Bytes) -> BytesMut {
    let mut buf = BytesMut::new();
    OutFrame::Ping(body).encode(&mut buf);
    buf
}

/// Reads frames from `stream` until one of kind `until` arrives (within `limit`); returns
/// every frame read, that one last.
pub async fn read_until(stream: &mut TcpStream, until: FrameKind, limit: Duration) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(64 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Some(frame) = decoder
            .decode(&mut buf)
            .expect("the provider sends valid frames")
        {
            let done = frame.kind == until;
            frames.push(frame);
            if done {
                return frames;
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {until:?} frame within {limit:?}; got {frames:?}"))
            .expect("read from the provider");
        assert!(
            read > 0,
            "the provider closed the connection; got {frames:?}"
        );
    }
}

/// Reads frames from `stream` until `n` responses have arrived (within `limit`); returns
/// their headers, in the order they came.
pub async fn read_responses(
    stream: &mut TcpStream,
    n: usize,
    limit: Duration,
) -> Vec<ResponseHeader> {
    let mut decoder = FrameDecoder::new(64 << 20);
    let mut buf = BytesMut::new();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Some(frame) = decoder
            .decode(&mut buf)
            .expect("the provider sends valid frames")
        {
            if frame.kind == FrameKind::Response {
                found.push(decode_header(&frame).expect("a response header"));
            }
        }
        if found.len() >= n {
            return found;
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {n} responses within {limit:?}: {found:?}",
                    found.len()
                )
            })
            .expect("read from the provider");
        assert!(
            read > 0,
            "the provider closed the connection; got {found:?}"
        );
    }
}

/// The response headers among `frames`.
pub fn responses(frames: &[Frame]) -> Vec<ResponseHeader> {
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Response)
        .map(|f| decode_header(f).expect("a response header"))
        .collect()
}
