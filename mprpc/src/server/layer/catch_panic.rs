//! Panic catching: a panic in a user layer or the handler, while it builds its future or
//! while it runs, answers the call `Internal` and is logged at error level; the provider and
//! its other calls carry on.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::stack::{Call, Outcome};
use crate::Status;

/// Runs the rest of the stack, turning a panic into `Internal`.
pub(super) async fn run<F, Fut>(call: Call, next: F) -> Outcome
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (service, method) = (call.service.name(), call.method);
    // `next` is called inside the future, so that a panic while building it is caught too.
    let rest = AssertUnwindSafe(async move { next(call).await });
    rest.catch_unwind().await.unwrap_or_else(|panic| {
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
}
