//! The `[server.tls]` and `[client.tls]` sections: certificates for the RPC port.
//!
//! Paths are PEM files, relative to the working directory of the process. The files are read
//! when a provider starts or a channel first connects, and a provider reads its own again when
//! they change (see [`crate::tls`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::Check;
use super::ConfigError;

/// A provider's TLS settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The provider's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Whether plaintext connections are refused (`required`, the default) or served on the
    /// same port beside TLS ones (`optional`, for a migration).
    #[serde(default)]
    pub mode: TlsMode,
    /// A connection must finish its handshake within this. More than zero. Default 5 s.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How often the files are checked for a change (they are also read again on `SIGHUP`).
    /// More than zero. Default 10 s.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

/// Whether a TLS provider also serves plaintext connections.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Only TLS: a plaintext client is told the provider requires TLS, and closed.
    #[default]
    Required,
    /// TLS and plaintext on the same port, told apart by their first byte.
    Optional,
}

/// A consumer's TLS settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// The CAs whose providers are trusted.
    pub ca: PathBuf,
    /// The consumer's own certificate chain, for providers that ask for one (mutual TLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the provider's certificate must carry. Default: the host of the provider's
    /// address (an IP address or a DNS name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// A connection must finish its handshake within this. More than zero. Default 5 s.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(10)
}

impl ServerTls {
    /// Settings with these files and the defaults.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerTls {
        ServerTls {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            mode: TlsMode::Required,
            handshake_timeout: default_handshake_timeout(),
            reload_interval: default_reload_interval(),
        }
    }

    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.positive(self.handshake_timeout, "server.tls.handshake_timeout")?;
        check.positive(self.reload_interval, "server.tls.reload_interval")
    }
}

impl ClientTls {
    /// Settings that trust the CAs in `ca`, with the defaults.
    pub fn new(ca: impl Into<PathBuf>) -> ClientTls {
        ClientTls {
            ca: ca.into(),
            cert: None,
            key: None,
            server_name: None,
            handshake_timeout: default_handshake_timeout(),
        }
    }

    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.positive(self.handshake_timeout, "client.tls.handshake_timeout")?;
        check.that(
            self.cert.is_some() == self.key.is_some(),
            "client.tls",
            "`cert` and `key` go together: set both or neither",
        )
    }
}
