//! The provider's side: a TLS acceptor whose certificate can change while it serves.
//!
//! [`Acceptor::start`] reads the files and starts a task that reads them again every
//! `reload_interval` if one of them changed (by modification time and size), and at once on
//! `SIGHUP`. A new configuration that fails (a half-written file, an expired certificate) is
//! logged with its reason and the old one stays in use.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::{files, provider, PeerIdentity, TlsError};
use crate::config::ServerTls;

/// A provider's TLS acceptor. Cheap to clone.
#[derive(Clone)]
pub struct Acceptor {
    settings: Arc<ServerTls>,
    /// The application protocols offered by ALPN, in order of preference.
    alpn: Arc<Vec<Vec<u8>>>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("cert", &self.settings.cert)
            .field("mutual", &self.settings.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// What the reload task compares to notice a change: each file's modification time and size.
type Stamp = Vec<Option<(SystemTime, u64)>>;

impl Acceptor {
    /// Reads the files once, without watching them.
    pub fn new(settings: &ServerTls) -> Result<Acceptor, TlsError> {
        Acceptor::offering(settings, Vec::new())
    }

    /// Reads the files once; the handshake offers `alpn` (ALPN protocol names, in order of
    /// preference) to clients that offer ALPN.
    pub(crate) fn offering(settings: &ServerTls, alpn: Vec<Vec<u8>>) -> Result<Acceptor, TlsError> {
        Ok(Acceptor {
            current: Arc::new(RwLock::new(Arc::new(build(settings, &alpn)?))),
            settings: Arc::new(settings.clone()),
            alpn: Arc::new(alpn),
        })
    }

    /// Reads the files, and watches them until `stop` is cancelled.
    pub fn start(settings: &ServerTls, stop: CancellationToken) -> Result<Acceptor, TlsError> {
        Acceptor::start_offering(settings, Vec::new(), stop)
    }

    /// [`Acceptor::start`], offering `alpn` in the handshake.
    pub(crate) fn start_offering(
        settings: &ServerTls,
        alpn: Vec<Vec<u8>>,
        stop: CancellationToken,
    ) -> Result<Acceptor, TlsError> {
        let acceptor = Acceptor::offering(settings, alpn)?;
        let watcher = acceptor.clone();
        // Listening for SIGHUP starts here, before the provider serves: a SIGHUP from then on
        // reloads, and never ends the process.
        let hangup = hangup_signals();
        tokio::spawn(async move { watcher.watch(hangup, stop).await });
        Ok(acceptor)
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.settings.client_ca.is_some()
    }

    /// The handshake on `stream`, bounded by `handshake_timeout`, and the client's identity
    /// under mutual TLS.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<(TlsStream<super::Wire>, Option<PeerIdentity>)> {
        let config = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(super::wire(stream));
        let stream = tokio::time::timeout(self.settings.handshake_timeout, handshake)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the TLS handshake took longer than {:?}",
                        self.settings.handshake_timeout
                    ),
                )
            })??;
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(PeerIdentity::from_certificate);
        Ok((stream, identity))
    }

    /// Reads the files again now; on failure the old configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.settings, &self.alpn)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    async fn watch(self, mut hangup: Hangup, stop: CancellationToken) {
        let mut last = self.stamp();
        let mut tick = tokio::time::interval(self.settings.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => false,
                _ = next_hangup(&mut hangup) => true,
            };
            let now = self.stamp();
            if !forced && now == last {
                continue;
            }
            last = now;
            if let Err(e) = self.reload() {
                tracing::warn!("keeping the TLS certificate in use: {e}");
            }
        }
    }

    fn stamp(&self) -> Stamp {
        self.paths()
            .iter()
            .map(|p| {
                let meta = std::fs::metadata(p).ok()?;
                Some((meta.modified().ok()?, meta.len()))
            })
            .collect()
    }

    fn paths(&self) -> Vec<PathBuf> {
        let s = &self.settings;
        [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// A rustls server configuration from the files.
fn build(settings: &ServerTls, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let certs = files::certificates(&settings.cert)?;
    let key = files::private_key(&settings.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let roots = files::roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(format!("client CAs in {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::Config(format!(
            "certificate {} with key {}: {e}",
            settings.cert.display(),
            settings.key.display()
        ))
    })?;
    // Our order of suites (AES-128-GCM first, see `provider`), whatever the client's.
    config.ignore_client_order = true;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signals() -> Option<()> {
    None
}

#[cfg(unix)]
async fn next_hangup(signals: &mut Option<tokio::signal::unix::Signal>) {
    match signals {
        Some(signals) => {
            signals.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending().await
}
