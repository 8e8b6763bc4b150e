//! Frame layout: the 12-byte fixed header, the frame kinds, and the protobuf headers (and
//! their compact form, `compact.rs`).

use bytes::{Bytes, BytesMut};
use prost::Message;

use self::compact::{CompactRequest, CompactResponse};
use crate::{Body, Metadata};

pub(crate) mod compact;

/// The first two bytes of every frame: `"mp"`.
pub const MAGIC: [u8; 2] = *b"mp";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes before the protobuf header: magic (2), version (1), kind (1), header length (4),
/// body length (4).
pub const FIXED_HEADER_LEN: usize = 12;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameKind {
    /// A call: [`RequestHeader`] + the encoded request message.
    Request = 1,
    /// The answer to a call: [`ResponseHeader`] + the encoded response (empty on error).
    Response = 2,
    /// The caller gave up on a call: [`CancelHeader`], no body. The provider stops the work.
    Cancel = 3,
    /// Are you alive? Empty header; the body, if any, is echoed in the pong.
    Ping = 4,
    /// Answer to a ping, echoing its body.
    Pong = 5,
    /// The sender will take no new calls on this connection (shutting down, or a protocol
    /// error it is about to close for): [`GoAwayHeader`], no body.
    GoAway = 6,
    /// One message of a stream, either way: [`StreamHeader`] + the encoded message. Sent
    /// only while the sender has flow-control credit (`docs/PROTOCOL.md`).
    Message = 7,
    /// The consumer's stream of requests has ended: [`StreamHeader`], no body.
    HalfClose = 8,
    /// The receiver grants more flow-control credit, for one stream or (request id 0) the
    /// whole connection: [`WindowUpdateHeader`], no body.
    WindowUpdate = 9,
    /// A run of one stream's messages: [`StreamHeader`] + each message preceded by its
    /// length (`batch.rs`). Sent only to a caller that asked for them
    /// ([`RequestHeader::batches`]), and only while the sender has credit; its whole body
    /// counts against it.
    MessageBatch = 10,
    /// A call, its header laid out compactly (`compact.rs`): sent only to a provider that
    /// has answered with a [`FrameKind::CompactResponse`].
    CompactRequest = 11,
    /// An answer, its header laid out compactly (`compact.rs`): sent only to a caller that
    /// reads them ([`RequestHeader::compact`], or a compact request).
    CompactResponse = 12,
}

impl FrameKind {
    /// The kind for a wire value, if there is one.
    pub fn from_u8(value: u8) -> Option<FrameKind> {
        Some(match value {
            1 => FrameKind::Request,
            2 => FrameKind::Response,
            3 => FrameKind::Cancel,
            4 => FrameKind::Ping,
            5 => FrameKind::Pong,
            6 => FrameKind::GoAway,
            7 => FrameKind::Message,
            8 => FrameKind::HalfClose,
            9 => FrameKind::WindowUpdate,
            10 => FrameKind::MessageBatch,
            11 => FrameKind::CompactRequest,
            12 => FrameKind::CompactResponse,
            _ => return None,
        })
    }
}

/// A decoded frame. `header` and `body` are slices of the read buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameKind,
    /// The encoded header (decode it according to `kind`: protobuf, or a compact header,
    /// `codec/compact.rs`).
    pub header: Bytes,
    /// The payload.
    pub body: Bytes,
}

/// One metadata pair (`repeated`, so order and repeated keys survive).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct MetadataEntry {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Metadata as a header carries it (the pairs move; no copy of the strings).
pub fn metadata_to_wire(metadata: Metadata) -> Vec<MetadataEntry> {
    let entries = metadata.into_entries();
    // Most calls have none: skip the conversion's setup (four times a call).
    if entries.is_empty() {
        return Vec::new();
    }
    entries
        .into_iter()
        .map(|(key, value)| MetadataEntry { key, value })
        .collect()
}

/// Metadata out of a header's pairs.
pub fn metadata_from_wire(entries: Vec<MetadataEntry>) -> Metadata {
    if entries.is_empty() {
        return Metadata::default();
    }
    Metadata::from_entries(entries.into_iter().map(|e| (e.key, e.value)).collect())
}

