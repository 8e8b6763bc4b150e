//! Bounds on the metadata a header may carry, checked on the encoded bytes before the header
//! is decoded.
//!
//! Decoding a protobuf header builds every metadata entry it holds: a 15 MiB header of eight
//! million empty entries becomes hundreds of megabytes of `String`s. So a receiver first
//! walks the fields of a large header (over [`PRESCAN_ABOVE`] bytes) without allocating and
//! counts the entries and their bytes ([`MetadataLimits::check_encoded`]); a header over the
//! limits is refused without being decoded. A small header (the usual case: a hundred bytes)
//! cannot cost much to decode, so it is decoded first and its entries counted then
//! ([`MetadataLimits::check_decoded`]): the call path pays a length comparison.

use bytes::Buf;
use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;

use super::frame::MetadataEntry;

/// Headers longer than this are walked before they are decoded. One this short holds at most
/// about 2,000 entries, a few hundred KiB once decoded.
pub const PRESCAN_ABOVE: usize = 4096;

/// Metadata entries a header may carry by default.
pub const DEFAULT_MAX_METADATA_ENTRIES: usize = 64;
/// Bytes of metadata (encoded entries) a header may carry by default.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 16 * 1024;

/// How much metadata one header may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Entries, at most.
    pub max_entries: usize,
    /// Encoded bytes of all entries together, at most.
    pub max_bytes: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits {
            max_entries: DEFAULT_MAX_METADATA_ENTRIES,
            max_bytes: DEFAULT_MAX_METADATA_BYTES,
        }
    }
}

/// A header over the limits, with what it held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the metadata ({entries} entries, {bytes} bytes) exceeds the limit of {} entries and {} bytes",
    limits.max_entries,
    limits.max_bytes
)]
pub struct MetadataTooLarge {
    /// Field 1 of the header (the request id of request and response headers), 0 if absent.
    pub id: u64,
    /// Entries found.
    pub entries: usize,
    /// Encoded bytes of the entries found.
    pub bytes: usize,
    /// The limits exceeded.
    pub limits: MetadataLimits,
}

