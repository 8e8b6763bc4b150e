//! Compact headers: the fields every call carries at fixed places, the rest in protobuf.
//!
//! A `CompactRequest` or `CompactResponse` frame carries the same header as a `Request` or a
//! `Response`, laid out so that the fields every call has are read and written as whole
//! little-endian words rather than varints a byte at a time. Whatever else the header holds
//! (metadata, a stream's kind and window, compression, a failure's message and details)
//! follows as a protobuf [`RequestHeader`] or [`ResponseHeader`] with only those fields,
//! empty for most calls. A request header in protobuf costs about 1,000 instructions to
//! read and 800 to write; compact, about a tenth (`docs/BENCHMARKS.md`).
//!
//! ```text
//! CompactRequest header (little-endian)     CompactResponse header (little-endian)
//!   0  request_id     u64                     0  request_id  u64
//!   8  timeout_us     u64                     8  code        i32
//!  16  sent_unix_us   u64                    12  the rest: a protobuf ResponseHeader
//!  24  trace_id_high  u64
//!  32  trace_id_low   u64
//!  40  span_id        u64
//!  48  service's length u16, 50 method's length u16
//!  52  service, method, then the rest: a protobuf RequestHeader
//! ```
//!
//! Fields at fixed places win over the same fields in the rest. Who sends what is in
//! `docs/PROTOCOL.md` ("Compact headers"): a caller announces that it reads them
//! ([`RequestHeader::compact`]), and sends compact requests once its provider has answered
//! with a compact response.

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::{put_encoded, RequestHeader, ResponseHeader};

/// Bytes of a compact request header before its names.
pub(crate) const REQUEST_FIXED: usize = 52;
/// Bytes of a compact response header before its rest.
pub(crate) const RESPONSE_FIXED: usize = 12;

/// A request header, ready to be written compactly.
pub(crate) struct CompactRequest {
    /// `request_id`, `timeout_us`, `sent_unix_us`, `trace_id_high`, `trace_id_low`, `span_id`.
    words: [u64; 6],
    service: Bytes,
    method: Bytes,
    /// The fields not at fixed places, and their encoded length, if any is set.
    rest: Option<(RequestHeader, usize)>,
}

impl CompactRequest {
    /// Whether `header` can be written compactly: its names fit in a compact header (65,535
    /// bytes each).
    pub(crate) fn fits(header: &RequestHeader) -> bool {
        let limit = usize::from(u16::MAX);
        header.service.len() <= limit && header.method.len() <= limit
    }

    /// `header`, to be written compactly (if it [`fits`](Self::fits)).
    pub(crate) fn new(mut header: RequestHeader) -> CompactRequest {
        let words = [
            header.request_id,
            header.timeout_us,
            header.sent_unix_us,
            header.trace_id_high,
            header.trace_id_low,
            header.span_id,
        ];
        let service = std::mem::take(&mut header.service);
        let method = std::mem::take(&mut header.method);
        // The rest is the header without the fields at fixed places: a field added to the
        // header goes into it without a change here.
        let rest = RequestHeader {
            request_id: 0,
            timeout_us: 0,
            sent_unix_us: 0,
            trace_id_high: 0,
            trace_id_low: 0,
            span_id: 0,
            // A compact request says so itself.
            compact: false,
            ..header
        };
        let len = rest.encoded_len();
        CompactRequest {
            words,
            service,
            method,
            rest: (len > 0).then_some((rest, len)),
        }
    }

    /// Its encoded length.
    pub(crate) fn len(&self) -> usize {
        REQUEST_FIXED
            + self.service.len()
            + self.method.len()
            + self.rest.as_ref().map_or(0, |(_, len)| *len)
    }

    /// Appends it to `dst`.
    pub(crate) fn put(&self, dst: &mut BytesMut) {
        let mut fixed = [0u8; REQUEST_FIXED];
        for (i, word) in self.words.into_iter().enumerate() {
            fixed[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        // Both fit: checked by `fits`.
        fixed[48..50].copy_from_slice(&(self.service.len() as u16).to_le_bytes());
        fixed[50..52].copy_from_slice(&(self.method.len() as u16).to_le_bytes());
        dst.extend_from_slice(&fixed);
        dst.extend_from_slice(&self.service);
        dst.extend_from_slice(&self.method);
        if let Some((rest, len)) = &self.rest {
            put_encoded(dst, rest, *len);
        }
    }
}

/// A response header, ready to be written compactly.
pub(crate) struct CompactResponse {
    request_id: u64,
    code: i32,
    rest: Option<(ResponseHeader, usize)>,
}

impl CompactResponse {
    pub(crate) fn new(header: ResponseHeader) -> CompactResponse {
        let (request_id, code) = (header.request_id, header.code);
        // As for a request: every other field, present or future, is in the rest.
        let rest = ResponseHeader {
            request_id: 0,
            code: 0,
            ..header
        };
        let len = rest.encoded_len();
        CompactResponse {
            request_id,
            code,
            rest: (len > 0).then_some((rest, len)),
        }
    }

    /// Its encoded length.
    pub(crate) fn len(&self) -> usize {
        RESPONSE_FIXED + self.rest.as_ref().map_or(0, |(_, len)| *len)
    }

    /// Appends it to `dst`.
    pub(crate) fn put(&self, dst: &mut BytesMut) {
        let mut fixed = [0u8; RESPONSE_FIXED];
        fixed[..8].copy_from_slice(&self.request_id.to_le_bytes());
        fixed[8..].copy_from_slice(&self.code.to_le_bytes());
        dst.extend_from_slice(&fixed);
        if let Some((rest, len)) = &self.rest {
            put_encoded(dst, rest, *len);
        }
    }
}
