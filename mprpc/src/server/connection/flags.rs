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

/// What the flags say.
pub(super) enum Flags {
    /// Nothing happened: go on.
    Go,
    /// Shutdown began: start draining ([`Connection::start_draining`]), then go on.
    Drain,
    /// The loop ends.
    Stop(Ending),
}

impl Connection {
    /// Looks at what happened since the loop last looked (a plain function: it runs twice
    /// per turn, and an `async fn` would cost a future each time).
    pub(super) fn flags(&self, turn: &Turn<'_>, writer_failed: &CancellationToken) -> Flags {
        if self.force_close.is_cancelled() || writer_failed.is_cancelled() {
            return Flags::Stop(Ending::Abort);
        }
        if turn.draining {
            if turn.calls.is_empty() {
                return Flags::Stop(Ending::Drained);
            }
        } else if self.shutdown.has_changed().unwrap_or(true) {
            return Flags::Drain;
        }
        Flags::Go
    }

    /// Shutdown has begun: no new calls (those read from now on are refused, marked not run),
    /// the client is told so, and the loop ends once the running calls have answered.
    pub(super) async fn start_draining(&mut self, turn: &mut Turn<'_>) {
        self.shutdown.mark_unchanged();
        turn.draining = true;
        turn.calls.close();
        let _ = turn
            .tx
            .send(go_away(Code::Unavailable, "provider is shutting down"))
            .await;
    }
}