/// Header of a [`FrameKind::Request`] frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RequestHeader {
    /// Chosen by the caller, unique among its calls in flight on this connection.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// Fully qualified service name, `package.Service` (UTF-8; a protobuf `string` on the
    /// wire). Held as bytes so that a provider reads it in place in the frame, without a
    /// copy or an allocation per call, and looks it up without a UTF-8 check (a name that is
    /// not UTF-8 names no service).
    #[prost(bytes = "bytes", tag = "2")]
    pub service: Bytes,
    /// Method name as declared in the `.proto` file (UTF-8, held as bytes like `service`).
    #[prost(bytes = "bytes", tag = "3")]
    pub method: Bytes,
    /// The caller's remaining time budget in microseconds; 0 means none.
    #[prost(uint64, tag = "4")]
    pub timeout_us: u64,
    /// Key/value metadata.
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<MetadataEntry>,
    /// The caller's wall clock when it queued the request, in microseconds since the Unix
    /// epoch; 0 means unknown. A provider that may trust the caller's clock (the same host,
    /// or `caller_clock = "synchronized"`) subtracts the time the request spent in buffers
    /// from `timeout_us`, so a call that waited out its budget in a socket never starts.
    #[prost(uint64, tag = "6")]
    pub sent_unix_us: u64,
    /// What kind of call this opens (a [`crate::stream::MethodKind`] wire value): 0 a unary
    /// call, 1 client streaming, 2 server streaming, 3 both ways. The provider refuses a
    /// call whose kind is not its method's.
    #[prost(uint32, tag = "7")]
    pub kind: u32,
    /// For a call whose replies stream: the caller's flow-control window for them, in bytes
    /// (0: the protocol's initial window).
    #[prost(uint64, tag = "8")]
    pub window: u64,
    /// How the body is compressed: 0 not at all, 1 gzip, 2 zstd
    /// ([`crate::compression::Encoding`]). A provider that does not know the value refuses
    /// the call `Unimplemented`.
    #[prost(uint32, tag = "9")]
    pub encoding: u32,
    /// The encodings the caller takes its reply's body in: a bit per `encoding` value
    /// (`1 << 1` gzip, `1 << 2` zstd); 0, the reply is not compressed.
    #[prost(uint32, tag = "10")]
    pub accept_encoding: u32,
    /// For a call whose replies stream: the caller reads them in
    /// [`FrameKind::MessageBatch`] frames (else each comes in a `Message` frame of its own).
    #[prost(bool, tag = "11")]
    pub batches: bool,
    /// The high 64 bits of the call's trace id ([`crate::trace`]); with the two fields after
    /// it, all 0 when the caller sent no trace. Binary fields, not metadata entries: as 32
    /// and 16 hex digits under their keys the ids cost a 64-byte call about a sixth of its
    /// instructions (formatting, four strings, parsing). A provider still reads the keys
    /// from callers that send them so (gRPC, HTTP/JSON, older consumers).
    #[prost(fixed64, tag = "12")]
    pub trace_id_high: u64,
    /// The low 64 bits of the trace id.
    #[prost(fixed64, tag = "13")]
    pub trace_id_low: u64,
    /// The caller's span id: the provider's span's parent.
    #[prost(fixed64, tag = "14")]
    pub span_id: u64,
    /// The caller reads [`FrameKind::CompactResponse`] frames, and sends
    /// [`FrameKind::CompactRequest`] frames once its provider has answered with one.
    #[prost(bool, tag = "15")]
    pub compact: bool,
}

impl RequestHeader {
    /// The trace and span ids the caller sent in the header's fields, if it sent them.
    pub fn trace(&self) -> Option<(u128, u64)> {
        let trace_id = (u128::from(self.trace_id_high) << 64) | u128::from(self.trace_id_low);
        (trace_id != 0 && self.span_id != 0).then_some((trace_id, self.span_id))
    }

    /// Puts trace and span ids in the header's fields (`None`: none).
    pub fn set_trace(&mut self, ids: Option<(u128, u64)>) {
        let (trace_id, span_id) = ids.unwrap_or((0, 0));
        self.trace_id_high = (trace_id >> 64) as u64;
        self.trace_id_low = trace_id as u64;
        self.span_id = span_id;
    }
}

/// Header of a [`FrameKind::Response`] frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ResponseHeader {
    /// The id of the request this answers.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// A [`crate::Code`] wire value; 0 is success.
    #[prost(int32, tag = "2")]
    pub code: i32,
    /// The status message when `code` is not 0.
    #[prost(string, tag = "3")]
    pub message: String,
    /// Key/value metadata.
    #[prost(message, repeated, tag = "4")]
    pub metadata: Vec<MetadataEntry>,
    /// Machine-readable details of a failure (for example an encoded `google.rpc.Status`
    /// of gRPC's rich error model); empty on success and when there are none.
    #[prost(bytes = "bytes", tag = "5")]
    pub details: bytes::Bytes,
    /// Set on a failure the provider answered without running anything of the call (it
    /// arrived after the provider began shutting down): the caller may send it to another
    /// provider, as a call that was never sent, whatever its method.
    #[prost(bool, tag = "6")]
    pub not_run: bool,
    /// How the body is compressed, as in [`RequestHeader::encoding`]; never an encoding the
    /// request did not accept.
    #[prost(uint32, tag = "7")]
    pub encoding: u32,
    /// The encodings the provider takes requests in, as in
    /// [`RequestHeader::accept_encoding`]; sent to callers that accept some themselves. A
    /// consumer compresses its requests only once its provider has said so: a provider
    /// older than compression would read a compressed body as the message.
    #[prost(uint32, tag = "8")]
    pub accept_encoding: u32,
}

