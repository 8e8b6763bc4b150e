//! How a consumer connection's requests reach the socket besides its writer task: a call
//! alone on a plain TCP connection writes its own (`crate::protocol::direct`), and a failed
//! write, by anyone, closes the connection.

use std::sync::Arc;

use tokio::net::tcp::OwnedWriteHalf;

use super::ConnShared;
use crate::metrics::{Metrics, Side};
use crate::protocol::direct::{self, Alone};
use crate::protocol::OutFrame;
use crate::sync::lock;
use crate::Status;

impl ConnShared {
    /// Writes `request` to `socket` now if the socket is free (the rest, if it takes only
    /// part, in a task of its own), or gives it back to be queued.
    pub(super) fn write_alone(
        self: &Arc<Self>,
        socket: &Arc<OwnedWriteHalf>,
        request: OutFrame,
    ) -> Option<OutFrame> {
        match direct::write_alone((**socket).as_ref(), &self.busy, request) {
            Ok(Alone::Written) => None,
            Ok(Alone::Queue(request)) => Some(request),
            Ok(Alone::Rest(rest, guard)) => {
                let guard = guard.into_owned(self.busy.clone());
                let (shared, metrics) = (Arc::downgrade(self), self.metrics.clone());
                let failed: direct::Failed = Box::new(move |e| match shared.upgrade() {
                    Some(shared) => shared.write_failed(&e),
                    None => count_timeout(&metrics, &e),
                });
                let stall = (self.write_timeout, failed);
                direct::finish_in_task(&self.runtime, socket.clone(), rest, guard, stall);
                None
            }
            Err(direct::Broken(e, guard)) => {
                self.write_failed(&e);
                drop(guard);
                None
            }
        }
    }

    /// Writing failed: the connection closes, and every waiting call fails with this reason.
    pub(super) fn write_failed(&self, e: &std::io::Error) {
        count_timeout(&self.metrics, e);
        if e.kind() == std::io::ErrorKind::TimedOut {
            tracing::warn!(address = %self.address, "closing the connection: {e}");
        } else {
            tracing::debug!(address = %self.address, "write failed: {e}");
        }
        let status =
            Status::unavailable(format!("could not write to provider {}: {e}", self.address));
        lock(&self.pending).closed.get_or_insert(status);
        // The reader fails every waiting call with this reason.
        self.close.cancel();
    }
}

/// Counts a write that timed out.
pub(super) fn count_timeout(metrics: &Metrics, e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::TimedOut {
        metrics.write_timed_out(Side::Client);
    }
}
