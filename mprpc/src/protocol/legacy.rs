//! The original C++ mprpc's wire format (`docs/PROTOCOL.md`, "The original's protocol"): one
//! call per TCP connection, a request of
//!
//! ```text
//! +----------------------+---------------------------+-----------------------+
//! | header_size: u32     | RpcHeader (protobuf)      | args (protobuf)       |
//! | little-endian        | header_size bytes         | args_size bytes       |
//! +----------------------+---------------------------+-----------------------+
//! ```
//!
//! answered by the bare response message and a half-close: the reply ends with the FIN. The
//! original wrote the size in its host's order, little-endian on the x86 machines it ran on.
//!
//! [`LegacyDecoder`] takes a request in as many reads as it comes in (the original could not),
//! and caps both lengths; memory is taken as the bytes arrive, never for what a header only
//! announces.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// The original's request header (`package mprpc`).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RpcHeader {
    /// The service's unqualified name, e.g. `UserServiceRpc`.
    #[prost(bytes = "vec", tag = "1")]
    pub service_name: Vec<u8>,
    /// The method's name, e.g. `Login`.
    #[prost(bytes = "vec", tag = "2")]
    pub method_name: Vec<u8>,
    /// Bytes of the encoded arguments after the header.
    #[prost(uint32, tag = "3")]
    pub args_size: u32,
}

/// The largest header taken: two names and a size. 4 KiB is far more than any service and
/// method name need, and keeps the first two bytes of a legacy request apart from mprpc's
/// magic `mp` (which, read as a little-endian size, is 28,781).
pub const MAX_HEADER_LEN: u32 = 4096;

/// One request of the original's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyRequest {
    /// The service's name as sent (unqualified in the original).
    pub service: String,
    /// The method's name.
    pub method: String,
    /// The encoded request message.
    pub args: Bytes,
}

/// A request that cannot be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyError {
    /// The header size is zero or over [`MAX_HEADER_LEN`].
    #[error("a header of {0} bytes (the original's headers are 1 to {MAX_HEADER_LEN} bytes)")]
    HeaderSize(u32),
    /// The header is not an `RpcHeader`.
    #[error("the header is not an RpcHeader: {0}")]
    BadHeader(String),
    /// A name is not UTF-8.
    #[error("the {0} name is not UTF-8")]
    NotUtf8(&'static str),
    /// The arguments are larger than the provider takes.
    #[error("arguments of {size} bytes exceed the maximum of {limit} bytes")]
    ArgsTooLarge {
        /// The size the header announced.
        size: u32,
        /// `max_frame_size`.
        limit: usize,
    },
}

/// Whether the first four bytes of a connection are a request of the original's: a
/// little-endian header size in 1..=[`MAX_HEADER_LEN`]. Nothing else a provider is sent
/// starts so: mprpc's magic `mp` reads as 28,781 or more, a TLS record (`16 03 0x`) as 65,536
/// or more, and text (an HTTP request line) as far more. Fewer than four bytes are not
/// enough to tell.
pub fn may_be_legacy(first: &[u8]) -> bool {
    match first.get(..4) {
        Some(size) => {
            let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
            (1..=MAX_HEADER_LEN).contains(&size)
        }
        None => false,
    }
}

/// Reads one request of the original's protocol from a buffer, in as many pieces as it
/// comes.
#[derive(Debug, Clone)]
pub struct LegacyDecoder {
    max_args: usize,
    header: Option<RpcHeader>,
}

impl LegacyDecoder {
    /// A decoder taking arguments of at most `max_args` bytes.
    pub fn new(max_args: usize) -> LegacyDecoder {
        LegacyDecoder {
            max_args,
            header: None,
        }
    }

