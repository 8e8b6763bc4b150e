//! The wire protocol: length-prefixed frames with a magic value and a version, protobuf
//! headers, and a body that is the encoded request or response message.
//!
//! `docs/PROTOCOL.md` has the byte diagrams. In short, every frame is
//!
//! ```text
//! +------+------+---------+------+----------------+--------------+----------+--------+
//! | 'm'  | 'p'  | version | kind | header_len u32 | body_len u32 |  header  |  body  |
//! +------+------+---------+------+----------------+--------------+----------+--------+
//!   0      1      2         3      4..8 (BE)        8..12 (BE)     protobuf   bytes
//! ```
//!
//! Requests carry an id; responses carry the id of the request they answer, so many calls
//! share one connection and are answered in any order.
//!
//! - [`frame`]: the fixed header, frame kinds and the protobuf headers;
//! - [`batch`]: `MessageBatch` frames, a run of one stream's messages in one frame;
//! - [`codec`]: a `tokio_util` decoder that caps every length before allocating;
//! - `encode`: messages into [`Body`](crate::Body)s, a large one in pieces (its large `bytes`
//!   fields by reference);
//! - [`outbox`]: the sending end of a connection's write queue, which counts its bytes;
//! - [`writer`]: the task that owns a socket's write half and coalesces frames;
//! - `direct`: the replies a provider's reader writes itself when the socket is free;
//! - [`limits`]: bounds on what a header may carry, checked before it is decoded;
//! - [`legacy`]: the original C++ mprpc's requests, for its callers (one call a connection).

pub mod batch;
pub mod codec;
pub(crate) mod direct;
pub(crate) mod encode;
pub mod frame;
pub mod legacy;
pub mod limits;
pub mod outbox;
pub(crate) mod pool;
pub(crate) mod shared_write;
pub mod writer;

pub use codec::{FrameDecoder, FrameReader, ProtocolError};
pub use frame::{
    encode_message, metadata_from_wire, metadata_to_wire, CancelHeader, Frame, FrameKind,
    GoAwayHeader, MetadataEntry, OutFrame, RequestHeader, ResponseHeader, StreamHeader,
    WindowUpdateHeader, FIXED_HEADER_LEN, MAGIC, VERSION,
};
pub use outbox::Outbox;
