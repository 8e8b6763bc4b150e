//! Decoding frames from a byte stream.
//!
//! A partial frame is `Ok(None)` (wait for more bytes), never an error. Every length read from
//! the network is checked against the configured maximum before any memory is reserved for
//! it, and memory for a frame is reserved as its bytes arrive (doubling what has come until
//! an eighth of the frame is here, then the rest at once), so a peer cannot make us allocate
//! by announcing a huge frame: memory held for a frame is at most eight times what came.
//! The body of a large frame (from [`pool::LARGE`](super::pool) bytes) is gathered, once
//! an eighth of the frame has come, into a buffer of the process-wide pool (`pool.rs`)
//! rather than the read buffer, so that large messages reuse memory instead of faulting in
//! fresh pages each time. The decoder notes
//! when a partial frame began, so that its owner can close a connection that trickles a frame
//! in slower than it is willing to wait ([`FrameDecoder::partial_frame`]).

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::frame::{Frame, FrameKind, FIXED_HEADER_LEN, MAGIC, VERSION};
use super::pool;
use crate::Status;

/// Why a byte stream could not be decoded. After any of these the stream is unusable: the
/// frame boundaries are lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes are not `"mp"`: the peer speaks another protocol.
    #[error("not an mprpc frame: bad magic bytes {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this build does not speak.
    #[error("unsupported protocol version {found} (this build speaks version {VERSION})")]
    UnsupportedVersion {
        /// The version the peer sent.
        found: u8,
    },
    /// A frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Header plus body length the peer announced.
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A protobuf header that does not decode.
    #[error("malformed {kind:?} header: {error}")]
    BadHeader {
        /// The frame kind.
        kind: FrameKind,
        /// What prost said (in the message; not a `source()`, so it is printed once).
        error: prost::DecodeError,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        ProtocolError::Io(e)
    }
}

impl ProtocolError {
    /// A short name for the kind of error, for metrics and rate-limited logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::BadMagic(_) => "bad_magic",
            ProtocolError::UnsupportedVersion { .. } => "unsupported_version",
            ProtocolError::UnknownKind(_) => "unknown_kind",
            ProtocolError::FrameTooLarge { .. } => "frame_too_large",
            ProtocolError::BadHeader { .. } => "bad_header",
            ProtocolError::Io(_) => "io",
        }
    }

    /// The status a caller or peer should see for this error.
    pub fn to_status(&self) -> Status {
        match self {
            ProtocolError::FrameTooLarge { .. } => Status::resource_exhausted(self.to_string()),
            ProtocolError::Io(_) => Status::unavailable(self.to_string()),
            _ => Status::internal(format!("protocol error: {self}")),
        }
    }
}

/// Memory reserved for a frame's first bytes; more is reserved as they arrive.
const FIRST_RESERVE: usize = 64 * 1024;
/// Once this fraction (1/n) of a frame has arrived, the rest is reserved at once: a large
/// frame then costs one move of what came before, not a doubling chain (for 1 MiB, 256 KiB
/// copied instead of about 1 MiB, and fewer fresh pages).
const RESERVE_REST_AFTER: usize = 8;

/// Splits a byte stream into [`Frame`]s.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_size: usize,
    /// The frame being received, if only part of it has arrived.
    partial: Option<PartialFrame>,
    /// A large frame whose body is being gathered into a pooled buffer.
    assembly: Option<Assembly>,
}

/// A large frame on its way: its kind, header, and the body so far.
#[derive(Debug)]
struct Assembly {
    kind: FrameKind,
    header: Bytes,
    body: Vec<u8>,
    body_len: usize,
}

/// A frame of which only part has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialFrame {
    /// When its first bytes were seen.
    pub since: Instant,
    /// Its whole size, once its fixed header has arrived.
    pub size: Option<usize>,
}

