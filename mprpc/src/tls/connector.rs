//! The consumer's side: a TLS connector made once per channel, from `[client.tls]`.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{files, provider, TlsError};
use crate::config::ClientTls;

/// A consumer's TLS connector. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    settings: Arc<ClientTls>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("ca", &self.settings.ca)
            .field("mutual", &self.settings.cert.is_some())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Reads the files.
    pub fn new(settings: &ClientTls) -> Result<Connector, TlsError> {
        let roots = files::roots(&settings.ca)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(files::certificates(cert)?, files::private_key(key)?)
                .map_err(|e| {
                    TlsError::Config(format!(
                        "certificate {} with key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?,
            _ => builder.with_no_client_auth(),
        };
        Ok(Connector {
            config: Arc::new(config),
            settings: Arc::new(settings.clone()),
        })
    }

    /// The handshake on `stream` to the provider at `address` (`host:port`), bounded by
    /// `handshake_timeout`. The provider's certificate must name `server_name`, or the host.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        address: &str,
    ) -> std::io::Result<TlsStream<super::Wire>> {
        let host = match &self.settings.server_name {
            Some(name) => name.clone(),
            None => host_of(address).to_owned(),
        };
        let name = ServerName::try_from(host.clone()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{host}` is not a valid TLS server name: {e}"),
            )
        })?;
        let handshake = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, super::wire(stream));
        tokio::time::timeout(self.settings.handshake_timeout, handshake)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the TLS handshake took longer than {:?}",
                        self.settings.handshake_timeout
                    ),
                )
            })?
    }
}

/// The host of `host:port` (`[v6]:port` included).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:8000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8000"), "::1");
        assert_eq!(host_of("provider.example:9"), "provider.example");
    }
}
