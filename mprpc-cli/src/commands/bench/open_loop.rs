//! `mprpc bench --rate R`: the open loop. Calls go out on a fixed schedule, R a second,
//! whether or not the earlier ones were answered, each on a task of its own, so a provider
//! that slows down or refuses calls meets the same offered load (a closed loop would slow
//! down with it and hide the overload). At most `--max-outstanding` calls are unanswered at
//! once: a call due beyond that is not sent, and counted as `not sent`, so that a provider
//! that never answers cannot make the tool grow without bound.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mprpc::Code;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::summary::Tally;
use super::{Call, Live, Plan};

/// One call's outcome, as its task reports it.
struct Answered {
    /// Whether it was due after the warm-up.
    counted: bool,
    /// From its send to its answer.
    latency: Duration,
    answered: Instant,
    error: Option<Code>,
}

/// Runs the schedule of `plan` (`rate` calls a second), then waits for the calls still
/// outstanding (each ends by its timeout at the latest).
pub(super) async fn run(
    plan: Plan,
    rate: f64,
    max_outstanding: usize,
    call: Arc<Call>,
    live: Arc<Live>,
    mut tally: Tally,
) -> Tally {
    let mut outstanding = JoinSet::new();
    for slot in 0u64.. {
        let due = plan.start + Duration::from_secs_f64(slot as f64 / rate);
        if due >= plan.end {
            break;
        }
        // Take in the answers that come before the call is due.
        if Instant::now() < due {
            let sleep = tokio::time::sleep_until(due);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    Some(done) = outstanding.join_next() => count(&mut tally, &live, done),
                    () = &mut sleep => break,
                }
            }
        }
        while let Some(done) = outstanding.try_join_next() {
            count(&mut tally, &live, done);
        }
        let counted = due >= plan.measure_from;
        if outstanding.len() >= max_outstanding {
            tally.not_sent += u64::from(counted);
            continue;
        }
        outstanding.spawn(one_call(call.clone(), counted));
    }
    while let Some(done) = outstanding.join_next().await {
        count(&mut tally, &live, done);
    }
    tally
}

/// Makes one call, timing it from its send.
async fn one_call(call: Arc<Call>, counted: bool) -> Answered {
    let sent = Instant::now();
    let outcome = call
        .channel
        .unary_raw(&call.service, &call.method, call.request.clone())
        .await;
    let answered = Instant::now();
    Answered {
        counted,
        latency: answered.duration_since(sent),
        answered,
        error: outcome.err().map(|status| status.code()),
    }
}

/// Counts an answer, if it was due after the warm-up (a call's task does not panic; if one
/// did, its call is not counted).
fn count(tally: &mut Tally, live: &Live, done: Result<Answered, JoinError>) {
    let Ok(done) = done else { return };
    if !done.counted {
        return;
    }
    tally.record(done.latency, done.answered, done.error);
    live.calls.fetch_add(1, Ordering::Relaxed);
    if done.error.is_some() {
        live.errors.fetch_add(1, Ordering::Relaxed);
    }
}
