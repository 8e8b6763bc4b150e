//! The decoder's tests: frames whole and in pieces, garbage, oversized and announced
//! sizes, large frames gathered into pooled buffers, and the partial frame's clock.

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
                trace_id_high: 0x0123_4567_89ab_cdef,
                trace_id_low: 0xfedc_ba98_7654_3210,
                span_id: 42,
                compact: true,
            },
            Bytes::from_static(b"\x0a\x03bob").into(),
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
            Default::default(),
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
            trace_id_high: 0,
            trace_id_low: 0,
            span_id: 0,
            compact: false,
        },
        Bytes::from_static(b"\x0a\x09zhang san\x12\x03123").into(),
    )
    .encode(&mut buf);
    let mut expected = b"mp\x01\x01\x00\x00\x00\x25\x00\x00\x00\x10\x08\x01".to_vec();
    expected.extend_from_slice(b"\x12\x15fixbug.UserServiceRpc\x1a\x05Login\x20\xc0\x8d\xb7\x01");
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
        Bytes::from_static(b"\x0a\x00").into(),
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
    let mut buf = BytesMut::from(&b"mp\x01\x0d\x00\x00\x00\x00\x00\x00\x00\x00"[..]);
    let err = FrameDecoder::new(1024).decode(&mut buf).unwrap_err();
    assert!(matches!(err, ProtocolError::UnknownKind(13)), "{err}");
    assert_eq!(err.to_string(), "unknown frame kind 13");
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
                    Bytes::from(b.clone()).into(),
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
