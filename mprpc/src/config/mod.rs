//! Configuration: one TOML file (`-i FILE` / `--config FILE`) for providers, consumers and
//! tools, with every default stated here. The original mprpc's `key=value` file is accepted too.
//!
//! ```toml
//! [server]
//! address = "127.0.0.1:8000"      # where the provider listens (port 0 picks a free port)
//! threads = 4                     # tokio worker threads
//!
//! [client]
//! timeout = "3s"                  # default per-call budget
//!
//! [registry]
//! kind = "static"
//! [registry.services]
//! "fixbug.UserServiceRpc" = ["127.0.0.1:8000"]
//!
//! [logging]
//! dir = "logs"
//! level = "info"
//! ```
//!
//! # Why it is strict
//!
//! The original read its file line by line into a map and looked keys up later: a misspelt key
//! was silently ignored, a `\r` or a tab stuck to a value, and a bad port surfaced as a connect
//! failure far from its cause. Here the whole file is checked when it is loaded, and every
//! error names the file, the line where it is known and the key, for example
//!
//! ```text
//! provider.toml: line 3: key `server.adress`: unknown field `adress`, expected one of ...
//! provider.toml: line 5: key `server.threads`: invalid type: string "four", expected usize
//! provider.toml: key `client.timeout`: must be more than zero
//! ```
//!
//! Programs take the file's path on the command line with `clap`, as
//! `#[arg(short = 'i', long = "config")] config: PathBuf` (the original's `-i FILE`), and call
//! [`Config::load`]. A program that changes a value after loading (say, from a `--listen`
//! option) can check it again with [`Config::validate`].
//!
//! A key that is absent takes its documented default; a key that is present must be valid.
//! Durations are written in [`humantime`](https://docs.rs/humantime) syntax: `"250ms"`, `"3s"`,
//! `"5min"`.
//!
//! # The legacy format
//!
//! The original C++ mprpc read `key=value` lines:
//!
//! ```text
//! # rpc provider
//! rpcserverip=127.0.0.1
//! rpcserverport=8000
//! zookeeperip=127.0.0.1
//! zookeeperport=2181
//! ```
//!
//! [`Config::load`] accepts such a file when its first line that is neither blank nor a
//! comment is `key=value` with one of the four keys above (see [`ConfigFormat::detect`]). A
//! TOML file never starts that way: its first line is a `[section]`, or a key of [`Config`]
//! such as `server.address = "..."`, and none of the four keys is a TOML key of [`Config`].
//! `rpcserverip` and `rpcserverport` become `server.address`; `zookeeperip` and
//! `zookeeperport` become a ZooKeeper `registry` with the default root and session timeout.
//! Everything else keeps its default. See [`Config::from_legacy_str`] for the exact rules.
//!
//! # Layout
//!
//! Each section's struct, defaults and checks live in a file of their own: `server.rs`
//! ([`ServerConfig`], [`CallerClock`]; its tables in `tls.rs`, `auth.rs` and
//! `adaptive_limit.rs`), `client.rs` ([`ClientConfig`], [`LoadBalance`]),
//! `registry.rs` ([`RegistryConfig`]), `logging.rs` ([`LoggingConfig`]). This file composes
//! them into [`Config`], loads a file and reports [`ConfigError`]s; `toml_error.rs` finds
//! the line and key of a TOML error, `check.rs` holds the checks the sections share, and
//! `legacy.rs` reads the original's format.
//! The sections are plain data, so this module stays at the bottom of the crate: the
//! provider, the consumer and the registries import it, never the other way round.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

mod adaptive_limit;
mod auth;
mod check;
mod client;
mod compression;
mod legacy;
mod logging;
mod protocols;
mod registry;
mod resilience;
mod server;
mod tls;
mod toml_error;
mod zk_access;

pub use adaptive_limit::AdaptiveLimitConfig;
pub(crate) use auth::parse_hash;
pub use auth::{AllowRule, ClientAuth, ServerAuth};
pub(crate) use check::check_host_port;
pub use client::{ClientConfig, LoadBalance};
pub use compression::{CompressionConfig, DEFAULT_COMPRESSION_THRESHOLD};
pub use logging::LoggingConfig;
pub use protocols::ProtocolsConfig;
pub use registry::RegistryConfig;
pub use resilience::{
    HedgeConfig, HedgeDelay, MethodConfig, MethodTable, OutlierConfig, RetryConfig,
};
pub use server::{CallerClock, ServerConfig};
pub use tls::{ClientTls, ServerTls, TlsMode};
pub use zk_access::ZkAccessConfig;
pub(crate) use zk_access::{check_digest_id, check_user_password};

