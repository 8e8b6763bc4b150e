//! Panic catching: a panic in a user layer (while it builds its future or while it runs) or
//! in the handler's future answers the call `Internal` and is logged at error level; the
//! provider and its other calls carry on.

use std::panic::AssertUnwindSafe;

use crate::Status;

/// Runs `poll` (one poll of the rest of the stack), turning a panic into `Internal`.
pub(super) fn catch<T>(service: &str, method: &str, poll: impl FnOnce() -> T) -> Result<T, Status> {
    std::panic::catch_unwind(AssertUnwindSafe(poll)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_owned());
        tracing::error!(service, %method, "a layer or the handler panicked: {what}");
        Status::internal(format!("the handler of {service}/{method} panicked"))
    })
}
