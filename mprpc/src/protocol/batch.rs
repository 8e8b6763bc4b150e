//! `MessageBatch` frames: a run of one stream's messages in one frame, each message preceded by
//! its length (4 bytes, big-endian), as gRPC carries many messages in one HTTP/2 `DATA` frame.
//!
//! ```text
//! fixed header (kind 10) | StreamHeader | len u32 | message | len u32 | message | ...
//! ```
//!
//! A sender writes the frame's head, then the messages straight into the same buffer, and
//! patches the body length in at the end ([`begin_batch`], [`push_batched`],
//! [`finish_batch`]); a receiver checks the whole body once when it arrives
//! ([`check_batch`]: every length within the frame, at least one message) and then slices the
//! messages off it without copying them ([`next_batched`]). Flow control counts the frame's
//! whole body, length prefixes included (`docs/PROTOCOL.md`).

use bytes::{Buf, Bytes};
use prost::Message;

use super::frame::{FrameKind, StreamHeader, FIXED_HEADER_LEN, MAGIC, VERSION};

/// Bytes of the length before each message of a batch.
pub const LEN_PREFIX: usize = 4;

/// Why the body of a `MessageBatch` frame is not a run of messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadBatch {
    /// The body holds no message at all.
    #[error("a MessageBatch frame carries no message")]
    Empty,
    /// The body ends inside a length prefix.
    #[error("a MessageBatch frame ends inside a length prefix at byte {offset} of its body")]
    Truncated {
        /// Where the prefix starts in the body.
        offset: usize,
    },
    /// A length runs past the end of the frame.
    #[error(
        "a message at byte {offset} of a MessageBatch frame announces {len} bytes, but only \
         {left} remain in the frame"
    )]
    Overrun {
        /// Where its length prefix starts in the body.
        offset: usize,
        /// The length it announces.
        len: usize,
        /// The bytes after its prefix.
        left: usize,
    },
}

