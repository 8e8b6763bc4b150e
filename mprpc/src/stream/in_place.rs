//! [`InPlace`]: one message's bytes, read where they lie in the buffer they came in.
//!
//! A stream's consumer decodes each message of a run from the run's buffer, which is not
//! touched while it does: the message is a range of it. A `bytes` field of the message is a
//! slice of the buffer (one reference count), as prost takes it through
//! [`Buf::copy_to_bytes`]. Reading through a `Take` of the buffer instead moved the buffer's
//! own pointer and length per field, and the processor then waited on those stores to read
//! the buffer back whole: about a twentieth of a small message's handling.

use bytes::{Buf, Bytes};

/// The bytes `start..end` of `buf`, read front to back.
///
/// What is left to read is kept as a slice (`rest`), so that [`Buf::chunk`] and
/// [`Buf::remaining`], which prost calls several times per field, are a load each, with no
/// bounds check: the position in `buf` is worked out only when a `bytes` field is sliced off
/// it ([`Buf::copy_to_bytes`]), from where the range ends.
#[derive(Debug)]
pub(crate) struct InPlace<'a> {
    buf: &'a Bytes,
    rest: &'a [u8],
    /// Where the range ends in `buf`.
    end: usize,
}

impl<'a> InPlace<'a> {
    /// The bytes `start..end` of `buf`.
    ///
    /// # Panics
    ///
    /// If the range is not within `buf`.
    #[inline]
    pub(crate) fn new(buf: &'a Bytes, start: usize, end: usize) -> InPlace<'a> {
        InPlace {
            buf,
            rest: &buf[start..end],
            end,
        }
    }

    /// All of `buf`.
    #[inline]
    pub(crate) fn whole(buf: &'a Bytes) -> InPlace<'a> {
        InPlace {
            buf,
            rest: buf,
            end: buf.len(),
        }
    }
}

impl Buf for InPlace<'_> {
    #[inline]
    fn remaining(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        self.rest
    }

    #[inline]
    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.rest.len(),
            "cannot advance past the message's end"
        );
        self.rest = &self.rest[cnt..];
    }

    #[inline]
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(
            len <= self.rest.len(),
            "cannot take more than the message has"
        );
        let pos = self.end - self.rest.len();
        self.rest = &self.rest[len..];
        self.buf.slice(pos..pos + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_its_range_and_slices_the_buffer_for_bytes() {
        let buf = Bytes::from_static(b"..hello world..");
        let mut message = InPlace::new(&buf, 2, 13);
        assert_eq!(message.remaining(), 11);
        assert_eq!(message.chunk(), b"hello world");
        message.advance(6);
        let world = message.copy_to_bytes(5);
        assert_eq!(&world[..], b"world");
        // A slice of the same buffer, not a copy.
        assert_eq!(world.as_ptr(), buf[8..].as_ptr());
        assert_eq!(message.remaining(), 0);
        assert!(message.chunk().is_empty());
        assert_eq!(InPlace::whole(&buf).remaining(), buf.len());
    }

    #[test]
    #[should_panic(expected = "cannot take more")]
    fn it_never_reads_past_its_end() {
        let buf = Bytes::from_static(b"abcdef");
        let mut message = InPlace::new(&buf, 0, 3);
        let _ = message.copy_to_bytes(4);
    }

    #[test]
    fn a_message_decodes_from_its_range_alone() {
        use prost::Message;
        let one = b"first".to_vec().encode_to_vec();
        let two = b"second".to_vec().encode_to_vec();
        let buf = Bytes::from([one.clone(), two].concat());
        let first = Vec::<u8>::decode(InPlace::new(&buf, 0, one.len())).expect("decodes");
        assert_eq!(first, b"first");
        let second = Bytes::decode(InPlace::new(&buf, one.len(), buf.len())).expect("decodes");
        assert_eq!(&second[..], b"second");
    }
}