impl FrameDecoder {
    /// A decoder that rejects frames whose header plus body exceed `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> FrameDecoder {
        FrameDecoder {
            max_frame_size,
            partial: None,
            assembly: None,
        }
    }

    /// The configured maximum.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The frame that has begun to arrive and is not complete yet, if any.
    pub fn partial_frame(&self) -> Option<PartialFrame> {
        self.partial
    }

    /// Restarts the partial frame's clock: its owner paused reading, so the time spent
    /// since is not the peer's.
    pub fn restart_partial_clock(&mut self) {
        if let Some(partial) = &mut self.partial {
            partial.since = Instant::now();
        }
    }

    fn waiting(&mut self, size: Option<usize>) {
        match &mut self.partial {
            Some(partial) => partial.size = size,
            None => {
                self.partial = Some(PartialFrame {
                    since: Instant::now(),
                    size,
                })
            }
        }
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => self.ended(src),
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.assembly.is_some() {
            return Ok(self.gather(src));
        }
        // Check what we can as soon as the bytes are there, so that garbage is refused at
        // once rather than after waiting for twelve bytes that may never come.
        if !src.is_empty() && src[0] != MAGIC[0] {
            return Err(ProtocolError::BadMagic([
                src[0],
                src.get(1).copied().unwrap_or(0),
            ]));
        }
        if src.len() >= 2 && src[1] != MAGIC[1] {
            return Err(ProtocolError::BadMagic([src[0], src[1]]));
        }
        if src.len() >= 3 && src[2] != VERSION {
            return Err(ProtocolError::UnsupportedVersion { found: src[2] });
        }
        if src.len() < FIXED_HEADER_LEN {
            if src.is_empty() {
                self.partial = None;
            } else {
                self.waiting(None);
            }
            return Ok(None);
        }
        let kind = FrameKind::from_u8(src[3]).ok_or(ProtocolError::UnknownKind(src[3]))?;
        let header_len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize;
        let body_len = u32::from_be_bytes([src[8], src[9], src[10], src[11]]) as usize;
        let size = header_len as u64 + body_len as u64;
        if size > self.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        let total = FIXED_HEADER_LEN + header_len + body_len;
        if src.len() < total
            && body_len >= pool::LARGE
            && src.len() >= (total / RESERVE_REST_AFTER).max(FIXED_HEADER_LEN + header_len)
        {
            // Large, and on its way: the rest of its body goes into a pooled buffer.
            src.advance(FIXED_HEADER_LEN);
            let header = Bytes::copy_from_slice(&src[..header_len]);
            src.advance(header_len);
            self.assembly = Some(Assembly {
                kind,
                header,
                body: pool::take(body_len),
                body_len,
            });
            self.waiting(Some(total));
            return Ok(self.gather(src));
        }
        if src.len() < total {
            // Reserve as the bytes come, doubling what is here until an eighth of the frame
            // has come, then the rest: a fixed header announcing 16 MiB costs nothing until
            // the 16 MiB are on their way.
            let missing = total - src.len();
            let grow = if src.len() >= total / RESERVE_REST_AFTER {
                missing
            } else {
                missing.min(src.len().max(FIRST_RESERVE))
            };
            src.reserve(grow);
            self.waiting(Some(total));
            return Ok(None);
        }
        self.partial = None;
        src.advance(FIXED_HEADER_LEN);
        let header = src.split_to(header_len).freeze();
        let body = src.split_to(body_len).freeze();
        Ok(Some(Frame { kind, header, body }))
    }
}

impl FrameDecoder {
    /// The end of the stream: a frame still partial (in the read buffer, or gathered) is
    /// an error, not a clean end.
    fn ended(&self, src: &BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.is_empty() && self.assembly.is_none() {
            return Ok(None);
        }
        Err(ProtocolError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a frame",
        )))
    }

    /// Moves what `src` holds of the large frame being gathered into its body: the frame,
    /// once whole.
    fn gather(&mut self, src: &mut BytesMut) -> Option<Frame> {
        let assembly = self.assembly.as_mut()?;
        let n = (assembly.body_len - assembly.body.len()).min(src.len());
        assembly.body.extend_from_slice(&src[..n]);
        src.advance(n);
        if assembly.body.len() < assembly.body_len {
            return None;
        }
        let Assembly {
            kind, header, body, ..
        } = self.assembly.take()?;
        self.partial = None;
        Some(Frame {
            kind,
            header,
            body: pool::freeze(body),
        })
    }
}