/// Header of a [`FrameKind::Cancel`] frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct CancelHeader {
    /// The id of the call the caller gave up on.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
}

/// Header of [`FrameKind::Message`], [`FrameKind::MessageBatch`] and [`FrameKind::HalfClose`]
/// frames.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StreamHeader {
    /// The id of the call whose stream this is.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
}

/// Header of a [`FrameKind::WindowUpdate`] frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct WindowUpdateHeader {
    /// The stream the credit is for; 0 for the connection.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// Bytes of messages the sender may send on top of its credit so far.
    #[prost(uint64, tag = "2")]
    pub increment: u64,
}

/// Header of a [`FrameKind::GoAway`] frame.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct GoAwayHeader {
    /// Why: a [`crate::Code`] wire value (`Unavailable` for a shutdown).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Why, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A frame waiting to be written. The header is encoded by the writer, straight into its
/// output buffer, so a frame costs no allocation of its own.
#[derive(Debug)]
pub enum OutFrame {
    /// A call.
    Request(RequestHeader, Body),
    /// An answer.
    Response(ResponseHeader, Body),
    /// A cancellation.
    Cancel(CancelHeader),
    /// A ping with its opaque body.
    Ping(Bytes),
    /// A pong echoing a ping's body.
    Pong(Bytes),
    /// A go-away notice.
    GoAway(GoAwayHeader),
    /// A stream's message.
    Message(StreamHeader, Body),
    /// The end of a consumer's stream of requests.
    HalfClose(StreamHeader),
    /// Flow-control credit.
    WindowUpdate(WindowUpdateHeader),
    /// Frames already encoded, written as they are: a batch of one stream's messages
    /// ([`encode_message`], or one `MessageBatch` frame), queued and written at once.
    Encoded(Bytes),
}

/// Encodes a `Message` frame of stream `request_id` carrying `message` into `dst`, with no
/// buffer of its own for the message (what a batch of a stream's replies is made of).
pub fn encode_message(dst: &mut BytesMut, request_id: u64, message: &impl Message) {
    let header = StreamHeader { request_id };
    let (header_len, body_len) = (header.encoded_len(), message.encoded_len());
    dst.reserve(FIXED_HEADER_LEN + header_len + body_len);
    put_fixed(dst, FrameKind::Message, header_len, body_len);
    put_encoded(dst, &header, header_len);
    put_encoded(dst, message, body_len);
}

/// Appends a frame's fixed header to `dst`, in one copy.
#[inline]
fn put_fixed(dst: &mut BytesMut, kind: FrameKind, header_len: usize, body_len: usize) {
    let mut fixed = [0u8; FIXED_HEADER_LEN];
    fixed[..2].copy_from_slice(&MAGIC);
    fixed[2] = VERSION;
    fixed[3] = kind as u8;
    fixed[4..8].copy_from_slice(&(header_len as u32).to_be_bytes());
    fixed[8..12].copy_from_slice(&(body_len as u32).to_be_bytes());
    dst.extend_from_slice(&fixed);
}

/// Appends `message`, whose encoded length is `len`, to `dst`. It is encoded into a slice
/// of `dst`, not into the `BytesMut` itself: prost writes varints a byte at a time, and a
/// byte put into a `BytesMut` is a call of `memcpy` (about 40 instructions a byte of a
/// header, in the profile), where a byte put into a slice is one store.
#[inline]
pub(crate) fn put_encoded(dst: &mut BytesMut, message: &impl Message, len: usize) {
    let start = dst.len();
    dst.resize(start + len, 0);
    let mut room = &mut dst[start..];
    // `encode_raw`: the length is known and the room made for it (prost's `encode` would
    // compute the length again to check).
    message.encode_raw(&mut room);
    debug_assert!(room.is_empty(), "encoded_len and encode_raw disagree");
}