    /// The request, once `src` holds all of it (`Ok(None)` until then); what follows it is
    /// left in `src`.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<LegacyRequest>, LegacyError> {
        if self.header.is_none() {
            if src.len() < 4 {
                return Ok(None);
            }
            let size = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
            if !(1..=MAX_HEADER_LEN).contains(&size) {
                return Err(LegacyError::HeaderSize(size));
            }
            if src.len() < 4 + size as usize {
                return Ok(None);
            }
            src.advance(4);
            let header = RpcHeader::decode(src.split_to(size as usize).freeze())
                .map_err(|e| LegacyError::BadHeader(e.to_string()))?;
            if header.args_size as usize > self.max_args {
                return Err(LegacyError::ArgsTooLarge {
                    size: header.args_size,
                    limit: self.max_args,
                });
            }
            self.header = Some(header);
        }
        let Some(header) = &self.header else {
            return Ok(None);
        };
        if src.len() < header.args_size as usize {
            return Ok(None);
        }
        let header = self.header.take().unwrap_or_default();
        let args = src.split_to(header.args_size as usize).freeze();
        let name =
            |bytes: Vec<u8>, what| String::from_utf8(bytes).map_err(|_| LegacyError::NotUtf8(what));
        Ok(Some(LegacyRequest {
            service: name(header.service_name, "service")?,
            method: name(header.method_name, "method")?,
            args,
        }))
    }
}

/// A request of the original's protocol, as its caller sends it.
pub fn encode_request(service: &str, method: &str, args: &[u8]) -> BytesMut {
    let header = RpcHeader {
        service_name: service.as_bytes().to_vec(),
        method_name: method.as_bytes().to_vec(),
        args_size: u32::try_from(args.len()).unwrap_or(u32::MAX),
    };
    let mut buf = BytesMut::with_capacity(4 + header.encoded_len() + args.len());
    buf.put_u32_le(u32::try_from(header.encoded_len()).unwrap_or(u32::MAX));
    header.encode(&mut buf).expect("a BytesMut grows");
    buf.put_slice(args);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_header_is_the_originals() {
        let request = encode_request("UserServiceRpc", "Login", b"\x0a\x03bob");
        // 25 bytes of header, as the original's Login request (SEED-FACTS.md).
        assert_eq!(&request[..4], &25u32.to_le_bytes());
        assert_eq!(&request[4..6], b"\x0a\x0e");
        assert_eq!(&request[6..20], b"UserServiceRpc");
        assert_eq!(&request[20..27], b"\x12\x05Login");
        assert_eq!(&request[27..29], b"\x18\x05");
        assert!(may_be_legacy(&request));
    }

    #[test]
    fn a_request_split_anywhere_decodes_whole() {
        let request = encode_request("UserServiceRpc", "Login", b"\x0a\x03bob").freeze();
        for cut in 0..request.len() {
            let mut decoder = LegacyDecoder::new(1024);
            let mut buf = BytesMut::from(&request[..cut]);
            assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
            buf.extend_from_slice(&request[cut..]);
            let decoded = decoder.decode(&mut buf).unwrap().unwrap();
            assert_eq!(
                (decoded.service.as_str(), decoded.method.as_str()),
                ("UserServiceRpc", "Login")
            );
            assert_eq!(&decoded.args[..], b"\x0a\x03bob");
        }
    }

    #[test]
    fn lengths_are_capped_before_anything_is_allocated() {
        let mut decoder = LegacyDecoder::new(16);
        let mut huge = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert_eq!(
            decoder.decode(&mut huge),
            Err(LegacyError::HeaderSize(u32::MAX))
        );
        let mut big_args = encode_request("S", "M", &[0; 17]);
        assert!(matches!(
            LegacyDecoder::new(16).decode(&mut big_args),
            Err(LegacyError::ArgsTooLarge { size: 17, .. })
        ));
        let mut garbage = BytesMut::from(&b"\x03\x00\x00\x00\xff\xff\xff"[..]);
        assert!(matches!(
            LegacyDecoder::new(16).decode(&mut garbage),
            Err(LegacyError::BadHeader(_))
        ));
    }

    #[test]
    fn other_protocols_are_not_taken_for_legacy() {
        assert!(!may_be_legacy(b"mp\x01\x01"));
        assert!(!may_be_legacy(b"\x16\x03\x01\x02\x00"));
        assert!(!may_be_legacy(
            b"POST /fixbug.UserServiceRpc/Login HTTP/1.1"
        ));
        assert!(!may_be_legacy(b"PRI * HTTP/2.0"));
        assert!(!may_be_legacy(b"\x00\x00\x01\x00"));
        assert!(!may_be_legacy(b"\x00\x00\x00\x00"));
        assert!(!may_be_legacy(b"\x19\x00"), "too short to tell");
        // 22 bytes of header start like a TLS record, 109 like mprpc's magic.
        assert!(may_be_legacy(b"\x16\x00\x00\x00"));
        assert!(may_be_legacy(b"\x6d\x00\x00\x00"));
    }
}
