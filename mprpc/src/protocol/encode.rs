//! Messages encoded into [`Body`]s: a small message into one buffer, a large one into
//! pieces, so that its large `bytes` fields go out by reference instead of being copied.
//!
//! prost writes a `bytes::Bytes` field with `BufMut::put` of a clone of it. The
//! [`Pieces`] buffer takes such a field, when it is large, as a piece of its own (no copy:
//! `Bytes::copy_to_bytes` of a whole `Bytes` is the same buffer), and the writer sends the
//! pieces with one `writev`. A large field of another type (`Vec<u8>`, prost's default) comes
//! as a slice and is copied once, into a buffer of its own size; the message's small fields
//! go into buffers of [`CHUNK`] bytes at most, so that no buffer is grown by copying it.

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes};
use prost::Message;

use super::pool;
use crate::body::Body;

/// Messages at least this long are encoded into pieces.
const PIECES_FROM: usize = 64 * 1024;
/// A field at least this long becomes a piece of its own.
const BY_REFERENCE: usize = 16 * 1024;
/// The most bytes of a message's small fields gathered in one buffer.
const CHUNK: usize = 8 * 1024;

/// `message` encoded: a large message in pieces, its large `Bytes` fields not copied.
pub(crate) fn encode(message: &impl Message) -> Body {
    let len = message.encoded_len();
    if len < PIECES_FROM {
        return Body::from(message.encode_to_vec());
    }
    let mut pieces = Pieces {
        parts: Vec::new(),
        current: Vec::new(),
        done: 0,
        len,
    };
    message.encode_raw(&mut pieces);
    pieces.flush();
    debug_assert_eq!(pieces.done, len, "encoded_len and encode_raw disagree");
    Body::from_parts(pieces.parts)
}

/// The buffer a large message is encoded into.
struct Pieces {
    /// The pieces so far.
    parts: Vec<Bytes>,
    /// The small fields since the last piece.
    current: Vec<u8>,
    /// The bytes in `parts`.
    done: usize,
    /// The whole message's length.
    len: usize,
}

impl Pieces {
    /// Ends `current` as a piece.
    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done += self.current.len();
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.current)));
        }
    }

    /// Makes room for at least `n` more bytes in `current`, starting a new buffer (sized
    /// for what is left of the message, at most [`CHUNK`]) when it is full.
    fn room(&mut self, n: usize) {
        if self.current.capacity() - self.current.len() >= n.max(1) {
            return;
        }
        self.flush();
        let left = self.len.saturating_sub(self.done);
        self.current = Vec::with_capacity(n.max(left.min(CHUNK)).max(64));
    }
}

// SAFETY: `chunk_mut` and `advance_mut` are `Vec<u8>`'s own, on `current`, which nothing
// changes between the two calls (`room` replaces `current` only before `chunk_mut` hands out
// its spare capacity); the other methods write through `Vec`'s safe methods.
#[allow(unsafe_code)]
unsafe impl BufMut for Pieces {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize - self.done - self.current.len()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the slice `chunk_mut` returned,
        // which is `current`'s spare capacity.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.room(1);
        self.current.chunk_mut()
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        let n = src.remaining();
        if n >= BY_REFERENCE {
            // The same buffer when `src` is a `Bytes`; a copy of its own size otherwise.
            self.flush();
            self.done += n;
            self.parts.push(src.copy_to_bytes(n));
            return;
        }
        while src.has_remaining() {
            let chunk = src.chunk();
            let l = chunk.len();
            self.put_slice(chunk);
            src.advance(l);
        }
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= BY_REFERENCE {
            self.flush();
            let mut own = pool::take(src.len());
            own.extend_from_slice(src);
            self.done += src.len();
            self.parts.push(pool::freeze(own));
            return;
        }
        self.room(src.len());
        self.current.extend_from_slice(src);
    }

    fn put_u8(&mut self, n: u8) {
        self.room(1);
        self.current.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with a large `Bytes` field between small ones.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Upload {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(bytes = "bytes", tag = "2")]
        payload: Bytes,
        #[prost(uint64, repeated, tag = "3")]
        sizes: Vec<u64>,
        #[prost(bytes = "vec", tag = "4")]
        copied: Vec<u8>,
    }

    #[test]
    fn a_large_bytes_field_is_sent_by_reference() {
        let payload = Bytes::from(vec![7u8; 1 << 20]);
        let message = Upload {
            name: "file.bin".to_owned(),
            payload: payload.clone(),
            sizes: (0..5000).collect(),
            copied: vec![9u8; 100_000],
        };
        let body = encode(&message);
        assert_eq!(body.len(), message.encoded_len());
        assert_eq!(body.to_bytes(), message.encode_to_vec());
        assert!(
            body.parts().iter().any(|p| p.as_ptr() == payload.as_ptr()),
            "the payload was copied"
        );
        assert!(body
            .parts()
            .iter()
            .all(|p| p.len() <= CHUNK || p.len() >= BY_REFERENCE));
        assert_eq!(Upload::decode(body.to_bytes()).unwrap(), message);
    }

    #[test]
    fn a_large_message_of_small_fields_is_encoded_in_chunks() {
        let message = Upload {
            sizes: (0..100_000).map(|i| i * 1_000_003).collect(),
            ..Upload::default()
        };
        let body = encode(&message);
        assert!(body.parts().len() > 1);
        assert_eq!(body.to_bytes(), message.encode_to_vec());
    }

    #[test]
    fn a_small_message_is_one_buffer() {
        let message = Upload {
            payload: Bytes::from(vec![1u8; BY_REFERENCE]),
            ..Upload::default()
        };
        let body = encode(&message);
        assert_eq!(body.parts().len(), 1);
        assert_eq!(body.to_bytes(), message.encode_to_vec());
    }
}
