//! Metrics on the consumer: each call is counted per method, with its latency and its code
//! (a call dropped by its caller counts as `Cancelled`). See [`crate::metrics`].

use super::stack::Outcome;
use crate::metrics::{CallRecord, Metrics, Side};
use crate::{Code, Status};

/// Starts counting a call that started at `now`; dropped unfinished, the record counts it
/// `Cancelled`.
pub(super) fn start(
    metrics: &Metrics,
    service: &str,
    method: &str,
    now: std::time::Instant,
) -> CallRecord {
    metrics.method(Side::Client, service, method).start_at(now)
}

/// Counts the call's outcome.
pub(super) fn finish(record: CallRecord, outcome: &Outcome) {
    record.finish(outcome.as_ref().map_or_else(Status::code, |_| Code::Ok));
}
