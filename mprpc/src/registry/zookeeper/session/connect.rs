//! Establishing a session: with backoff, authenticated when the registry has an identity.

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client::{Client, Error as ZkError};

use super::Session;
use crate::registry::zookeeper::ZkAccess;

/// The longest wait between two attempts to establish a session. Consumers confirm a sharp
/// drop of a list over longer than this ([`CONFIRM_DELAY`](super::super::follow::CONFIRM_DELAY)):
/// a living provider whose session expired while ZooKeeper was away registers again within it.
pub(in crate::registry::zookeeper) const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Connects, retrying with backoff; publishes why each failed attempt failed (in
/// `Session::unreachable`) and logs it once, not at every attempt.
pub(super) async fn connect_with_retry(
    connect: &str,
    session_timeout: Duration,
    access: &ZkAccess,
    session: &watch::Sender<Session>,
) -> Client {
    let mut backoff = Duration::from_millis(100);
    let limit = session_timeout.max(Duration::from_secs(2));
    let mut failures = 0u32;
    loop {
        let mut connector = Client::connector()
            .with_session_timeout(session_timeout)
            .with_fail_eagerly();
        if let Some(auth) = access.digest_auth() {
            // Sent again by the client after every reconnect.
            connector = connector.with_auth("digest", auth);
        }
        let attempt = connector.connect(connect);
        let reason = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(client)) => {
                if failures > 0 {
                    tracing::info!(
                        "reached ZooKeeper at {connect} after {failures} failed attempts"
                    );
                }
                return client;
            }
            // With `fail_eagerly`, every server of the connect string was tried once.
            Ok(Err(ZkError::NoHosts)) => {
                "no server of the connect string accepted a connection".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no session established within {limit:?}"),
        };
        failures += 1;
        let repeated = session.borrow().unreachable.as_deref() == Some(reason.as_str());
        if repeated {
            tracing::debug!("still cannot reach ZooKeeper at {connect}: {reason}");
        } else {
            tracing::warn!("cannot reach ZooKeeper at {connect}: {reason}; retrying");
            session.send_modify(|s| s.unreachable = Some(reason));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}
