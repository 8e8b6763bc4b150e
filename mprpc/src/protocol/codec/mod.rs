//! Decoding frames from a byte stream.
//!
//! A partial frame is `Ok(None)` (wait for more bytes), never an error. Every length read from
//! the network is checked against the configured maximum before any memory is reserved for
//! it, and memory for a frame is reserved as its bytes arrive (doubling what has come until
//! an eighth of the frame is here, then the rest at once), so a peer cannot make us allocate
//! by announcing a huge frame: memory held for a frame is at most eight times what came.
//! The body of a large frame (from [`pool::LARGE`](super::pool) bytes) is gathered, once
//! an eighth of the frame has come, into a buffer of the process-wide pool (`pool.rs`)
//! rather than the read buffer, so that large messages reuse memory instead of faulting in
//! fresh pages each time; [`FrameReader`] then reads the rest of that body from the socket
//! straight into it (`reader.rs`). The decoder notes
//! when a partial frame began, so that its owner can close a connection that trickles a frame
//! in slower than it is willing to wait ([`FrameDecoder::partial_frame`]).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::frame::{Frame, FrameKind, FIXED_HEADER_LEN, MAGIC, VERSION};
use super::pool;
use crate::Status;

pub mod compact;
mod reader;

pub use reader::FrameReader;

/// Why a byte stream could not be decoded. After any of these the stream is unusable: the
/// frame boundaries are lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes are not `"mp"`: the peer speaks another protocol.
    #[error("not an mprpc frame: bad magic bytes {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this build does not speak.
    #[error("unsupported protocol version {found} (this build speaks version {VERSION})")]
    UnsupportedVersion {
        /// The version the peer sent.
        found: u8,
    },
    /// A frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Header plus body length the peer announced.
        size: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A protobuf header that does not decode.
    #[error("malformed {kind:?} header: {error}")]
    BadHeader {
        /// The frame kind.
        kind: FrameKind,
        /// What prost said (in the message; not a `source()`, so it is printed once).
        error: prost::DecodeError,
    },
    /// A compact header shorter than its fixed fields, or than the names it announces.
    #[error("malformed {kind:?} header: {reason}")]
    ShortHeader {
        /// The frame kind.
        kind: FrameKind,
        /// What is missing.
        reason: &'static str,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        ProtocolError::Io(e)
    }
}

impl ProtocolError {
    /// A short name for the kind of error, for metrics and rate-limited logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::BadMagic(_) => "bad_magic",
            ProtocolError::UnsupportedVersion { .. } => "unsupported_version",
            ProtocolError::UnknownKind(_) => "unknown_kind",
            ProtocolError::FrameTooLarge { .. } => "frame_too_large",
            ProtocolError::BadHeader { .. } | ProtocolError::ShortHeader { .. } => "bad_header",
            ProtocolError::Io(_) => "io",
        }
    }

    /// The status a caller or peer should see for this error.
    pub fn to_status(&self) -> Status {
        match self {
            ProtocolError::FrameTooLarge { .. } => Status::resource_exhausted(self.to_string()),
            ProtocolError::Io(_) => Status::unavailable(self.to_string()),
            _ => Status::internal(format!("protocol error: {self}")),
        }
    }
}

/// Memory reserved for a frame's first bytes; more is reserved as they arrive.
const FIRST_RESERVE: usize = 64 * 1024;
/// Once this fraction (1/n) of a frame has arrived, the rest is reserved at once: a large
/// frame then costs one move of what came before, not a doubling chain (for 1 MiB, 256 KiB
/// copied instead of about 1 MiB, and fewer fresh pages).
const RESERVE_REST_AFTER: usize = 8;

/// Splits a byte stream into [`Frame`]s.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_size: usize,
    /// The frame being received, if only part of it has arrived.
    partial: Option<PartialFrame>,
    /// A large frame whose body is being gathered into a pooled buffer.
    assembly: Option<Assembly>,
}

/// A large frame on its way: its kind, header, and the body so far.
#[derive(Debug)]
struct Assembly {
    kind: FrameKind,
    header: Bytes,
    body: Vec<u8>,
    body_len: usize,
}

/// A frame of which only part has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialFrame {
    /// When its first bytes were seen.
    pub since: Instant,
    /// Its whole size, once its fixed header has arrived.
    pub size: Option<usize>,
}