/// Checks that `body` is a run of length-prefixed messages; returns how many.
pub fn check_batch(body: &[u8]) -> Result<usize, BadBatch> {
    if body.is_empty() {
        return Err(BadBatch::Empty);
    }
    let (mut offset, mut count) = (0, 0);
    while offset < body.len() {
        let Some(prefix) = body.get(offset..offset + LEN_PREFIX) else {
            return Err(BadBatch::Truncated { offset });
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let left = body.len() - offset - LEN_PREFIX;
        if len > left {
            return Err(BadBatch::Overrun { offset, len, left });
        }
        offset += LEN_PREFIX + len;
        count += 1;
    }
    Ok(count)
}

/// Takes the next message off the front of a checked batch body (a slice of it, no copy);
/// `None` once it is empty. A body that was not checked is cut short rather than overrun
/// (`None` with less than a length prefix left, a message cut at the end).
pub fn next_batched(run: &mut Bytes) -> Option<Bytes> {
    let message = message_at(run, 0)?;
    run.advance(message.start);
    Some(run.split_to(message.len()))
}

/// Where the message whose length prefix starts at `at` in a batch body lies, after its
/// prefix (no further than the body's end, if the prefix announces more); `None` with less
/// than a prefix left. For a reader that decodes the message in place, from the body.
#[inline]
pub fn message_at(run: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let prefix = run.get(at..at.checked_add(LEN_PREFIX)?)?;
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let start = at + LEN_PREFIX;
    Some(start..start + len.min(run.len() - start))
}

/// Appends the head of a `MessageBatch` frame of stream `request_id` to `dst`, with a body
/// length of 0 for [`finish_batch`] to fill in; returns where the frame starts.
pub fn begin_batch(dst: &mut Vec<u8>, request_id: u64) -> usize {
    let start = dst.len();
    let header = StreamHeader { request_id };
    let header_len = header.encoded_len();
    dst.reserve(FIXED_HEADER_LEN + header_len);
    dst.extend_from_slice(&MAGIC);
    dst.push(VERSION);
    dst.push(FrameKind::MessageBatch as u8);
    dst.extend_from_slice(&(header_len as u32).to_be_bytes());
    dst.extend_from_slice(&0u32.to_be_bytes());
    // Cannot fail: a `Vec` grows.
    let _ = header.encode(dst);
    start
}

/// Appends `message` (its `size`, its encoded length, given: the caller has it) to the batch
/// frame being written at the end of `dst`. A plain `Vec` is what the encoding inlines best.
#[inline]
pub fn push_batched(dst: &mut Vec<u8>, message: &impl Message, size: usize) {
    dst.reserve(LEN_PREFIX + size);
    dst.extend_from_slice(&(size as u32).to_be_bytes());
    // `encode_raw`, not `encode`: `encode` computes the length again (which the caller has)
    // to check the room, and a `Vec` has room. prost reserves the method for its own
    // implementations in its docs, but it is public, stable and what `encode` calls.
    message.encode_raw(dst);
}

/// The bytes of the body of the batch frame that starts at `start` in `dst` so far.
pub fn batch_body_len(dst: &[u8], start: usize) -> usize {
    let h = &dst[start + 4..start + 8];
    let header_len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    dst.len() - start - FIXED_HEADER_LEN - header_len
}

/// Writes the body length of the batch frame that starts at `start` and runs to the end of
/// `dst`; returns it (the frame's flow-control size).
pub fn finish_batch(dst: &mut [u8], start: usize) -> usize {
    let body_len = batch_body_len(dst, start);
    dst[start + 8..start + 12].copy_from_slice(&(body_len as u32).to_be_bytes());
    body_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::decode_header;
    use crate::protocol::FrameDecoder;
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    fn batch(id: u64, messages: &[Vec<u8>]) -> BytesMut {
        let mut buf = Vec::new();
        let start = begin_batch(&mut buf, id);
        for m in messages {
            push_batched(&mut buf, m, m.encoded_len());
        }
        finish_batch(&mut buf, start);
        BytesMut::from(&buf[..])
    }

    #[test]
    fn a_batch_decodes_as_one_frame_whose_messages_slice_off() {
        let messages = vec![b"ab".to_vec(), Vec::new(), vec![7; 300]];
        let mut buf = batch(42, &messages);
        let frame = FrameDecoder::new(1 << 20)
            .decode(&mut buf)
            .unwrap()
            .expect("whole");
        assert!(buf.is_empty());
        assert_eq!(frame.kind, FrameKind::MessageBatch);
        let header: StreamHeader = decode_header(&frame).unwrap();
        assert_eq!(header.request_id, 42);
        assert_eq!(check_batch(&frame.body), Ok(3));
        let mut run = frame.body;
        for m in &messages {
            let body = next_batched(&mut run).expect("a message");
            assert_eq!(Vec::<u8>::decode(body).unwrap(), *m);
        }
        assert_eq!(next_batched(&mut run), None);
    }

    #[test]
    fn the_documented_batch_bytes() {
        // Two messages, `08 01` and `08 02`, of stream 1 (docs/PROTOCOL.md).
        let mut buf = Vec::new();
        let start = begin_batch(&mut buf, 1);
        buf.extend_from_slice(b"\x00\x00\x00\x02\x08\x01\x00\x00\x00\x02\x08\x02");
        assert_eq!(finish_batch(&mut buf, start), 12);
        assert_eq!(
            &buf[..],
            b"mp\x01\x0a\x00\x00\x00\x02\x00\x00\x00\x0c\x08\x01\
              \x00\x00\x00\x02\x08\x01\x00\x00\x00\x02\x08\x02"
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_where() {
        assert_eq!(check_batch(b""), Err(BadBatch::Empty));
        assert_eq!(
            check_batch(b"\x00\x00\x00\x01x\x00\x00"),
            Err(BadBatch::Truncated { offset: 5 })
        );
        assert_eq!(
            check_batch(b"\x00\x00\x00\x01x\x00\x00\x00\x09abc"),
            Err(BadBatch::Overrun {
                offset: 5,
                len: 9,
                left: 3
            })
        );
        assert_eq!(
            check_batch(b"\xff\xff\xff\xff"),
            Err(BadBatch::Overrun {
                offset: 0,
                len: u32::MAX as usize,
                left: 0
            })
        );
        let message = BadBatch::Overrun {
            offset: 5,
            len: 9,
            left: 3,
        }
        .to_string();
        assert!(message.contains("announces 9 bytes"), "{message}");
    }

    proptest! {
        #[test]
        fn any_body_is_checked_or_sliced_without_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let checked = check_batch(&body);
            let mut run = Bytes::from(body.clone());
            let mut n = 0;
            let mut total = 0;
            while let Some(m) = next_batched(&mut run) {
                n += 1;
                total += LEN_PREFIX + m.len();
            }
            prop_assert!(run.len() < LEN_PREFIX);
            if let Ok(count) = checked {
                prop_assert_eq!(count, n);
                prop_assert_eq!(total, body.len());
            }
        }
    }
}
