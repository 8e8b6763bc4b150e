//! The `[client.compression]` and `[server.compression]` sections: how a side compresses
//! what it sends (`crate::compression`).

use serde::Deserialize;

use crate::compression::{Encoding, Outgoing};

/// Compression of what this side sends. Off by default; messages that arrive compressed
/// with gzip or zstd are taken in whatever this says.
///
/// ```toml
/// [client.compression]
/// encoding = "zstd"     # or "gzip"; "none" (the default) sends everything as it is
/// threshold = 1024      # bytes: smaller messages go uncompressed
/// ```
///
/// A consumer with an encoding compresses its requests and asks for replies in it; a
/// provider with an encoding compresses the replies of callers that asked for it. So a
/// reply is compressed only when both sides chose the same encoding.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// The encoding, or `none`. Default `none`.
    #[serde(deserialize_with = "encoding_or_none")]
    pub encoding: Option<Encoding>,
    /// The smallest message compressed, in bytes. Default 1,024: below about that, the
    /// headers of gzip and zstd and the CPU cost more than they save.
    pub threshold: usize,
}

/// The default `threshold`.
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1024;

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            encoding: None,
            threshold: DEFAULT_COMPRESSION_THRESHOLD,
        }
    }
}

impl CompressionConfig {
    /// Compression with `encoding` for messages from the default threshold up.
    pub fn with(encoding: Encoding) -> CompressionConfig {
        CompressionConfig {
            encoding: Some(encoding),
            ..CompressionConfig::default()
        }
    }

    /// The settings the call path uses.
    pub(crate) fn outgoing(&self) -> Outgoing {
        Outgoing {
            encoding: self.encoding,
            threshold: self.threshold,
        }
    }
}

fn encoding_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Encoding>, D::Error> {
    let name = String::deserialize(d)?;
    if name.eq_ignore_ascii_case("none") || name.eq_ignore_ascii_case("identity") {
        return Ok(None);
    }
    Encoding::from_name(&name).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown encoding `{name}`: expected \"none\", \"gzip\" or \"zstd\""
        ))
    })
}