use check::Check;
use toml_error::toml_error;

/// The default cap on one frame's header plus body: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// The smallest `max_frame_size` accepted: 1 KiB.
pub const MIN_MAX_FRAME_SIZE: usize = 1024;

/// The largest `max_frame_size` accepted: 1 GiB.
pub const MAX_MAX_FRAME_SIZE: usize = 1024 * 1024 * 1024;

/// The largest `max_concurrent_calls` and `max_connections` accepted: the most permits a tokio
/// semaphore can hold.
pub const MAX_LIMIT: usize = usize::MAX >> 3;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The provider's settings.
    pub server: ServerConfig,
    /// The consumer's settings.
    pub client: ClientConfig,
    /// Where providers are registered and found.
    pub registry: RegistryConfig,
    /// Where log lines go.
    pub logging: LoggingConfig,
}

/// Why a configuration could not be loaded.
///
/// Each message is one line that says everything (the operating system's reason included),
/// so [`source`](std::error::Error::source) is `None`: a program printing the chain of
/// causes prints each fact once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory). A file that is not
    /// UTF-8 is a [`ConfigError::Parse`] naming the line.
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The text is not a well-formed configuration: a syntax error, an unknown key, a value of
    /// the wrong type.
    #[error("{origin}: {}{message}", location(line, key))]
    Parse {
        /// The file (or other origin) the text came from.
        origin: String,
        /// The 1-based line of the error, when known.
        line: Option<usize>,
        /// The key concerned (`server.threads`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The configuration is well formed but a value is out of range.
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        /// The file (or other origin) the text came from.
        origin: String,
        /// The key concerned, as written in TOML (`client.timeout`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The text of a file, or a [`ConfigError::Parse`] naming the line and column of the first
/// byte that is not UTF-8.
fn utf8(bytes: Vec<u8>, origin: &str) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        let byte = e.as_bytes()[valid.len()];
        ConfigError::Parse {
            origin: origin.to_owned(),
            line: Some(valid.iter().filter(|b| **b == b'\n').count() + 1),
            key: None,
            message: format!(
                "byte 0x{byte:02x} at column {column} is not UTF-8; save the file as UTF-8"
            ),
        }
    })
}

/// `line N: key `K`: ` with the parts that are known.
fn location(line: &Option<usize>, key: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if let Some(key) = key {
        out.push_str(&format!("key `{key}`: "));
    }
    out
}

/// The two formats [`Config::load`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML, the normal format.
    Toml,
    /// The original mprpc's `key=value` lines.
    Legacy,
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Toml => "TOML",
            ConfigFormat::Legacy => "legacy key=value",
        })
    }
}

impl ConfigFormat {
    /// Decides the format of `text` by its first line that is neither blank nor a comment
    /// (`#`): it is [`Legacy`](ConfigFormat::Legacy) when that line holds a `=` and the text
    /// before the first `=`, without surrounding spaces and tabs, is `rpcserverip`,
    /// `rpcserverport`, `zookeeperip` or `zookeeperport`; otherwise (including an empty file)
    /// it is [`Toml`](ConfigFormat::Toml).
    pub fn detect(text: &str) -> ConfigFormat {
        if legacy::looks_legacy(text) {
            ConfigFormat::Legacy
        } else {
            ConfigFormat::Toml
        }
    }
}

impl Config {
    /// Reads the file at `path`, detects its format ([`ConfigFormat::detect`]), parses it and
    /// validates it. Errors name the file as `path` was given.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
            path: path.to_owned(),
            error,
        })?;
        let origin = path.display().to_string();
        let text = utf8(bytes, &origin)?;
        match ConfigFormat::detect(&text) {
            ConfigFormat::Toml => Config::from_toml_str(&text, &origin),
            ConfigFormat::Legacy => Config::from_legacy_str(&text, &origin),
        }
    }

    /// Parses and validates a TOML configuration. `origin` names the text in error messages
    /// (normally the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let (doc, errors) = DeTable::parse_recoverable(text);
        if let Some(error) = errors.first() {
            return Err(toml_error(text, origin, doc.get_ref(), error));
        }
        let config = Config::deserialize(toml::Deserializer::from(doc.clone()))
            .map_err(|error| toml_error(text, origin, doc.get_ref(), &error))?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks every value against its documented range; [`load`](Config::load) and the
    /// `from_*_str` functions call it. Useful for a configuration built in code. The error
    /// names `origin` and the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let check = Check::new(origin);
        self.server.validate(&check)?;
        self.client.validate(&check)?;
        self.registry.validate(&check)?;
        self.logging.validate(&check)
    }
}

#[cfg(test)]
mod tests;
