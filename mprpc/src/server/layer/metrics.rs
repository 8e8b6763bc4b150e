//! Metrics: each admitted call is counted per method, with its latency and its code (a call
//! abandoned half-way, its caller gone, counts as `Cancelled`). See [`crate::metrics`].

use super::stack::{Call, Outcome};
use crate::metrics::{CallRecord, Metrics, Side};
use crate::{Code, Status};

/// Starts counting `call`; dropped unfinished, the record counts it `Cancelled`. (Not from
/// `call.arrived`: the gRPC and HTTP front ends set that before the request's body is read,
/// and a slow upload is not the method's latency.)
pub(super) fn start(metrics: &Metrics, call: &Call) -> CallRecord {
    metrics
        .method(Side::Server, call.service.name(), call.method)
        .start()
}

/// Counts the call's outcome.
pub(super) fn finish(record: CallRecord, outcome: &Outcome) {
    record.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
}
