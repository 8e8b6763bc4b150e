//! The read loop's rare events, looked at by their flags.
//!
//! The loop's `select!` waits on the socket first, so that a read that wakes it polls nothing
//! else: at one call in flight, polling the force-close and writer-failure tokens and the
//! shutdown watch again on every wake cost about 500 instructions per call. Their futures
//! still wake the loop while it waits; their flags are read at the top of each turn, and again
//! before a batch of frames is acted on, so that no batch starts once the connection has been
//! told to stop, and a batch read as shutdown begins is refused (marked not run).

use tokio_util::sync::CancellationToken;

use super::{go_away, Connection, Ending, Turn};
use crate::Code;

impl Connection {
    /// Acts on what happened since the loop last looked: `Some` ends the loop. Shutdown
    /// starts draining: calls read from then on are refused, and the loop ends once the
    /// running ones have answered.
    pub(super) async fn on_flags(
        &mut self,
        turn: &mut Turn<'_>,
        writer_failed: &CancellationToken,
    ) -> Option<Ending> {
        if self.force_close.is_cancelled() || writer_failed.is_cancelled() {
            return Some(Ending::Abort);
        }
        if !turn.draining && self.shutdown.has_changed().unwrap_or(true) {
            self.shutdown.mark_unchanged();
            self.start_draining(turn).await;
        }
        (turn.draining && turn.calls.is_empty()).then_some(Ending::Drained)
    }

    /// Shutdown has begun: no new calls, and the client is told so.
    pub(super) async fn start_draining(&self, turn: &mut Turn<'_>) {
        turn.draining = true;
        turn.calls.close();
        let _ = turn
            .tx
            .send(go_away(Code::Unavailable, "provider is shutting down"))
            .await;
    }
}
