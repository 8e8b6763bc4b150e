//! Reading compact request and response headers (their layout: `frame/compact.rs`), and
//! the headers of either form of a request or a response.

use bytes::Bytes;
use prost::{DecodeError, Message};

use super::{decode_header, ProtocolError};
use crate::protocol::frame::compact::{REQUEST_FIXED, RESPONSE_FIXED};
use crate::protocol::frame::{Frame, FrameKind, RequestHeader, ResponseHeader};
use crate::protocol::limits::{MetadataLimits, MetadataTooLarge};

fn word(header: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(header[at..at + 8].try_into().expect("eight bytes"))
}

/// The header of a `Request` or `CompactRequest` frame.
pub fn request_header(frame: &Frame) -> Result<RequestHeader, ProtocolError> {
    match frame.kind {
        FrameKind::CompactRequest => decode_request(&frame.header).map_err(|e| e.of(frame.kind)),
        _ => decode_header(frame),
    }
}

/// The header of a `Response` or `CompactResponse` frame.
pub fn response_header(frame: &Frame) -> Result<ResponseHeader, ProtocolError> {
    match frame.kind {
        FrameKind::CompactResponse => decode_response(&frame.header).map_err(|e| e.of(frame.kind)),
        _ => decode_header(frame),
    }
}

/// Checks the metadata of a request's or a response's header before it is decoded
/// ([`MetadataLimits::check_encoded`]; `field`: 5 for a request, 4 for a response): the
/// protobuf header, or a compact header's protobuf rest, with the request id from its fixed
/// place (the rest has none), so that the refusal reaches the call.
pub fn check_metadata(
    limits: &MetadataLimits,
    frame: &Frame,
    field: u32,
) -> Result<(), MetadataTooLarge> {
    let header = &frame.header[..];
    let (part, id) = match frame.kind {
        FrameKind::CompactRequest => (request_rest(header), fixed_id(header)),
        FrameKind::CompactResponse => (
            header.get(RESPONSE_FIXED..).unwrap_or(&[]),
            fixed_id(header),
        ),
        _ => (header, None),
    };
    limits.check_encoded(part, field).map_err(|mut e| {
        if let Some(id) = id {
            e.id = id;
        }
        e
    })
}

