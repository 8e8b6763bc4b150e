//! Warnings about misbehaving peers, rate-limited per kind.
//!
//! A flood of garbage connections must not become a flood of log lines: the first complaint of
//! a kind is logged at once, later ones within [`WINDOW`] are only counted, and the next
//! complaint after the window logs how many were left out. Every complaint is also counted in
//! `/metrics` (`mprpc_protocol_errors_total`), so nothing is lost to the limit.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// At most one line per kind of complaint in this long.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// The complaints of one provider.
#[derive(Default)]
pub(crate) struct Complaints {
    kinds: Mutex<HashMap<&'static str, Window>>,
}

struct Window {
    /// When the last line of this kind was written.
    logged: Instant,
    /// Complaints since then that were not logged.
    left_out: u64,
}

impl Complaints {
    /// Logs (within the limit) that the connection from `peer` is being closed for `what`.
    pub(crate) fn warn(&self, kind: &'static str, peer: SocketAddr, what: &dyn Display) {
        if let Some(left_out) = self.admit(kind, Instant::now()) {
            if left_out > 0 {
                tracing::warn!(
                    kind,
                    "{left_out} more connections closed for {kind} in the last {WINDOW:?} (not logged)"
                );
            }
            tracing::warn!(%peer, kind, "closing connection: {what}");
        }
    }

    /// `Some(complaints left out since the last line)` if a line may be written now.
    fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = lock(&self.kinds);
        match kinds.get_mut(kind) {
            Some(window) if now.duration_since(window.logged) < WINDOW => {
                window.left_out += 1;
                None
            }
            Some(window) => {
                window.logged = now;
                Some(std::mem::take(&mut window.left_out))
            }
            None => {
                kinds.insert(
                    kind,
                    Window {
                        logged: now,
                        left_out: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_window_then_the_count() {
        let c = Complaints::default();
        let t0 = Instant::now();
        assert_eq!(c.admit("bad_magic", t0), Some(0));
        for i in 1..1000 {
            assert_eq!(c.admit("bad_magic", t0 + Duration::from_millis(i)), None);
        }
        // Another kind has its own window.
        assert_eq!(c.admit("frame_too_large", t0), Some(0));
        assert_eq!(c.admit("bad_magic", t0 + WINDOW), Some(999));
        assert_eq!(c.admit("bad_magic", t0 + WINDOW + WINDOW / 2), None);
    }
}
