//! Messages encoded into [`Body`]s: a small message into one buffer, a large one into
//! pieces, so that its large `bytes` fields go out by reference instead of being copied.
//!
//! prost writes a `bytes::Bytes` field with `BufMut::put` of a clone of it. The
//! [`PieceWriter`] takes such a field, when it is large, as a piece of its own (no copy:
//! `Bytes::copy_to_bytes` of a whole `Bytes` is the same buffer), and the writer sends the
//! pieces with one `writev`. A large field of another type (`Vec<u8>`, prost's default, comes
//! as a slice) is copied once, into a buffer of its own size taken from the
//! [`pool`](super::pool); the message's small fields go into buffers that start at
//! [`FIRST_CHUNK`] bytes and double up to [`MAX_CHUNK`], each filled before the next is
//! started, so that no buffer is grown by copying it.

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes};
use prost::Message;

use super::pool;
use crate::body::Body;

/// Messages at least this long are encoded into pieces.
const PIECES_FROM: usize = 64 * 1024;
/// A `bytes` field at least this long becomes a piece of its own.
const BY_REFERENCE: usize = 16 * 1024;
/// The first buffer for a message's small fields.
const FIRST_CHUNK: usize = 1024;
/// The largest buffer for a message's small fields.
const MAX_CHUNK: usize = 64 * 1024;

/// `message` encoded: a large message in pieces, its large `Bytes` fields not copied.
pub(crate) fn encode(message: &impl Message) -> Body {
    let len = message.encoded_len();
    if len < PIECES_FROM {
        return Body::from(message.encode_to_vec());
    }
    let mut pieces = PieceWriter {
        parts: Vec::new(),
        current: Vec::new(),
        done: 0,
        len,
        next_chunk: FIRST_CHUNK,
    };
    message.encode_raw(&mut pieces);
    pieces.flush();
    debug_assert_eq!(pieces.done, len, "encoded_len and encode_raw disagree");
    Body::from_parts(pieces.parts)
}

/// The buffer a large message is encoded into.
struct PieceWriter {
    /// The pieces so far.
    parts: Vec<Bytes>,
    /// The small fields since the last piece.
    current: Vec<u8>,
    /// The bytes in `parts`.
    done: usize,
    /// The whole message's length.
    len: usize,
    /// The size of the next buffer for small fields.
    next_chunk: usize,
}

impl PieceWriter {
    /// Ends `current` as a piece.
    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done += self.current.len();
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.current)));
        }
    }

    /// Makes room for at least one more byte in `current`: when it is full, ends it as a
    /// piece and starts the next buffer, sized for what is left of the message (at most the
    /// next chunk size, which doubles each time).
    fn room(&mut self) {
        if self.current.len() < self.current.capacity() {
            return;
        }
        self.flush();
        let left = self.len.saturating_sub(self.done);
        self.current = Vec::with_capacity(left.min(self.next_chunk).max(64));
        self.next_chunk = (self.next_chunk * 2).min(MAX_CHUNK);
    }

    /// A large field copied into a piece of its own size.
    fn copied_piece(&mut self, src: &[u8]) {
        self.flush();
        let mut own = pool::take(src.len());
        own.extend_from_slice(src);
        self.done += src.len();
        self.parts.push(pool::freeze(own));
    }
}

// SAFETY: `chunk_mut` and `advance_mut` are `Vec<u8>`'s own, on `current`, which nothing
// changes between the two calls (`room` replaces `current` only when it is full, before
// `chunk_mut` hands out its spare capacity, which is then never empty); the other methods
// write through `Vec`'s safe methods.
#[allow(unsafe_code)]
unsafe impl BufMut for PieceWriter {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize - self.done - self.current.len()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the slice `chunk_mut` returned,
        // which is `current`'s spare capacity.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.room();
        self.current.chunk_mut()
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        let n = src.remaining();
        if n >= BY_REFERENCE {
            // prost puts a `Bytes` field as a clone of it: that buffer becomes the piece. Any
            // other source (a `Vec<u8>` field comes as a slice) is copied into a pooled
            // buffer, whose pages are already in place. The type's name only chooses the
            // cheaper way; both are correct for any `Buf`.
            if std::any::type_name::<T>() == std::any::type_name::<Bytes>() {
                self.flush();
                self.done += n;
                self.parts.push(src.copy_to_bytes(n));
                return;
            }
            if src.chunk().len() == n {
                self.copied_piece(src.chunk());
                return;
            }
        }
        while src.has_remaining() {
            let chunk = src.chunk();
            let l = chunk.len();
            self.put_slice(chunk);
            src.advance(l);
        }
    }

    fn put_slice(&mut self, mut src: &[u8]) {
        if src.len() >= BY_REFERENCE {
            self.copied_piece(src);
            return;
        }
        while !src.is_empty() {
            self.room();
            let n = (self.current.capacity() - self.current.len()).min(src.len());
            self.current.extend_from_slice(&src[..n]);
            src = &src[n..];
        }
    }

    fn put_u8(&mut self, n: u8) {
        self.room();
        self.current.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with large fields between small ones.
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
        #[prost(string, repeated, tag = "5")]
        names: Vec<String>,
    }

    #[test]
    fn a_large_bytes_field_is_sent_by_reference() {
        let payload = Bytes::from(vec![7u8; 1 << 20]);
        let message = Upload {
            name: "file.bin".to_owned(),
            payload: payload.clone(),
            sizes: (0..5000).collect(),
            copied: vec![9u8; 300_000],
            names: Vec::new(),
        };
        let body = encode(&message);
        assert_eq!(body.len(), message.encoded_len());
        assert_eq!(body.to_bytes(), message.encode_to_vec());
        assert!(
            body.parts().iter().any(|p| p.as_ptr() == payload.as_ptr()),
            "the payload was copied"
        );
        // The `Vec<u8>` field is a copy of its own size.
        assert!(body.parts().iter().any(|p| p.len() == 300_000));
        assert!(body.parts().len() <= 8, "{} pieces", body.parts().len());
        assert_eq!(Upload::decode(body.to_bytes()).unwrap(), message);
    }

    #[test]
    fn small_fields_fill_each_buffer_before_the_next() {
        // Strings of 9,000 bytes (between the chunk sizes and `BY_REFERENCE`) and varints.
        let message = Upload {
            sizes: (0..100_000).map(|i| i * 1_000_003).collect(),
            names: (0..100).map(|i| "n".repeat(9_000 + i)).collect(),
            ..Upload::default()
        };
        let body = encode(&message);
        assert_eq!(body.to_bytes(), message.encode_to_vec());
        let parts = body.parts();
        assert!(parts.len() > 1);
        // Buffers double from 1 KiB to 64 KiB: about 25 pieces for 1.6 MB, not hundreds.
        assert!(parts.len() <= 40, "{} pieces", parts.len());
        let last = parts.len() - 1;
        assert!(
            parts[..last].iter().all(|p| p.len() >= FIRST_CHUNK),
            "a piece was ended early"
        );
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