impl FrameDecoder {
    /// A decoder that rejects frames whose header plus body exceed `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> FrameDecoder {
        FrameDecoder {
            max_frame_size,
            partial: None,
            assembly: None,
        }
    }

    /// The configured maximum.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The frame that has begun to arrive and is not complete yet, if any.
    pub fn partial_frame(&self) -> Option<PartialFrame> {
        self.partial
    }

    /// Restarts the partial frame's clock: its owner paused reading, so the time spent
    /// since is not the peer's.
    pub fn restart_partial_clock(&mut self) {
        if let Some(partial) = &mut self.partial {
            partial.since = Instant::now();
        }
    }

    /// Room for the rest of the large frame being gathered, if one is: a read into it takes
    /// the bytes that frame still needs and no more ([`FrameReader`] reads there directly).
    pub(crate) fn body_room(&mut self) -> Option<bytes::buf::Limit<&mut Vec<u8>>> {
        let assembly = self.assembly.as_mut()?;
        let missing = assembly.body_len - assembly.body.len();
        Some(BufMut::limit(&mut assembly.body, missing))
    }

    fn waiting(&mut self, size: Option<usize>) {
        match &mut self.partial {
            Some(partial) => partial.size = size,
            None => {
                self.partial = Some(PartialFrame {
                    since: Instant::now(),
                    size,
                })
            }
        }
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => self.ended(src),
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.assembly.is_some() {
            return Ok(self.gather(src));
        }
        // Check what we can as soon as the bytes are there, so that garbage is refused at
        // once rather than after waiting for twelve bytes that may never come.
        if !src.is_empty() && src[0] != MAGIC[0] {
            return Err(ProtocolError::BadMagic([
                src[0],
                src.get(1).copied().unwrap_or(0),
            ]));
        }
        if src.len() >= 2 && src[1] != MAGIC[1] {
            return Err(ProtocolError::BadMagic([src[0], src[1]]));
        }
        if src.len() >= 3 && src[2] != VERSION {
            return Err(ProtocolError::UnsupportedVersion { found: src[2] });
        }
        if src.len() < FIXED_HEADER_LEN {
            if src.is_empty() {
                self.partial = None;
            } else {
                self.waiting(None);
            }
            return Ok(None);
        }
        let kind = FrameKind::from_u8(src[3]).ok_or(ProtocolError::UnknownKind(src[3]))?;
        let header_len = u32::from_be_bytes([src[4], src[5], src[6], src[7]]) as usize;
        let body_len = u32::from_be_bytes([src[8], src[9], src[10], src[11]]) as usize;
        let size = header_len as u64 + body_len as u64;
        if size > self.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        let total = FIXED_HEADER_LEN + header_len + body_len;
        if src.len() < total
            && body_len >= pool::LARGE
            && src.len() >= (total / RESERVE_REST_AFTER).max(FIXED_HEADER_LEN + header_len)
        {
            // Large, and on its way: the rest of its body goes into a pooled buffer.
            src.advance(FIXED_HEADER_LEN);
            let header = Bytes::copy_from_slice(&src[..header_len]);
            src.advance(header_len);
            self.assembly = Some(Assembly {
                kind,
                header,
                body: pool::take(body_len),
                body_len,
            });
            self.waiting(Some(total));
            return Ok(self.gather(src));
        }
        if src.len() < total {
            // Reserve as the bytes come, doubling what is here until an eighth of the frame
            // has come, then the rest: a fixed header announcing 16 MiB costs nothing until
            // the 16 MiB are on their way.
            let missing = total - src.len();
            let grow = if src.len() >= total / RESERVE_REST_AFTER {
                missing
            } else {
                missing.min(src.len().max(FIRST_RESERVE))
            };
            src.reserve(grow);
            self.waiting(Some(total));
            return Ok(None);
        }
        self.partial = None;
        src.advance(FIXED_HEADER_LEN);
        let header = src.split_to(header_len).freeze();
        let body = src.split_to(body_len).freeze();
        Ok(Some(Frame { kind, header, body }))
    }
}

impl FrameDecoder {
    /// The end of the stream: a frame still partial (in the read buffer, or gathered) is
    /// an error, not a clean end.
    fn ended(&self, src: &BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.is_empty() && self.assembly.is_none() {
            return Ok(None);
        }
        Err(ProtocolError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a frame",
        )))
    }

    /// Moves what `src` holds of the large frame being gathered into its body: the frame,
    /// once whole.
    fn gather(&mut self, src: &mut BytesMut) -> Option<Frame> {
        let assembly = self.assembly.as_mut()?;
        let n = (assembly.body_len - assembly.body.len()).min(src.len());
        assembly.body.extend_from_slice(&src[..n]);
        src.advance(n);
        if assembly.body.len() < assembly.body_len {
            return None;
        }
        let Assembly {
            kind, header, body, ..
        } = self.assembly.take()?;
        self.partial = None;
        Some(Frame {
            kind,
            header,
            body: pool::freeze(body),
        })
    }
}

/// Decodes the protobuf header of a frame.
pub fn decode_header<H: prost::Message + Default>(frame: &Frame) -> Result<H, ProtocolError> {
    H::decode(frame.header.clone()).map_err(|error| ProtocolError::BadHeader {
        kind: frame.kind,
        error,
    })
}

#[cfg(test)]
mod tests;
