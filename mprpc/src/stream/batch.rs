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

use crate::protocol::batch::{batch_body_len, begin_batch, finish_batch, push_batched, LEN_PREFIX};
use crate::protocol::encode_message;

/// Gather at most this many bytes of messages before sending them.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// ... and at most this many messages.
pub(crate) const BATCH_MESSAGES: usize = 1024;

/// Encoded frames of one stream.
#[derive(Debug)]
pub(crate) struct Batch {
    id: u64,
    /// One `MessageBatch` frame, or a `Message` frame per message.
    batched: bool,
    /// The largest frame the batch may become (a `MessageBatch` frame's header plus body).
    max_frame_size: usize,
    frames: BytesMut,
    /// Messages in the batch.
    count: usize,
    /// `Message` frames: each frame's encoded length and its message's size, in order.
    sizes: Vec<(usize, usize)>,
}

impl Batch {
    pub(crate) fn new(id: u64, batched: bool, max_frame_size: usize) -> Batch {
        Batch {
            id,
            batched,
            max_frame_size,
            frames: BytesMut::new(),
            count: 0,
            sizes: Vec::new(),
        }
    }

    /// Whether a message of `size` bytes may join the batch (one always joins an empty one;
    /// the caller checked it against the frame limit).
    pub(crate) fn fits(&self, size: usize) -> bool {
        if !self.batched || self.count == 0 {
            return true;
        }
        let body = batch_body_len(&self.frames, 0);
        // The frame's header (its fixed part aside) is a few bytes of varint.
        body + LEN_PREFIX + size + 16 <= self.max_frame_size
    }

    /// Adds `message`, encoded (`size`: its encoded length).
    pub(crate) fn push(&mut self, message: &impl Message, size: usize) {
        if self.batched {
            if self.count == 0 {
                begin_batch(&mut self.frames, self.id);
            }
            push_batched(&mut self.frames, message, size);
        } else {
            let before = self.frames.len();
            encode_message(&mut self.frames, self.id, message);
            self.sizes.push((self.frames.len() - before, size));
        }
        self.count += 1;
    }

    /// Whether it should be sent before taking more.
    pub(crate) fn full(&self) -> bool {
        self.frames.len() >= BATCH_BYTES || self.count >= BATCH_MESSAGES
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the batch is one `MessageBatch` frame.
    pub(crate) fn batched(&self) -> bool {
        self.batched
    }

    /// `MessageBatch`: the whole frame, its body's size (what its credit is counted in) and
    /// how many messages it carries; the batch is empty after.
    pub(crate) fn take_frame(&mut self) -> (Bytes, usize, usize) {
        let credit = finish_batch(&mut self.frames, 0);
        let count = std::mem::take(&mut self.count);
        (self.frames.split().freeze(), credit, count)
    }

    /// `Message` frames: the sizes of the messages, for flow control.
    pub(crate) fn message_sizes(&self) -> Vec<usize> {
        self.sizes.iter().map(|(_, size)| *size).collect()
    }

    /// `Message` frames: takes the first `n` frames out, as one buffer.
    pub(crate) fn split(&mut self, n: usize) -> Bytes {
        let bytes: usize = self.sizes.drain(..n).map(|(frame, _)| frame).sum();
        self.count -= n;
        self.frames.split_to(bytes).freeze()
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
}
