//! Panic catching: a panic in a user layer or the handler, while it builds its future or
//! while it runs, answers the call `Internal` and is logged at error level; the provider and
//! its other calls carry on.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::stack::Outcome;
use crate::Status;

/// `rest`, with a panic while it runs turned into `Internal`.
pub(super) fn guard<F>(
    service: &'static str,
    method: &'static str,
    rest: F,
) -> impl Future<Output = Outcome>
where
    F: Future<Output = Outcome>,
{
    AssertUnwindSafe(rest).catch_unwind().map(move |outcome| {
        outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".to_owned());
            tracing::error!(service, %method, "a layer or the handler panicked: {what}");
            Err(Status::internal(format!(
                "the handler of {service}/{method} panicked"
            )))
        })
    })
}
