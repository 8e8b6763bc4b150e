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

use std::time::Duration;

pub use crate::trace::CallContext;

/// The context of the handler (or [`CallContext::scope`]) running on this task, if any.
pub fn current() -> Option<CallContext> {
    crate::trace::current_context()
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
    use crate::trace::TraceContext;
    use std::time::Instant;

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
