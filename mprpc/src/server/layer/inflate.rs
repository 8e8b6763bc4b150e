//! Decompression of a request's body (`crate::compression`), once the call is admitted and
//! authorized, so that a caller over a limit, or without the right token, costs no
//! decompression; in the call's own task, never on a connection's reader, which goes on
//! reading the other calls meanwhile.

use super::stack::Call;
use crate::compression::decompress;
use crate::metrics::Metrics;
use crate::Status;

/// Whether the call's body has to be decompressed (the stack then moves the call to a task
/// of its own first).
pub(super) fn needed(call: &Call) -> bool {
    call.encoding.is_some()
}

/// The call's body decompressed in place, at most `limit` bytes (`max_frame_size`); a body
/// that does not is refused and counted as rejected.
pub(super) fn inflate(call: &mut Call, limit: usize, metrics: &Metrics) -> Result<(), Status> {
    let Some(encoding) = call.encoding.take() else {
        return Ok(());
    };
    let body = call.request.get_mut();
    match decompress(encoding, body.make_contiguous(), limit) {
        Ok(inflated) => {
            *body = inflated.into();
            Ok(())
        }
        Err(e) => {
            let status = e.into_status("the request");
            metrics.rejected(status.code());
            Err(status)
        }
    }
}
