//! [`Body`]: a message's encoded bytes, as a call carries them through the layers and onto
//! the wire.
//!
//! A body is usually one buffer. A large message is encoded as several pieces: its own bytes
//! and, by reference, the large `bytes` fields it holds (fields generated as
//! [`bytes::Bytes`]), so that a 1 MiB payload goes onto the socket, with one `writev`, from the
//! buffer its sender filled, instead of being copied into the message's buffer first. Bodies
//! read from the wire are always one buffer.
//!
//! A layer that reads a body as a whole uses [`Body::to_bytes`], which copies only a body in
//! several pieces.

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

/// The encoded bytes of a message: one buffer, or several written one after the other.
///
/// Cloning is cheap (reference counts, no copy). Two bodies are equal when their bytes are,
/// however they are split.
#[derive(Clone, Default)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    One(Bytes),
    /// Two pieces or more, none empty.
    Pieces(Arc<Pieces>),
}

struct Pieces {
    len: usize,
    parts: Vec<Bytes>,
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::One(Bytes::new())
    }
}

impl Body {
    /// An empty body.
    pub const fn new() -> Body {
        Body(Repr::One(Bytes::new()))
    }

    /// A body of static bytes, with no allocation.
    pub const fn from_static(bytes: &'static [u8]) -> Body {
        Body(Repr::One(Bytes::from_static(bytes)))
    }

    /// A body made of `parts`, in order.
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Body {
        let mut parts: Vec<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        match parts.len() {
            0 => Body::new(),
            1 => Body(Repr::One(parts.pop().expect("one part"))),
            _ => Body(Repr::Pieces(Arc::new(Pieces {
                len: parts.iter().map(Bytes::len).sum(),
                parts,
            }))),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::One(bytes) => bytes.len(),
            Repr::Pieces(pieces) => pieces.len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its pieces, in order: one for a body in one buffer (none is empty, except the one
    /// piece of an empty body).
    pub fn parts(&self) -> &[Bytes] {
        match &self.0 {
            Repr::One(bytes) => std::slice::from_ref(bytes),
            Repr::Pieces(pieces) => &pieces.parts,
        }
    }

    /// The bytes in one buffer: the same buffer for a body in one piece, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::One(bytes) => bytes.clone(),
            Repr::Pieces(pieces) => {
                let mut joined = BytesMut::with_capacity(pieces.len);
                for part in &pieces.parts {
                    joined.put_slice(part);
                }
                joined.freeze()
            }
        }
    }

    /// The bytes in one buffer, as [`Body::to_bytes`].
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::One(bytes) => bytes,
            Repr::Pieces(_) => self.to_bytes(),
        }
    }

    /// The body as one buffer, copying its pieces into one the first time (for a layer that
    /// reads or changes the bytes in place of the body).
    pub fn make_contiguous(&mut self) -> &Bytes {
        if let Repr::Pieces(_) = self.0 {
            self.0 = Repr::One(self.to_bytes());
        }
        match &self.0 {
            Repr::One(bytes) => bytes,
            Repr::Pieces(_) => unreachable!("made one buffer just above"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body(Repr::One(bytes))
    }
}

impl From<BytesMut> for Body {
    fn from(bytes: BytesMut) -> Body {
        Body::from(bytes.freeze())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(Bytes::from(text))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::from_static(bytes)
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body::from_static(text.as_bytes())
    }
}

impl From<Body> for Bytes {
    fn from(body: Body) -> Bytes {
        body.into_bytes()
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        match (&self.0, &other.0) {
            (Repr::One(a), Repr::One(b)) => a == b,
            _ => {
                self.len() == other.len()
                    && (self.parts().iter().flat_map(|p| p.iter()))
                        .eq(other.parts().iter().flat_map(|p| p.iter()))
            }
        }
    }
}

impl Eq for Body {}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        self.len() == other.len() && (self.parts().iter().flat_map(|p| p.iter())).eq(other.iter())
    }
}

impl PartialEq<&[u8]> for Body {
    fn eq(&self, other: &&[u8]) -> bool {
        *self == **other
    }
}

impl PartialEq<Bytes> for Body {
    fn eq(&self, other: &Bytes) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::One(bytes) => fmt::Debug::fmt(bytes, f),
            Repr::Pieces(pieces) => write!(
                f,
                "Body({} bytes in {} pieces)",
                pieces.len,
                pieces.parts.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_buffer_and_pieces_compare_by_their_bytes() {
        let one = Body::from(Bytes::from_static(b"hello world"));
        let pieces = Body::from_parts([
            Bytes::from_static(b"hel"),
            Bytes::new(),
            Bytes::from_static(b"lo wor"),
            Bytes::from_static(b"ld"),
        ]);
        assert_eq!(pieces.len(), 11);
        assert_eq!(pieces.parts().len(), 3);
        assert_eq!(one, pieces);
        assert_eq!(pieces, b"hello world"[..]);
        assert_ne!(pieces, Body::from_static(b"hello worle"));
        assert_ne!(pieces, Body::from_static(b"hello"));
        assert_eq!(pieces.to_bytes(), Bytes::from_static(b"hello world"));
        assert_eq!(format!("{pieces:?}"), "Body(11 bytes in 3 pieces)");
    }

    #[test]
    fn a_single_part_is_one_buffer_and_costs_no_copy() {
        let bytes = Bytes::from(vec![1u8; 100]);
        let body = Body::from_parts([Bytes::new(), bytes.clone()]);
        assert_eq!(body.parts().len(), 1);
        assert_eq!(body.into_bytes().as_ptr(), bytes.as_ptr());
        assert!(Body::from_parts([]).is_empty());
        assert_eq!(Body::new().parts().len(), 1);
    }

    #[test]
    fn make_contiguous_joins_the_pieces_once() {
        let mut body = Body::from_parts([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        assert_eq!(&body.make_contiguous()[..], b"abcd");
        assert_eq!(body.parts().len(), 1);
    }

    #[test]
    fn a_body_is_no_larger_than_bytes() {
        assert_eq!(std::mem::size_of::<Body>(), std::mem::size_of::<Bytes>());
    }
}
