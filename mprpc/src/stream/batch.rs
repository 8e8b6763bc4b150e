//! A batch of one stream's messages, encoded into one buffer as they are produced and sent
//! with one queue operation and one credit check, instead of one of each per message: what
//! makes a stream of small messages cheap.
//!
//! To a caller that reads them ([`RequestHeader::batches`](crate::protocol::RequestHeader)),
//! the batch is one `MessageBatch` frame, whose whole body is taken from the credit at once
//! and which the caller's reader hands to the stream in one piece. To an older one, it is a
//! `Message` frame per message, sent as far as the credit goes, message by message.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::protocol::batch::{begin_batch, finish_batch, push_batched, LEN_PREFIX};
use crate::protocol::encode_message;

/// Gather at most about this many bytes of messages before sending them...
pub(crate) const BATCH_BYTES: usize = 60 * 1024;
/// ... in a buffer of this size, reserved at once for a stream whose batches fill up (the
/// difference is room for the last message: a buffer that had to grow would be copied).
const BUFFER: usize = 64 * 1024;
/// ... and at most this many messages.
pub(crate) const BATCH_MESSAGES: usize = 1024;

/// Encoded frames of one stream.
#[derive(Debug)]
pub(crate) struct Batch {
    id: u64,
    frames: Frames,
    /// Messages in the batch.
    count: usize,
    /// The size of the last batch sent: what the next one reserves.
    last_len: usize,
}

#[derive(Debug)]
enum Frames {
    /// One `MessageBatch` frame (a `Vec`: what the encoding inlines best).
    Batched {
        frame: Vec<u8>,
        /// The most the frame may grow to, its fixed header aside (the peer's frame limit,
        /// less room for the `StreamHeader`).
        max_body: usize,
    },
    /// A `Message` frame per message, and each frame's encoded length and its message's
    /// size, in order.
    Single(BytesMut, Vec<(usize, usize)>),
}

impl Batch {
    /// A batch of `MessageBatch` frames if `batched`, else of `Message` frames; no frame
    /// larger than `max_frame_size`.
    pub(crate) fn new(id: u64, batched: bool, max_frame_size: usize) -> Batch {
        let frames = if batched {
            Frames::Batched {
                frame: Vec::new(),
                max_body: max_frame_size.saturating_sub(16),
            }
        } else {
            Frames::Single(BytesMut::new(), Vec::new())
        };
        Batch {
            id,
            frames,
            count: 0,
            last_len: 0,
        }
    }

    /// Whether a message of `size` bytes may join the batch (one always joins an empty one;
    /// the caller checked it against the frame limit).
    #[inline]
    pub(crate) fn fits(&self, size: usize) -> bool {
        match &self.frames {
            Frames::Batched { frame, max_body } => {
                self.count == 0 || frame.len() + LEN_PREFIX + size <= *max_body
            }
            Frames::Single(..) => true,
        }
    }

    /// Adds `message`, encoded (`size`: its encoded length).
    #[inline]
    pub(crate) fn push(&mut self, message: &impl Message, size: usize) {
        match &mut self.frames {
            Frames::Batched { frame, .. } => {
                if self.count == 0 {
                    *frame = Vec::with_capacity((self.last_len + 64).clamp(256, BUFFER));
                    begin_batch(frame, self.id);
                }
                push_batched(frame, message, size);
            }
            Frames::Single(frames, sizes) => {
                if self.count == 0 {
                    frames.reserve((self.last_len + 64).clamp(256, BUFFER));
                }
                let before = frames.len();
                encode_message(frames, self.id, message);
                sizes.push((frames.len() - before, size));
            }
        }
        self.count += 1;
    }

    /// Whether it should be sent before taking more.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        let len = match &self.frames {
            Frames::Batched { frame, .. } => frame.len(),
            Frames::Single(frames, _) => frames.len(),
        };
        len >= BATCH_BYTES || self.count >= BATCH_MESSAGES
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the batch is one `MessageBatch` frame.
    pub(crate) fn batched(&self) -> bool {
        matches!(self.frames, Frames::Batched { .. })
    }

    /// `MessageBatch`: the whole frame, its body's size (what its credit is counted in) and
    /// how many messages it carries; the batch is empty after.
    pub(crate) fn take_frame(&mut self) -> (Bytes, usize, usize) {
        let Frames::Batched { frame, .. } = &mut self.frames else {
            return (Bytes::new(), 0, 0);
        };
        let credit = finish_batch(frame, 0);
        self.last_len = frame.len();
        let count = std::mem::take(&mut self.count);
        (Bytes::from(std::mem::take(frame)), credit, count)
    }

    /// `Message` frames: the sizes of the messages, for flow control.
    pub(crate) fn message_sizes(&self) -> Vec<usize> {
        match &self.frames {
            Frames::Single(_, sizes) => sizes.iter().map(|(_, size)| *size).collect(),
            Frames::Batched { .. } => Vec::new(),
        }
    }

    /// `Message` frames: takes the first `n` frames out, as one buffer.
    pub(crate) fn split(&mut self, n: usize) -> Bytes {
        let Frames::Single(frames, sizes) = &mut self.frames else {
            return Bytes::new();
        };
        let bytes: usize = sizes.drain(..n).map(|(frame, _)| frame).sum();
        self.count -= n;
        self.last_len = bytes;
        frames.split_to(bytes).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::check_batch;
    use crate::protocol::{FrameDecoder, FrameKind};
    use tokio_util::codec::Decoder;

    #[test]
    fn a_batch_never_grows_past_the_frame_limit() {
        let max = 1024;
        let mut batch = Batch::new(3, true, max);
        let message = vec![1u8; 300];
        let size = message.encoded_len();
        let mut frames = Vec::new();
        for _ in 0..10 {
            if !batch.fits(size) {
                frames.push(batch.take_frame());
            }
            batch.push(&message, size);
        }
        frames.push(batch.take_frame());
        assert!(batch.is_empty());
        let mut decoder = FrameDecoder::new(max);
        let mut total = 0;
        for (frame, credit, count) in frames {
            let mut buf = BytesMut::from(&frame[..]);
            let decoded = decoder.decode(&mut buf).expect("within the limit").unwrap();
            assert_eq!(decoded.kind, FrameKind::MessageBatch);
            assert_eq!(decoded.body.len(), credit);
            assert_eq!(check_batch(&decoded.body), Ok(count));
            total += count;
        }
        assert_eq!(total, 10);
    }

    #[test]
    fn message_frames_go_as_far_as_asked() {
        let mut batch = Batch::new(5, false, 1 << 20);
        for i in 0..3u8 {
            let message = vec![i; 10];
            batch.push(&message, message.encoded_len());
        }
        assert_eq!(batch.message_sizes(), vec![12, 12, 12]);
        let first = batch.split(2);
        let mut buf = BytesMut::from(&first[..]);
        let mut decoder = FrameDecoder::new(1 << 20);
        for _ in 0..2 {
            let frame = decoder.decode(&mut buf).unwrap().expect("a frame");
            assert_eq!(frame.kind, FrameKind::Message);
        }
        assert!(buf.is_empty());
        assert!(!batch.is_empty());
        let _ = batch.split(1);
        assert!(batch.is_empty());
    }
}
