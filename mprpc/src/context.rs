//! The incoming call a piece of work belongs to: its trace and its deadline, as a handler
//! sees them while it runs, so that the calls it makes continue the trace and get no more
//! time than the incoming call has left.
//!
//! The provider makes the call's [`CallContext`] current around each poll of the handler
//! (the same path the trace takes). A call made under it:
//!
//! - continues the trace ([`crate::trace`]);
//! - has the smaller of its own budget (the request's timeout, or the channel's `timeout`)
//!   and what is left of the incoming call's; the provider it goes to is sent that budget;
//! - is cancelled when the incoming call is: a `Cancel` from its caller, a caller that went
//!   away, and the incoming deadline all drop the handler's future, and with it every call
//!   the handler is awaiting, each of which tells its provider to stop (`Cancel`).
//!
//! Work moved to another task (`tokio::spawn`) leaves the context behind: carry it with
//! [`CallContext::scope`], which gives the spawned calls the trace and the deadline (they
//! end by the incoming deadline at the latest, even if nothing cancels them sooner).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::trace::TraceContext;

tokio::task_local! {
    static CURRENT: CallContext;
}

/// Where a piece of work sits: the trace it continues and the time it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The trace, and this piece of work's span in it.
    pub trace: TraceContext,
    /// When the incoming call's caller stops waiting, if it said.
    pub deadline: Option<Instant>,
}

impl CallContext {
    /// Runs `f` with this context current (one poll of a future, say).
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// Runs `work` with this context current: the calls it makes continue the trace and
    /// end by the deadline. For work moved to another task:
    /// `tokio::spawn(mprpc::context::current().unwrap().scope(work))`.
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, work)
    }

    /// The time left before the deadline (zero once it has passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// The context of the handler (or [`CallContext::scope`]) running on this task, if any.
pub fn current() -> Option<CallContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// The budget of a call made now: `own`, or what is left of the current incoming call's if
/// that is less. The flag says the incoming call's deadline set it.
pub(crate) fn budget(own: Duration) -> (Duration, bool) {
    match current().and_then(|c| c.remaining()) {
        Some(left) if left < own => (left, true),
        _ => (own, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_gets_the_smaller_budget() {
        assert_eq!(
            budget(Duration::from_secs(3)),
            (Duration::from_secs(3), false)
        );
        let context = CallContext {
            trace: TraceContext::new_root(),
            deadline: Some(Instant::now() + Duration::from_millis(500)),
        };
        let (inner, inherited) = context
            .scope(async { budget(Duration::from_secs(3)) })
            .await;
        assert!(
            inherited && inner <= Duration::from_millis(500),
            "{inner:?}"
        );
        let (own, inherited) = context
            .scope(async { budget(Duration::from_millis(100)) })
            .await;
        assert_eq!((own, inherited), (Duration::from_millis(100), false));
        let past = CallContext {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
            ..context
        };
        assert_eq!(past.remaining(), Some(Duration::ZERO));
    }
}
