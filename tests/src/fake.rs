//! A fake provider that misbehaves on purpose: it reads one request and answers it with bytes
//! a test crafted (a `GoAway` with code 0, a status message full of escape sequences, a frame
//! over the consumer's limit...), to check what a consumer makes of a hostile provider.

use std::time::Duration;

use bytes::BytesMut;
use mprpc::protocol::{
    GoAwayHeader, OutFrame, RequestHeader, ResponseHeader, FIXED_HEADER_LEN, MAGIC, VERSION,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the fake waits for the consumer at each step before giving up.
const LIMIT: Duration = Duration::from_secs(30);

/// Starts a fake provider on `127.0.0.1:0` and returns its address. It accepts one
/// connection, reads frames until a request arrives, writes `answer(request_id)`, closes its
/// side and waits (bounded) until the consumer closes too, so that nothing is lost to a reset.
pub async fn fake_provider(answer: impl FnOnce(u64) -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address").to_string();
    tokio::spawn(async move {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(LIMIT, listener.accept()).await else {
            return;
        };
        let Some(id) = read_request_id(&mut stream).await else {
            return;
        };
        if stream.write_all(&answer(id)).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        let mut sink = vec![0; 64 * 1024];
        let drained = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(LIMIT, drained).await;
    });
    address
}

/// Reads whole frames until a request arrives; returns its id, or `None` if the consumer
/// closes or takes too long.
async fn read_request_id(stream: &mut TcpStream) -> Option<u64> {
    loop {
        let mut fixed = [0; FIXED_HEADER_LEN];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut fixed))
            .await
            .ok()?
            .ok()?;
        assert_eq!(&fixed[..2], &MAGIC[..], "the consumer speaks mprpc");
        let header_len = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
        let body_len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
        let mut rest = vec![0; header_len + body_len];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut rest))
            .await
            .ok()?
            .ok()?;
        // Kind 1 is a request; pings and anything else are ignored.
        if fixed[3] == 1 {
            let header = RequestHeader::decode(&rest[..header_len]).ok()?;
            return Some(header.request_id);
        }
    }
}

/// The bytes of a `Response` frame answering `request_id` with `code` and `message`.
pub fn response(request_id: u64, code: i32, message: &str) -> Vec<u8> {
    response_marked(request_id, code, message, false)
}

/// [`response`], with the header's `not_run` set to `not_run` (a provider that refused the
/// call without running it, as one shutting down does).
pub fn response_marked(request_id: u64, code: i32, message: &str, not_run: bool) -> Vec<u8> {
    let header = ResponseHeader {
        request_id,
        code,
        message: message.to_owned(),
        metadata: vec![],
        details: Default::default(),
        not_run,
        encoding: 0,
        accept_encoding: 0,
    };
    encode(OutFrame::Response(header, Default::default()))
}

/// The bytes of a `GoAway` frame with `code` and `message`.
pub fn go_away(code: i32, message: &str) -> Vec<u8> {
    encode(OutFrame::GoAway(GoAwayHeader {
        code,
        message: message.to_owned(),
    }))
}

/// The bytes of a frame of `kind` whose header is `header`, taken as it is (so it may not
/// decode), with an empty body.
pub fn raw_frame(kind: u8, header: &[u8]) -> Vec<u8> {
    let header_len = u32::try_from(header.len()).expect("a small header");
    let mut bytes = vec![MAGIC[0], MAGIC[1], VERSION, kind];
    bytes.extend_from_slice(&header_len.to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(header);
    bytes
}

/// Only the fixed header of a `Response` frame announcing `size` bytes of body, which never
/// come.
pub fn announce_response_of(size: u32) -> Vec<u8> {
    let mut bytes = vec![MAGIC[0], MAGIC[1], VERSION, 2];
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes
}

fn encode(frame: OutFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.to_vec()
}
