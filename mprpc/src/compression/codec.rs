//! The algorithms: a message compressed whole, and decompressed with its size bounded.

use std::io::{Read, Write};

use bytes::Bytes;

use super::Encoding;
use crate::Status;

/// zstd's level: its default, fast and already smaller than gzip's default.
const ZSTD_LEVEL: i32 = 3;

/// Why a message could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// It decompresses to more than the limit.
    #[error("the message decompresses to more than the maximum of {limit} bytes")]
    TooLarge {
        /// The limit (`max_frame_size`).
        limit: usize,
    },
    /// It is not valid data of its encoding.
    #[error("the message is not valid {encoding}: {reason}")]
    Corrupt {
        /// The encoding it claimed.
        encoding: Encoding,
        /// What the decoder said.
        reason: String,
    },
}

impl DecompressError {
    /// The status of a call whose `what` (`"the request"`, `"the reply from …"`) could not
    /// be decompressed: `ResourceExhausted` for one too large, `Internal` for one corrupt.
    pub fn into_status(self, what: &str) -> Status {
        let message = format!("{what}: {self}");
        match self {
            DecompressError::TooLarge { .. } => Status::resource_exhausted(message),
            DecompressError::Corrupt { .. } => Status::internal(message),
        }
    }
}

impl From<DecompressError> for Status {
    fn from(e: DecompressError) -> Status {
        e.into_status("a compressed message")
    }
}

/// `message` compressed with `encoding`.
pub fn compress(encoding: Encoding, message: &[u8]) -> Bytes {
    let out = Vec::with_capacity(message.len() / 2 + 64);
    let out = match encoding {
        Encoding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            // Writing to a Vec cannot fail.
            encoder.write_all(message).expect("gzip into memory");
            encoder.finish().expect("gzip into memory")
        }
        Encoding::Zstd => zstd::bulk::compress(message, ZSTD_LEVEL).expect("zstd into memory"),
    };
    Bytes::from(out)
}

/// `message`, compressed with `encoding`, decompressed: at most `limit` bytes, whatever the
/// message claims (it is read through a bound, never sized from its own header).
pub fn decompress(
    encoding: Encoding,
    message: &[u8],
    limit: usize,
) -> Result<Bytes, DecompressError> {
    let bound = (limit as u64).saturating_add(1);
    let mut out = Vec::with_capacity(message.len().saturating_mul(2).min(limit));
    let read = match encoding {
        Encoding::Gzip => flate2::read::GzDecoder::new(message)
            .take(bound)
            .read_to_end(&mut out),
        Encoding::Zstd => zstd::stream::read::Decoder::with_buffer(message)
            .and_then(|decoder| decoder.take(bound).read_to_end(&mut out)),
    };
    if let Err(e) = read {
        return Err(DecompressError::Corrupt {
            encoding,
            reason: e.to_string(),
        });
    }
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn each_encoding_round_trips() {
        let message: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for encoding in Encoding::ALL {
            let packed = compress(encoding, &message);
            assert!(
                packed.len() < message.len() / 4,
                "{encoding}: {}",
                packed.len()
            );
            let unpacked = decompress(encoding, &packed, message.len()).unwrap();
            assert_eq!(unpacked, message);
        }
    }

    #[test]
    fn a_bomb_is_stopped_at_the_limit() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        for encoding in Encoding::ALL {
            let bomb = compress(encoding, &zeros);
            assert!(bomb.len() < 512 * 1024, "{encoding}: {}", bomb.len());
            let e = decompress(encoding, &bomb, 1024 * 1024).unwrap_err();
            assert!(matches!(e, DecompressError::TooLarge { limit } if limit == 1024 * 1024));
            assert_eq!(Status::from(e).code(), Code::ResourceExhausted);
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for encoding in Encoding::ALL {
            let e = decompress(encoding, b"not compressed at all", 1024).unwrap_err();
            assert!(matches!(e, DecompressError::Corrupt { .. }), "{e}");
            assert_eq!(Status::from(e).code(), Code::Internal);
            // Truncated.
            let packed = compress(encoding, &[7u8; 10_000]);
            let e = decompress(encoding, &packed[..packed.len() / 2], 100_000).unwrap_err();
            assert!(matches!(e, DecompressError::Corrupt { .. }), "{e}");
        }
    }
}
