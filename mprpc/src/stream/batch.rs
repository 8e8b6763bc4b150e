//! A batch of one stream's messages, encoded as `Message` frames into one buffer as they are
//! produced, and sent as far as flow control allows with one queue operation and one credit
//! check per window, instead of one of each per message: what makes a stream of small
//! messages cheap.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::protocol::encode_message;

/// Gather at most this many bytes of messages before sending them.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// ... and at most this many messages.
pub(crate) const BATCH_MESSAGES: usize = 256;

/// Encoded frames of one stream, and each message's size (what its credit is counted in).
#[derive(Debug)]
pub(crate) struct Batch {
    id: u64,
    frames: BytesMut,
    /// Each frame's encoded length and its message's size, in order.
    sizes: Vec<(usize, usize)>,
}

impl Batch {
    pub(crate) fn new(id: u64) -> Batch {
        Batch {
            id,
            frames: BytesMut::new(),
            sizes: Vec::new(),
        }
    }

    /// Adds `message`, encoded.
    pub(crate) fn push(&mut self, message: &impl Message) {
        let before = self.frames.len();
        encode_message(&mut self.frames, self.id, message);
        self.sizes
            .push((self.frames.len() - before, message.encoded_len()));
    }

    /// Whether it should be sent before taking more.
    pub(crate) fn full(&self) -> bool {
        self.frames.len() >= BATCH_BYTES || self.sizes.len() >= BATCH_MESSAGES
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// The sizes of the messages, for flow control.
    pub(crate) fn message_sizes(&self) -> Vec<usize> {
        self.sizes.iter().map(|(_, size)| *size).collect()
    }

    /// Takes the first `n` frames out, as one buffer.
    pub(crate) fn split(&mut self, n: usize) -> Bytes {
        let bytes: usize = self.sizes.drain(..n).map(|(frame, _)| frame).sum();
        self.frames.split_to(bytes).freeze()
    }
}