impl OutFrame {
    /// Bytes this frame takes on the wire with a protobuf header (a compact one differs by
    /// a few bytes).
    pub fn encoded_len(&self) -> usize {
        let (header, body) = match self {
            OutFrame::Request(h, b) => (h.encoded_len(), b.len()),
            OutFrame::Response(h, b) => (h.encoded_len(), b.len()),
            OutFrame::Cancel(h) => (h.encoded_len(), 0),
            OutFrame::Ping(b) | OutFrame::Pong(b) => (0, b.len()),
            OutFrame::GoAway(h) => (h.encoded_len(), 0),
            OutFrame::Message(h, b) => (h.encoded_len(), b.len()),
            OutFrame::HalfClose(h) => (h.encoded_len(), 0),
            OutFrame::WindowUpdate(h) => (h.encoded_len(), 0),
            OutFrame::Encoded(b) => return b.len(),
        };
        FIXED_HEADER_LEN + header + body
    }

    /// Appends the fixed header and the protobuf header to `dst`, and returns the body,
    /// which the caller appends or writes on its own (large bodies are not copied). With
    /// `compact` (the peer reads them), a request or a response goes in a compact frame.
    pub fn encode_head(self, dst: &mut BytesMut, compact: bool) -> Body {
        match self {
            OutFrame::Request(h, body) if compact && CompactRequest::fits(&h) => {
                let header = CompactRequest::new(h);
                put_compact_head(dst, FrameKind::CompactRequest, header.len(), body, |dst| {
                    header.put(dst)
                })
            }
            OutFrame::Response(h, body) if compact => {
                let header = CompactResponse::new(h);
                put_compact_head(dst, FrameKind::CompactResponse, header.len(), body, |dst| {
                    header.put(dst)
                })
            }
            OutFrame::Request(h, body) => put_head(dst, FrameKind::Request, &h, body),
            OutFrame::Response(h, body) => put_head(dst, FrameKind::Response, &h, body),
            OutFrame::Cancel(h) => put_head(dst, FrameKind::Cancel, &h, Body::new()),
            OutFrame::Ping(body) => put_head(dst, FrameKind::Ping, &(), body.into()),
            OutFrame::Pong(body) => put_head(dst, FrameKind::Pong, &(), body.into()),
            OutFrame::GoAway(h) => put_head(dst, FrameKind::GoAway, &h, Body::new()),
            OutFrame::Message(h, body) => put_head(dst, FrameKind::Message, &h, body),
            OutFrame::HalfClose(h) => put_head(dst, FrameKind::HalfClose, &h, Body::new()),
            OutFrame::WindowUpdate(h) => put_head(dst, FrameKind::WindowUpdate, &h, Body::new()),
            OutFrame::Encoded(frames) => frames.into(),
        }
    }

    /// Roughly the bytes this frame takes while queued: what a connection's byte budget
    /// counts (the same value when queued and when written). Cheaper than
    /// [`OutFrame::encoded_len`]: it adds lengths without encoding varints.
    pub fn budget_len(&self) -> usize {
        if let OutFrame::Encoded(frames) = self {
            return frames.len();
        }
        fn entries(metadata: &[MetadataEntry]) -> usize {
            metadata
                .iter()
                .map(|e| e.key.len() + e.value.len() + 4)
                .sum()
        }
        const FIELDS: usize = 24;
        FIXED_HEADER_LEN
            + FIELDS
            + match self {
                OutFrame::Request(h, b) => {
                    h.service.len() + h.method.len() + entries(&h.metadata) + b.len()
                }
                OutFrame::Response(h, b) => h.message.len() + entries(&h.metadata) + b.len(),
                OutFrame::Cancel(_) => 0,
                OutFrame::Ping(b) | OutFrame::Pong(b) => b.len(),
                OutFrame::GoAway(h) => h.message.len(),
                OutFrame::Message(_, b) => b.len(),
                OutFrame::HalfClose(_) | OutFrame::WindowUpdate(_) | OutFrame::Encoded(_) => 0,
            }
    }

    /// Encodes the whole frame into `dst` (tests and small tools).
    pub fn encode(self, dst: &mut BytesMut) {
        let body = self.encode_head(dst, false);
        for part in body.parts() {
            dst.extend_from_slice(part);
        }
    }
}

/// Appends a frame's fixed header and its compact header of `len` bytes (written by `put`)
/// to `dst`; returns the body.
#[inline]
fn put_compact_head(
    dst: &mut BytesMut,
    kind: FrameKind,
    len: usize,
    body: Body,
    put: impl FnOnce(&mut BytesMut),
) -> Body {
    dst.reserve(FIXED_HEADER_LEN + len);
    put_fixed(dst, kind, len, body.len());
    put(dst);
    body
}

fn put_head<H: Message>(dst: &mut BytesMut, kind: FrameKind, header: &H, body: Body) -> Body {
    let header_len = header.encoded_len();
    dst.reserve(FIXED_HEADER_LEN + header_len);
    put_fixed(dst, kind, header_len, body.len());
    put_encoded(dst, header, header_len);
    body
}