/// Decodes the protobuf header of a frame.
pub fn decode_header<H: prost::Message + Default>(frame: &Frame) -> Result<H, ProtocolError> {
    H::decode(frame.header.clone()).map_err(|error| ProtocolError::BadHeader {
        kind: frame.kind,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{OutFrame, RequestHeader, ResponseHeader};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn sample_frames() -> Vec<OutFrame> {
        vec![
            OutFrame::Request(
                RequestHeader {
                    request_id: 7,
                    service: "fixbug.UserServiceRpc".into(),
                    method: "Login".into(),
                    timeout_us: 3_000_000,
                    metadata: vec![],
                    sent_unix_us: 0,
                    kind: 0,
                    window: 0,
                    encoding: 0,
                    accept_encoding: 0,
                    batches: false,
                },
                Bytes::from_static(b"\x0a\x03bob"),
            ),
            OutFrame::Ping(Bytes::from_static(b"12345678")),
            OutFrame::Response(
                ResponseHeader {
                    request_id: 7,
                    code: 0,
                    message: String::new(),
                    metadata: vec![],
                    details: Default::default(),
                    not_run: false,
                    encoding: 0,
                    accept_encoding: 0,
                },
                Bytes::new(),
            ),
        ]
    }

    fn decode_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf).expect("valid stream") {
                out.push(frame);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    fn encode_stream(frames: Vec<OutFrame>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for f in frames {
            f.encode(&mut buf);
        }
        buf.to_vec()
    }

    #[test]
    fn whole_stream_decodes() {
        let bytes = encode_stream(sample_frames());
        let frames = decode_all(&mut FrameDecoder::new(1024), &[&bytes]);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].kind, FrameKind::Request);
        let h: RequestHeader = decode_header(&frames[0]).unwrap();
        assert_eq!(h.method, "Login");
        assert_eq!(&frames[0].body[..], b"\x0a\x03bob");
        assert_eq!(frames[1].kind, FrameKind::Ping);
        assert_eq!(&frames[1].body[..], b"12345678");
    }

    /// The example in docs/PROTOCOL.md, byte for byte.
    #[test]
    fn documented_login_request_bytes() {
        let mut buf = BytesMut::new();
        OutFrame::Request(
            RequestHeader {
                request_id: 1,
                service: "fixbug.UserServiceRpc".into(),
                method: "Login".into(),
                timeout_us: 3_000_000,
                metadata: vec![],
                sent_unix_us: 0,
                kind: 0,
                window: 0,
                encoding: 0,
                accept_encoding: 0,
                batches: false,
            },
            Bytes::from_static(b"\x0a\x09zhang san\x12\x03123"),
        )
        .encode(&mut buf);
        let mut expected = b"mp\x01\x01\x00\x00\x00\x25\x00\x00\x00\x10\x08\x01".to_vec();
        expected
            .extend_from_slice(b"\x12\x15fixbug.UserServiceRpc\x1a\x05Login\x20\xc0\x8d\xb7\x01");
        expected.extend_from_slice(b"\x0a\x09zhang san\x12\x03123");
        assert_eq!(&buf[..], &expected[..]);

        let mut reply = BytesMut::new();
        OutFrame::Response(
            ResponseHeader {
                request_id: 1,
                code: 0,
                message: String::new(),
                metadata: vec![],
                details: Default::default(),
                not_run: false,
                encoding: 0,
                accept_encoding: 0,
            },
            Bytes::from_static(b"\x0a\x00"),
        )
        .encode(&mut reply);
        assert_eq!(
            &reply[..],
            b"mp\x01\x02\x00\x00\x00\x02\x00\x00\x00\x02\x08\x01\x0a\x00"
        );
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"mp\x01\x01");
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        let err = FrameDecoder::new(16 << 20).decode(&mut buf).unwrap_err();
        assert!(matches!(err, ProtocolError::FrameTooLarge { .. }), "{err}");
        assert!(buf.capacity() < 1024, "reserved {} bytes", buf.capacity());
    }

    #[test]
    fn a_huge_announced_frame_reserves_only_as_its_bytes_arrive() {
        let mut d = FrameDecoder::new(16 << 20);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"mp\x01\x04");
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&(16u32 << 20).to_be_bytes());
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= 2 * FIRST_RESERVE,
            "reserved {}",
            buf.capacity()
        );
        let partial = d.partial_frame().expect("a frame has begun");
        assert_eq!(partial.size, Some(FIXED_HEADER_LEN + (16 << 20)));
        // Less than an eighth: the reservation at most doubles what came.
        buf.extend_from_slice(&vec![0u8; 1 << 20]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= 4 << 20, "reserved {}", buf.capacity());
        // An eighth: the body goes into a buffer of its whole size (a large frame's, from
        // the pool), and the read buffer is free again.
        buf.extend_from_slice(&vec![0u8; 1 << 20]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
        let gathering = d.assembly.as_ref().expect("gathered");
        assert!(gathering.body.capacity() >= 16 << 20);
        assert_eq!(gathering.body.len(), 2 << 20);
        buf.extend_from_slice(&vec![0u8; 14 << 20]);
        let frame = d.decode(&mut buf).unwrap().expect("complete");
        assert_eq!(frame.body.len(), 16 << 20);
        assert_eq!(d.partial_frame(), None);
    }

    /// The bytes of a Ping frame with `body`.
    fn ping_frame(body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        OutFrame::Ping(Bytes::copy_from_slice(body)).encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn large_frames_in_pieces_between_small_ones_decode_whole() {
        let large: Vec<u8> = (0..(3 * pool::LARGE)).map(|i| (i % 251) as u8).collect();
        let mut wire = ping_frame(b"a");
        wire.extend(ping_frame(&large));
        wire.extend(ping_frame(b"b"));
        wire.extend(ping_frame(&large[..pool::LARGE]));
        for piece in [1000, 64 * 1024, 100_003] {
            let mut d = FrameDecoder::new(16 << 20);
            let mut buf = BytesMut::new();
            let mut bodies = Vec::new();
            for chunk in wire.chunks(piece) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = d.decode(&mut buf).unwrap() {
                    assert_eq!(frame.kind, FrameKind::Ping);
                    bodies.push(frame.body);
                }
            }
            assert_eq!(bodies.len(), 4, "pieces of {piece}");
            assert_eq!(&bodies[0][..], b"a");
            assert_eq!(&bodies[1][..], &large[..]);
            assert_eq!(&bodies[2][..], b"b");
            assert_eq!(&bodies[3][..], &large[..pool::LARGE]);
            assert_eq!(d.partial_frame(), None);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_large_frame_cut_short_is_an_error_at_the_end() {
        let wire = ping_frame(&vec![1u8; 2 * pool::LARGE]);
        let mut d = FrameDecoder::new(16 << 20);
        let mut buf = BytesMut::from(&wire[..wire.len() / 2]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert!(d.partial_frame().is_some());
        let e = d.decode_eof(&mut buf).unwrap_err();
        assert!(e.to_string().contains("middle of a frame"), "{e}");
    }

    #[test]
    fn the_partial_frame_clock_starts_at_its_first_byte() {
        let mut d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&b"mp"[..]);
        assert!(d.decode(&mut buf).unwrap().is_none());
        let first = d.partial_frame().expect("begun");
        assert_eq!(first.size, None);
        buf.extend_from_slice(b"\x01\x04\x00\x00\x00\x00\x00\x00\x00\x05ab");
        assert!(d.decode(&mut buf).unwrap().is_none());
        let later = d.partial_frame().expect("still partial");
        assert_eq!(
            later.since, first.since,
            "the clock does not restart on each read"
        );
        assert_eq!(later.size, Some(17));
        buf.extend_from_slice(b"cde");
        assert!(d.decode(&mut buf).unwrap().is_some());
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert_eq!(d.partial_frame(), None);
    }

    #[test]
    fn garbage_is_refused_at_the_first_byte() {
        let mut buf = BytesMut::from(&b"G"[..]);
        let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(err, ProtocolError::BadMagic(_)), "{err}");
        let mut buf = BytesMut::from(&b"mp\x09"[..]);
        let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, ProtocolError::UnsupportedVersion { found: 9 }),
            "{err}"
        );
    }

    #[test]
    fn a_kind_past_the_known_ones_is_refused_by_number() {
        let mut buf = BytesMut::from(&b"mp\x01\x0b\x00\x00\x00\x00\x00\x00\x00\x00"[..]);
        let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
        assert!(matches!(err, ProtocolError::UnknownKind(11)), "{err}");
        assert_eq!(err.to_string(), "unknown frame kind 11");
    }

    #[test]
    fn partial_frame_waits() {
        let bytes = encode_stream(sample_frames());
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        let mut d = FrameDecoder::new(1024);
        let mut n = 0;
        while d.decode(&mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 2);
        assert!(!buf.is_empty());
    }

    proptest! {
        #[test]
        fn split_anywhere_gives_the_same_frames(
            cuts in proptest::collection::vec(0usize..400, 0..8),
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..6),
        ) {
            let frames: Vec<OutFrame> = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    OutFrame::Response(
                        ResponseHeader { request_id: i as u64, code: 0, message: String::new(), metadata: vec![], details: Bytes::new(), not_run: false, encoding: 0, accept_encoding: 0 },
                        Bytes::from(b.clone()),
                    )
                })
                .collect();
            let bytes = encode_stream(frames);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&bytes[start..c]);
                start = c;
            }
            chunks.push(&bytes[start..]);
            let decoded = decode_all(&mut FrameDecoder::new(1 << 20), &chunks);
            prop_assert_eq!(decoded.len(), bodies.len());
            for (i, (frame, body)) in decoded.iter().zip(&bodies).enumerate() {
                let h: ResponseHeader = decode_header(frame).unwrap();
                prop_assert_eq!(h.request_id, i as u64);
                prop_assert_eq!(&frame.body[..], &body[..]);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..256) {
            let mut d = FrameDecoder::new(max);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = d.decode(&mut buf) {
                // A frame that decodes respects the limit.
                prop_assert!(frame.header.len() + frame.body.len() <= max);
                let _ = decode_header::<RequestHeader>(&frame);
            }
        }

        #[test]
        fn random_bytes_after_valid_magic_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = b"mp\x01".to_vec();
            bytes.extend(tail);
            let mut d = FrameDecoder::new(64);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = d.decode(&mut buf) {
                let _ = decode_header::<ResponseHeader>(&frame);
            }
        }
    }
}
