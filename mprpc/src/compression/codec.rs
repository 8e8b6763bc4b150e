//! The algorithms: a message compressed whole, and decompressed with its size bounded.

use std::io::{Read, Write};

use bytes::Bytes;

use super::Encoding;
use crate::Status;

/// zstd's level: its default, fast and already smaller than gzip's default.
const ZSTD_LEVEL: i32 = 3;

/// Why a message could not be decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
/// message claims (it is read through a bound, never sized from its own header, into memory
/// that grows with what comes out and never past `limit` plus a little). Every gzip member
/// is read (RFC 1952 allows several); zstd's window is held to what `limit` needs.
pub fn decompress(
    encoding: Encoding,
    message: &[u8],
    limit: usize,
) -> Result<Bytes, DecompressError> {
    let corrupt = |e: std::io::Error| DecompressError::Corrupt {
        encoding,
        reason: e.to_string(),
    };
    let out = match encoding {
        Encoding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(message), limit),
        Encoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(message).map_err(corrupt)?;
            // A window over twice the largest output allowed is refused, not allocated: its
            // frame announces more than `limit` (a window is at most the content's size,
            // rounded up to a power of two).
            let log = usize::BITS - limit.max(1024).saturating_sub(1).leading_zeros() + 1;
            decoder.window_log_max(log.clamp(10, 31)).map_err(corrupt)?;
            read_bounded(decoder, limit).map_err(|e| match e {
                e if e.to_string().contains("too much memory") => {
                    std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)
                }
                e => e,
            })
        }
    };
    match out {
        Ok(Some(out)) => Ok(Bytes::from(out)),
        Ok(None) => Err(DecompressError::TooLarge { limit }),
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => {
            Err(DecompressError::TooLarge { limit })
        }
        Err(e) => Err(corrupt(e)),
    }
}

/// Everything `reader` gives, or `None` past `limit` bytes. The buffer grows with what
/// comes (doubling, from 16 KiB), capped at `limit + 1`.
fn read_bounded(mut reader: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let cap = limit.saturating_add(1);
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Ok(None);
            }
            let grow = out.len().max(16 * 1024).min(cap - out.len());
            out.reserve_exact(grow);
        }
        let start = out.len();
        let room = out.capacity() - start;
        out.resize(start + room, 0);
        match reader.read(&mut out[start..]) {
            Ok(0) => {
                out.truncate(start);
                return Ok(Some(out));
            }
            Ok(n) => out.truncate(start + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(start),
            Err(e) => return Err(e),
        }
        if out.len() > limit {
            return Ok(None);
        }
    }
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
    fn every_gzip_member_is_read() {
        let mut two = compress(Encoding::Gzip, b"hello ").to_vec();
        two.extend_from_slice(&compress(Encoding::Gzip, b"world"));
        let out = decompress(Encoding::Gzip, &two, 1024).unwrap();
        assert_eq!(out, Bytes::from_static(b"hello world"));
    }

    #[test]
    fn output_exactly_at_the_limit_passes() {
        for encoding in Encoding::ALL {
            let packed = compress(encoding, &[9u8; 100_000]);
            assert_eq!(
                decompress(encoding, &packed, 100_000).unwrap().len(),
                100_000
            );
            let e = decompress(encoding, &packed, 99_999).unwrap_err();
            assert!(matches!(e, DecompressError::TooLarge { .. }), "{e}");
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
