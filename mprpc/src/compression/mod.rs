//! Compression of messages, per call and negotiated, for every protocol on the port: mprpc's
//! own (a header field, `docs/PROTOCOL.md`), gRPC (`grpc-encoding`, `grpc-accept-encoding`)
//! and HTTP/JSON (`Content-Encoding`, `Accept-Encoding`).
//!
//! Off by default on both sides. A side with an [`Encoding`] configured
//! ([`CompressionConfig`](crate::config::CompressionConfig)) compresses what it sends when the
//! message is at least `threshold` bytes, and, for a reply, only when the caller said it
//! accepts the encoding. Whatever its settings, each side takes in messages compressed with
//! gzip or zstd; the decompressed size is bounded by its `max_frame_size` (more is
//! `ResourceExhausted`, so a zip bomb costs at most that much memory), and a message that
//! does not decompress is `Internal`.

mod codec;

pub use codec::{compress, decompress, DecompressError};

use serde::Deserialize;

use crate::Body;

/// A compression algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Encoding {
    /// gzip (RFC 1952), which every HTTP and gRPC peer knows.
    Gzip,
    /// Zstandard (RFC 8878): faster, and smaller output, at the same level.
    Zstd,
}

impl Encoding {
    /// Every encoding, in order of preference when a peer accepts several.
    pub const ALL: [Encoding; 2] = [Encoding::Zstd, Encoding::Gzip];

    /// The name in `grpc-encoding` and `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The encoding called `name` (HTTP's names, any case), if this build has it.
    pub fn from_name(name: &str) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Its value in mprpc's headers (0 is no compression).
    pub fn wire(self) -> u32 {
        match self {
            Encoding::Gzip => 1,
            Encoding::Zstd => 2,
        }
    }

    /// The encoding of a header's value: `Ok(None)` for 0, `Err` for a value this build
    /// does not know.
    pub fn from_wire(value: u32) -> Result<Option<Encoding>, u32> {
        match value {
            0 => Ok(None),
            1 => Ok(Some(Encoding::Gzip)),
            2 => Ok(Some(Encoding::Zstd)),
            other => Err(other),
        }
    }

    /// Its bit in an [`Accepted`] set.
    fn bit(self) -> u32 {
        1 << self.wire()
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The encodings a caller takes its reply in: a bit per [`Encoding::wire`] value, as mprpc's
/// request header carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted(u32);

impl Accepted {
    /// None.
    pub const NONE: Accepted = Accepted(0);
    /// Every encoding of this build (what a provider takes requests in).
    pub const ALL: Accepted = Accepted(1 << 1 | 1 << 2);

    /// From a header's bits (unknown bits are ignored).
    pub fn from_wire(bits: u32) -> Accepted {
        Accepted(bits)
    }

    /// The bits for a header.
    pub fn wire(self) -> u32 {
        self.0
    }

    /// Just `encoding`.
    pub fn only(encoding: Encoding) -> Accepted {
        Accepted(encoding.bit())
    }

    /// Every encoding named in an `Accept-Encoding`-style list (`gzip, zstd;q=0.5`; an entry
    /// with `q=0` is left out).
    pub fn from_list(list: &str) -> Accepted {
        let mut bits = 0;
        for entry in list.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if let (Some(encoding), false) = (Encoding::from_name(name), refused) {
                bits |= encoding.bit();
            }
        }
        Accepted(bits)
    }

    /// Whether `encoding` is among them.
    pub fn contains(self, encoding: Encoding) -> bool {
        self.0 & encoding.bit() != 0
    }
}

/// How one side compresses what it sends: its encoding, if any, and the smallest message it
/// compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The encoding; `None`: nothing is compressed.
    pub encoding: Option<Encoding>,
    /// Messages shorter than this go uncompressed.
    pub threshold: usize,
}

impl Outgoing {
    /// The encoding for a message of `len` bytes to a peer that accepts `accepted`.
    pub fn choose(&self, len: usize, accepted: Accepted) -> Option<Encoding> {
        self.encoding
            .filter(|e| len >= self.threshold && accepted.contains(*e))
    }

    /// What a caller with these settings accepts in its replies: its own encoding (a
    /// caller without one asks for none, so a reply is compressed only when both sides
    /// chose compression).
    pub fn accepted(&self) -> Accepted {
        self.encoding.map_or(Accepted::NONE, Accepted::only)
    }

    /// `message` compressed for a peer that accepts `accepted`, when the settings say so:
    /// the bytes to send and their encoding.
    pub fn apply(&self, message: Body, accepted: Accepted) -> (Body, Option<Encoding>) {
        match self.choose(message.len(), accepted) {
            Some(encoding) => (
                Body::from(compress(encoding, &message.into_bytes())),
                Some(encoding),
            ),
            None => (message, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_lists_are_read_like_http_reads_them() {
        let both = Accepted::from_list("gzip, ZSTD;q=0.5, br");
        assert!(both.contains(Encoding::Gzip) && both.contains(Encoding::Zstd));
        let gzip = Accepted::from_list("identity, zstd;q=0, gzip");
        assert!(gzip.contains(Encoding::Gzip) && !gzip.contains(Encoding::Zstd));
        assert_eq!(Accepted::from_list(""), Accepted::NONE);
    }

    #[test]
    fn only_large_messages_to_willing_peers_are_compressed() {
        let zstd = Outgoing {
            encoding: Some(Encoding::Zstd),
            threshold: 100,
        };
        let willing = Accepted::only(Encoding::Zstd);
        assert_eq!(zstd.choose(100, willing), Some(Encoding::Zstd));
        assert_eq!(zstd.choose(99, willing), None);
        assert_eq!(zstd.choose(1000, Accepted::only(Encoding::Gzip)), None);
        assert_eq!(zstd.accepted(), willing);
        let off = Outgoing {
            encoding: None,
            threshold: 0,
        };
        assert_eq!(off.choose(1000, willing), None);
        assert_eq!(off.accepted(), Accepted::NONE);
    }

    #[test]
    fn wire_values_round_trip() {
        for encoding in Encoding::ALL {
            assert_eq!(Encoding::from_wire(encoding.wire()), Ok(Some(encoding)));
            assert_eq!(Encoding::from_name(encoding.name()), Some(encoding));
        }
        assert_eq!(Encoding::from_wire(0), Ok(None));
        assert_eq!(Encoding::from_wire(7), Err(7));
    }
}
