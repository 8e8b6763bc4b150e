//! TLS for the RPC port, with rustls: certificates from PEM files, checked when they are read
//! (an expired or not-yet-valid certificate is refused with its file and dates), and, on a
//! provider, read again when they change.
//!
//! - [`ServerTls`](crate::config::ServerTls) becomes an [`Acceptor`] (`acceptor.rs`), which
//!   watches its files and `SIGHUP`: new connections get the new certificate, open ones
//!   carry on with theirs;
//! - [`ClientTls`](crate::config::ClientTls) becomes a [`Connector`] (`connector.rs`);
//! - a client's certificate, under mutual TLS, becomes a [`PeerIdentity`] in each request's
//!   extensions.
//!
//! **The crypto provider** is `ring`: it builds with a C compiler alone, where `aws-lc-rs`
//! needs CMake and takes several times longer on a 2-core machine; both give the same TLS 1.2
//! and 1.3 suites here. A TLS record starts with the byte `0x16`; an mprpc frame starts with
//! `mp`, so a provider tells the two apart by the first byte of a connection.

mod acceptor;
mod connector;
mod files;
mod identity;
mod read_ahead;

use std::path::Path;
use std::sync::Arc;

pub use acceptor::Acceptor;
pub use connector::Connector;
pub use identity::PeerIdentity;
pub use read_ahead::ReadAhead;

/// What TLS runs on: the TCP stream under a read-ahead buffer (`read_ahead.rs`).
pub(crate) type Wire = ReadAhead<tokio::net::TcpStream>;

/// `stream` under a read-ahead buffer, for TLS.
pub(crate) fn wire(stream: tokio::net::TcpStream) -> Wire {
    ReadAhead::new(stream)
}

/// The first byte of a TLS connection (a handshake record).
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Why TLS could not be set up. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read, or holds nothing usable.
    #[error("TLS file {path} {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The files do not make a working configuration (a key that does not match its
    /// certificate, for instance).
    #[error("TLS settings rejected: {0}")]
    Config(String),
}

impl TlsError {
    fn file(path: &Path, what: &str, e: impl std::fmt::Display) -> TlsError {
        TlsError::File {
            path: path.display().to_string(),
            message: format!("could not be used: {what} it: {e}"),
        }
    }
}

/// The crypto provider every TLS configuration here uses: `ring`'s, with the same suites as
/// its default, AES-128-GCM first. AES-128 takes 10 rounds to AES-256's 14, and with both
/// sides preferring it (the provider ignores the client's order) mprpc-to-mprpc traffic is
/// sealed about a quarter faster; AES-256 and ChaCha20 stay for peers that want them.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}
