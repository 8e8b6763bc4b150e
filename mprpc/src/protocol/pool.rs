//! Large buffers kept for reuse, process-wide: the bodies of large frames as they are read,
//! and the large fields of messages that are copied as they are encoded.
//!
//! A 1 MiB message otherwise costs fresh memory each time, on each side: glibc serves
//! allocations this large with `mmap` (or gives the top of its heap back to the system once
//! they are freed), so every such buffer is new pages, each faulted in and zeroed by the
//! kernel; at 1 MiB that was most of the gap to a raw TCP echo. Here a buffer of at least
//! [`LARGE`] bytes goes back to the pool when the last [`Bytes`] of it is dropped, and the
//! next large message takes it, its pages already in place.
//!
//! The pool holds at most [`POOL_BYTES`] in all (buffers over it are freed as usual), and
//! no buffer larger than [`MAX_POOLED`]: the memory a process keeps for this is bounded
//! whatever its traffic.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Buffers at least this large are taken from the pool and given back to it.
pub(crate) const LARGE: usize = 256 * 1024;
/// The most bytes of free buffers the pool keeps.
const POOL_BYTES: usize = 64 * 1024 * 1024;
/// Larger buffers are never kept.
const MAX_POOLED: usize = 16 * 1024 * 1024;

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    bytes: 0,
});

struct Pool {
    free: Vec<Vec<u8>>,
    /// The capacity of the buffers in `free`.
    bytes: usize,
}

/// An empty buffer with room for at least `len` bytes: a free one from the pool (the
/// smallest that is large enough), or a new one.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if len >= LARGE {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        let best = (pool.free.iter().enumerate())
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            let buf = pool.free.swap_remove(i);
            pool.bytes -= buf.capacity();
            return buf;
        }
    }
    Vec::with_capacity(len)
}

/// `buf` as [`Bytes`]; a large one goes back to the pool when the last of its `Bytes` is
/// dropped.
pub(crate) fn freeze(buf: Vec<u8>) -> Bytes {
    if buf.capacity() >= LARGE {
        Bytes::from_owner(Pooled(buf))
    } else {
        Bytes::from(buf)
    }
}

/// A buffer that returns to the pool when dropped.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        let capacity = buf.capacity();
        if capacity > MAX_POOLED {
            return;
        }
        buf.clear();
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.bytes + capacity <= POOL_BYTES {
            pool.bytes += capacity;
            pool.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_comes_back_for_the_next_message() {
        let len = LARGE + 12_345;
        let mut buf = take(len);
        buf.extend_from_slice(&vec![7u8; len]);
        let ptr = buf.as_ptr();
        let bytes = freeze(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        // Still in use through the slice: not in the pool yet.
        assert_eq!(slice[0], 7);
        drop(slice);
        // Other tests use the pool at the same time: look for this buffer among a few.
        let taken: Vec<Vec<u8>> = (0..8).map(|_| take(len)).collect();
        assert!(
            taken.iter().any(|b| b.as_ptr() == ptr),
            "the buffer was not reused"
        );
        assert!(taken.iter().all(|b| b.is_empty() && b.capacity() >= len));
    }

    #[test]
    fn small_buffers_are_not_pooled() {
        let bytes = freeze(vec![1, 2, 3]);
        assert_eq!(&bytes[..], &[1, 2, 3]);
        let buf = take(100);
        assert!(buf.capacity() >= 100 && buf.capacity() < LARGE);
    }
}
