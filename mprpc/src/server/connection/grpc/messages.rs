//! gRPC's length-prefixed messages: a flag byte (1: compressed with the call's
//! `grpc-encoding`), a big-endian `u32` length, the message; read from a request body one
//! at a time, and framed for a reply.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::compression::{decompress, Encoding};
use crate::{Body, Status};

/// The message after its prefix: decompressed if its flag says so, at most `limit` bytes.
pub(super) fn open(
    flag: u8,
    message: Bytes,
    encoding: Option<Encoding>,
    limit: usize,
) -> Result<Bytes, Status> {
    match encoding_of(flag, encoding)? {
        None => Ok(message),
        Some(encoding) => {
            decompress(encoding, &message, limit).map_err(|e| e.into_status("a request message"))
        }
    }
}

/// How a message with `flag` is compressed, in a call with `grpc-encoding` `encoding`.
pub(super) fn encoding_of(
    flag: u8,
    encoding: Option<Encoding>,
) -> Result<Option<Encoding>, Status> {
    match (flag, encoding) {
        (0, _) => Ok(None),
        (1, Some(encoding)) => Ok(Some(encoding)),
        (1, None) => Err(Status::internal(
            "a message is marked compressed but the call has no grpc-encoding",
        )),
        (flag, _) => Err(Status::internal(format!(
            "a message flag of {flag}: 0 (uncompressed) or 1 (compressed)"
        ))),
    }
}

/// `message` with its prefix, compressed with `encoding` if given.
pub(super) fn frame(message: Body, encoding: Option<Encoding>) -> Bytes {
    let (flag, message) = match encoding {
        Some(encoding) => (
            1,
            Body::from(crate::compression::compress(
                encoding,
                &message.into_bytes(),
            )),
        ),
        None => (0, message),
    };
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(flag);
    framed.put_u32(message.len() as u32);
    for part in message.parts() {
        framed.put_slice(part);
    }
    framed.freeze()
}

/// The messages of a request body, as they arrive; each must arrive whole within
/// `frame_timeout` of its first byte.
pub(super) struct Messages {
    body: Incoming,
    buf: BytesMut,
    limit: usize,
    encoding: Option<Encoding>,
    frame_timeout: Duration,
    /// When the message now arriving began.
    since: Option<Instant>,
    ended: bool,
}

impl Messages {
    /// The messages of `body`, each at most `limit` bytes (compressed and not), each whole
    /// within `frame_timeout`.
    pub(super) fn new(
        body: Incoming,
        limit: usize,
        encoding: Option<Encoding>,
        frame_timeout: Duration,
    ) -> Messages {
        Messages {
            body,
            buf: BytesMut::new(),
            limit,
            encoding,
            frame_timeout,
            since: None,
            ended: false,
        }
    }

    /// The next message; `None` once the body has ended between two messages.
    pub(super) async fn next(&mut self) -> Option<Result<Bytes, Status>> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len > self.limit {
                    return Some(Err(Status::resource_exhausted(format!(
                        "a message of {len} bytes exceeds the maximum of {} bytes",
                        self.limit
                    ))));
                }
                if self.buf.len() >= 5 + len {
                    let flag = self.buf[0];
                    self.buf.advance(5);
                    let message = self.buf.split_to(len).freeze();
                    self.since = (!self.buf.is_empty()).then(Instant::now);
                    return Some(open(flag, message, self.encoding, self.limit));
                }
            }
            if self.ended {
                return (!self.buf.is_empty()).then(|| {
                    Err(Status::internal(
                        "the request stream ended in the middle of a message",
                    ))
                });
            }
            let frame = match self.since {
                // Between messages: a stream may idle (its deadline bounds it).
                None => self.body.frame().await,
                Some(since) => {
                    let by = since + self.frame_timeout;
                    match tokio::time::timeout_at(by.into(), self.body.frame()).await {
                        Ok(frame) => frame,
                        Err(_) => {
                            return Some(Err(Status::deadline_exceeded(format!(
                                "a request message did not arrive whole within frame_timeout \
                                 ({:?})",
                                self.frame_timeout
                            ))))
                        }
                    }
                }
            };
            match frame {
                None => self.ended = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.since.is_none() && !data.is_empty() {
                            self.since = Some(Instant::now());
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Some(Err(Status::cancelled(format!(
                        "the request stream broke: {e}"
                    ))))
                }
            }
        }
    }
}
