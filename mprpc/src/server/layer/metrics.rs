//! Metrics: each admitted call is counted per method, with its latency and its code (a call
//! abandoned half-way, its caller gone, counts as `Cancelled`). See [`crate::metrics`].

use super::stack::{Call, Outcome};
use crate::metrics::{CallRecord, Metrics, Side};
use crate::{Code, Status};

/// Starts counting `call`, its latency from when its request was read; dropped unfinished,
/// the record counts it `Cancelled`.
pub(super) fn start(metrics: &Metrics, call: &Call) -> CallRecord {
    metrics
        .method(Side::Server, call.service.name(), call.method)
        .start_at(call.arrived)
}

/// Counts the call's outcome.
pub(super) fn finish(record: CallRecord, outcome: &Outcome) {
    record.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
}