impl MetadataLimits {
    /// Checks the decoded `entries` of the header whose field 1 is `id`.
    pub fn check_decoded(
        &self,
        id: u64,
        entries: &[MetadataEntry],
    ) -> Result<(), MetadataTooLarge> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = entries.iter().map(Message::encoded_len).sum();
        if entries.len() > self.max_entries || bytes > self.max_bytes {
            return Err(MetadataTooLarge {
                id,
                entries: entries.len(),
                bytes,
                limits: *self,
            });
        }
        Ok(())
    }

    /// Checks the repeated message field `field` (5 for a request, 4 for a response) of the
    /// encoded header `header`, if it is longer than [`PRESCAN_ABOVE`]; a shorter one passes
    /// (check it with [`MetadataLimits::check_decoded`]). A header that does not parse passes:
    /// decoding it reports the real error.
    pub fn check_encoded(&self, header: &[u8], field: u32) -> Result<(), MetadataTooLarge> {
        if header.len() <= PRESCAN_ABOVE {
            return Ok(());
        }
        let (mut id, mut entries, mut bytes) = (0, 0, 0);
        let mut buf = header;
        while buf.has_remaining() {
            let Ok((tag, wire_type)) = decode_key(&mut buf) else {
                return Ok(());
            };
            match wire_type {
                WireType::Varint => {
                    let Ok(value) = decode_varint(&mut buf) else {
                        return Ok(());
                    };
                    if tag == 1 {
                        id = value;
                    }
                }
                WireType::LengthDelimited => {
                    let Ok(len) = decode_varint(&mut buf) else {
                        return Ok(());
                    };
                    let Ok(len) = usize::try_from(len) else {
                        return Ok(());
                    };
                    if len > buf.remaining() {
                        return Ok(());
                    }
                    buf.advance(len);
                    if tag == field {
                        entries += 1;
                        bytes += len;
                    }
                }
                WireType::SixtyFourBit if buf.remaining() >= 8 => buf.advance(8),
                WireType::ThirtyTwoBit if buf.remaining() >= 4 => buf.advance(4),
                _ => return Ok(()),
            }
        }
        if entries > self.max_entries || bytes > self.max_bytes {
            return Err(MetadataTooLarge {
                id,
                entries,
                bytes,
                limits: *self,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MetadataEntry, RequestHeader, ResponseHeader};
    use prost::Message;

    fn request(entries: usize, value_len: usize) -> Vec<u8> {
        RequestHeader {
            request_id: 42,
            service: "fixbug.UserServiceRpc".into(),
            method: "Login".into(),
            metadata: (0..entries)
                .map(|i| MetadataEntry {
                    key: format!("k{i}"),
                    value: "v".repeat(value_len),
                })
                .collect(),
            ..RequestHeader::default()
        }
        .encode_to_vec()
    }

    fn check(limits: &MetadataLimits, header: &[u8]) -> Result<(), MetadataTooLarge> {
        limits.check_encoded(header, 5)?;
        let decoded = RequestHeader::decode(header).expect("a valid header");
        limits.check_decoded(decoded.request_id, &decoded.metadata)
    }

    #[test]
    fn headers_within_the_limits_pass() {
        let limits = MetadataLimits::default();
        check(&limits, &request(0, 0)).unwrap();
        check(&limits, &request(64, 10)).unwrap();
        check(&limits, &request(1, 16_000)).unwrap();
    }

    #[test]
    fn small_and_large_headers_are_measured_alike() {
        let limits = MetadataLimits::default();
        // 65 entries: a short header (decoded, then counted) and a long one (walked).
        for value_len in [1, 100] {
            let header = request(65, value_len);
            assert_eq!(header.len() > PRESCAN_ABOVE, value_len == 100);
            let err = check(&limits, &header).unwrap_err();
            assert_eq!((err.id, err.entries), (42, 65));
        }
        let decoded = RequestHeader::decode(&request(65, 100)[..]).unwrap();
        let walked = limits.check_encoded(&request(65, 100), 5).unwrap_err();
        let counted = limits.check_decoded(42, &decoded.metadata).unwrap_err();
        assert_eq!(walked.bytes, counted.bytes);
    }

    #[test]
    fn too_many_entries_are_counted_without_decoding() {
        // Eight thousand empty entries: the shape of the attack, scaled down.
        let mut header = request(0, 0);
        for _ in 0..8_000 {
            header.extend_from_slice(&[0x2a, 0x00]);
        }
        let err = MetadataLimits::default()
            .check_encoded(&header, 5)
            .unwrap_err();
        assert_eq!((err.id, err.entries, err.bytes), (42, 8_000, 0));
        assert!(err.to_string().contains("8000 entries"), "{err}");
    }

    #[test]
    fn too_many_bytes_are_refused() {
        let err = MetadataLimits::default()
            .check_encoded(&request(2, 10_000), 5)
            .unwrap_err();
        assert_eq!(err.entries, 2);
        assert!(err.bytes > 20_000);
    }

    #[test]
    fn response_metadata_is_field_four() {
        let header = ResponseHeader {
            request_id: 7,
            metadata: (0..1000)
                .map(|_| MetadataEntry {
                    key: "k".into(),
                    value: String::new(),
                })
                .collect(),
            ..ResponseHeader::default()
        }
        .encode_to_vec();
        let limits = MetadataLimits::default();
        assert_eq!(limits.check_encoded(&header, 4).unwrap_err().entries, 1000);
        limits.check_encoded(&header, 5).unwrap();
    }

    #[test]
    fn garbage_passes_to_the_decoder() {
        let limits = MetadataLimits {
            max_entries: 0,
            max_bytes: 0,
        };
        limits.check_encoded(&[0xff; 5000], 5).unwrap();
        let mut truncated = vec![0x2a, 0x7f];
        truncated.resize(5000, 0x2a);
        truncated.extend_from_slice(&[0x2a, 0xff, 0x01]);
        limits.check_encoded(&truncated, 5).unwrap();
    }
}