/// The request id at the start of a compact header, if it is that long.
fn fixed_id(header: &[u8]) -> Option<u64> {
    let bytes = header.get(..8)?;
    Some(u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
}

/// What is wrong with a compact header.
#[derive(Debug)]
enum Malformed {
    Short(&'static str),
    Rest(DecodeError),
}

impl Malformed {
    fn of(self, kind: FrameKind) -> ProtocolError {
        match self {
            Malformed::Short(reason) => ProtocolError::ShortHeader { kind, reason },
            Malformed::Rest(error) => ProtocolError::BadHeader { kind, error },
        }
    }
}

/// The protobuf rest of a compact request header.
fn request_rest(header: &[u8]) -> &[u8] {
    let Some(lens) = header.get(48..REQUEST_FIXED) else {
        return &[];
    };
    let names = usize::from(u16::from_le_bytes([lens[0], lens[1]]))
        + usize::from(u16::from_le_bytes([lens[2], lens[3]]));
    header.get(REQUEST_FIXED + names..).unwrap_or(&[])
}

fn decode_request(header: &Bytes) -> Result<RequestHeader, Malformed> {
    if header.len() < REQUEST_FIXED {
        return Err(Malformed::Short("shorter than its 52 fixed bytes"));
    }
    let service_len = usize::from(u16::from_le_bytes([header[48], header[49]]));
    let method_len = usize::from(u16::from_le_bytes([header[50], header[51]]));
    let names_end = REQUEST_FIXED + service_len + method_len;
    if header.len() < names_end {
        return Err(Malformed::Short("shorter than the names it announces"));
    }
    let mut decoded = if header.len() == names_end {
        RequestHeader::default()
    } else {
        RequestHeader::decode(header.slice(names_end..)).map_err(Malformed::Rest)?
    };
    decoded.request_id = word(header, 0);
    decoded.timeout_us = word(header, 8);
    decoded.sent_unix_us = word(header, 16);
    decoded.trace_id_high = word(header, 24);
    decoded.trace_id_low = word(header, 32);
    decoded.span_id = word(header, 40);
    decoded.service = header.slice(REQUEST_FIXED..REQUEST_FIXED + service_len);
    decoded.method = header.slice(REQUEST_FIXED + service_len..names_end);
    // A compact request says the caller reads compact responses.
    decoded.compact = true;
    Ok(decoded)
}

fn decode_response(header: &Bytes) -> Result<ResponseHeader, Malformed> {
    if header.len() < RESPONSE_FIXED {
        return Err(Malformed::Short("shorter than its 12 fixed bytes"));
    }
    let mut decoded = if header.len() == RESPONSE_FIXED {
        ResponseHeader::default()
    } else {
        ResponseHeader::decode(header.slice(RESPONSE_FIXED..)).map_err(Malformed::Rest)?
    };
    decoded.request_id = word(header, 0);
    decoded.code = i32::from_le_bytes(header[8..12].try_into().expect("four bytes"));
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::compact::{CompactRequest, CompactResponse};
    use crate::protocol::MetadataEntry;
    use bytes::BytesMut;

    fn usual() -> RequestHeader {
        RequestHeader {
            request_id: 77,
            service: Bytes::from_static(b"fixbug.UserServiceRpc"),
            method: Bytes::from_static(b"Login"),
            timeout_us: 1_500_000,
            sent_unix_us: 1_765_000_000_000_000,
            trace_id_high: 0x0123_4567_89ab_cdef,
            trace_id_low: u64::MAX,
            span_id: 1,
            compact: true,
            ..RequestHeader::default()
        }
    }

    fn request(header: RequestHeader) -> Option<Vec<u8>> {
        if !CompactRequest::fits(&header) {
            return None;
        }
        let compact = CompactRequest::new(header);
        let mut out = BytesMut::new();
        compact.put(&mut out);
        assert_eq!(out.len(), compact.len());
        Some(out.to_vec())
    }

    fn round_trip(header: &RequestHeader) -> RequestHeader {
        let encoded = request(header.clone()).expect("names fit");
        decode_request(&Bytes::from(encoded)).expect("decodes")
    }

    #[test]
    fn a_usual_request_header_is_all_fixed_and_comes_back_whole() {
        let header = usual();
        let encoded = request(header.clone()).unwrap();
        assert_eq!(encoded.len(), REQUEST_FIXED + 21 + 5, "no protobuf rest");
        assert_eq!(request_rest(&encoded), &[] as &[u8]);
        assert_eq!(round_trip(&header), header);
    }

    #[test]
    fn every_other_field_travels_in_the_rest() {
        let header = RequestHeader {
            metadata: vec![MetadataEntry {
                key: "authorization".into(),
                value: "Bearer x".into(),
            }],
            kind: 2,
            window: 1 << 20,
            encoding: 1,
            accept_encoding: 6,
            batches: true,
            ..usual()
        };
        let encoded = request(header.clone()).unwrap();
        assert!(!request_rest(&encoded).is_empty());
        assert_eq!(round_trip(&header), header);
    }

    #[test]
    fn a_name_too_long_for_a_compact_header_is_given_back() {
        let header = RequestHeader {
            method: Bytes::from(vec![b'm'; 70_000]),
            ..usual()
        };
        assert_eq!(request(header), None);
    }

    #[test]
    fn fields_at_fixed_places_win_over_the_rest() {
        let mut encoded = request(usual()).unwrap();
        // A rest that names another request id and service.
        RequestHeader {
            request_id: 5,
            service: Bytes::from_static(b"other"),
            ..RequestHeader::default()
        }
        .encode(&mut encoded)
        .unwrap();
        let decoded = decode_request(&Bytes::from(encoded)).unwrap();
        assert_eq!(decoded.request_id, 77);
        assert_eq!(decoded.service, usual().service);
    }

    #[test]
    fn responses_come_back_whole_with_or_without_a_rest() {
        for header in [
            ResponseHeader {
                request_id: u64::MAX - 1,
                ..ResponseHeader::default()
            },
            ResponseHeader {
                request_id: 9,
                code: 14,
                message: "no providers".into(),
                metadata: vec![MetadataEntry {
                    key: "k".into(),
                    value: "v".into(),
                }],
                details: Bytes::from_static(b"\x01\x02"),
                not_run: true,
                encoding: 2,
                accept_encoding: 4,
            },
            ResponseHeader {
                request_id: 3,
                code: -1,
                ..ResponseHeader::default()
            },
        ] {
            let compact = CompactResponse::new(header.clone());
            let mut encoded = BytesMut::new();
            compact.put(&mut encoded);
            assert_eq!(compact.len(), encoded.len());
            assert_eq!(
                encoded.len() == RESPONSE_FIXED,
                header.message.is_empty() && !header.not_run
            );
            assert_eq!(decode_response(&encoded.freeze()).unwrap(), header);
        }
    }

    #[test]
    fn metadata_over_the_limit_is_refused_to_the_request_id_at_its_fixed_place() {
        let entries = (0..100)
            .map(|i| MetadataEntry {
                key: format!("k{i}"),
                value: "v".repeat(200),
            })
            .collect();
        let header = RequestHeader {
            metadata: entries,
            ..usual()
        };
        let frame = Frame {
            kind: FrameKind::CompactRequest,
            header: Bytes::from(request(header).unwrap()),
            body: Bytes::new(),
        };
        let refused = check_metadata(&MetadataLimits::default(), &frame, 5).unwrap_err();
        assert_eq!((refused.id, refused.entries), (77, 100));

        let response = ResponseHeader {
            request_id: 12,
            metadata: (0..100)
                .map(|i| MetadataEntry {
                    key: format!("k{i}"),
                    value: "v".repeat(200),
                })
                .collect(),
            ..ResponseHeader::default()
        };
        let mut encoded = BytesMut::new();
        CompactResponse::new(response).put(&mut encoded);
        let frame = Frame {
            kind: FrameKind::CompactResponse,
            header: encoded.freeze(),
            body: Bytes::new(),
        };
        let refused = check_metadata(&MetadataLimits::default(), &frame, 4).unwrap_err();
        assert_eq!((refused.id, refused.entries), (12, 100));
    }

    #[test]
    fn short_or_garbage_headers_are_errors_not_panics() {
        let encoded = request(usual()).unwrap();
        for cut in 0..encoded.len() {
            let short = Bytes::copy_from_slice(&encoded[..cut]);
            assert!(decode_request(&short).is_err(), "cut at {cut}");
            let _ = request_rest(&short);
        }
        // Names longer than the header.
        let mut lying = encoded.clone();
        lying[48] = 0xff;
        lying[49] = 0xff;
        assert!(decode_request(&Bytes::from(lying.clone())).is_err());
        assert_eq!(request_rest(&lying), &[] as &[u8]);
        // A rest that is not protobuf.
        let mut garbage = encoded;
        garbage.extend_from_slice(&[0xff; 12]);
        assert!(decode_request(&Bytes::from(garbage)).is_err());
        for cut in 0..RESPONSE_FIXED {
            assert!(decode_response(&Bytes::from(vec![7; cut])).is_err());
        }
        let mut response = vec![0; RESPONSE_FIXED];
        response.extend_from_slice(&[0xff; 5]);
        assert!(decode_response(&Bytes::from(response)).is_err());
    }
}
