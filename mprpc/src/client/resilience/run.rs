//! Running a call that may run more than once: retries after failures, hedges after
//! silence, each to the next provider in the balancer's order.
//!
//! - An attempt that fails `Unavailable` or `ResourceExhausted` (the provider is going away,
//!   its connection broke, or it is overloaded) is retried on the next provider after a
//!   backoff, while attempts are left, the budget allows, and the wait fits before the
//!   deadline. Any other failure is the call's answer.
//! - With hedging on, an attempt unanswered after the hedge delay is joined by another on
//!   the next provider (budget allowing); the first reply wins, and the others are dropped,
//!   which sends their providers a `Cancel`.
//! - An attempt that never reached its provider goes straight to the next one, as for any
//!   call: no budget, no backoff, once per provider at most.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::{backoff, hedge_delay, retryable, Plan};
use crate::client::connection::CallError;
use crate::client::endpoint::Endpoint;
use crate::client::Channel;
use crate::metrics::Side;
use crate::{Metadata, Response, Status};

/// One call's attempts so far.
struct Tally {
    /// Attempts started, to the next provider in the order each time.
    cursor: usize,
    started: u32,
    retries: u32,
    not_sent: usize,
    last_error: Option<Status>,
}

impl Channel {
    /// Runs a call of an idempotent method by `plan` over the providers in `order`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_plan(
        &self,
        service: &str,
        method: &str,
        plan: Plan,
        order: Vec<Arc<Endpoint>>,
        metadata: Metadata,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Response<Bytes>, Status> {
        let resilience = &self.inner.resilience;
        resilience.budget.deposit();
        let stats = self.inner.metrics.method(Side::Client, service, method);
        let mut hedge = plan
            .hedge
            .and_then(|d| hedge_delay(d, &self.inner.metrics, service, method))
            .map(|d| d.max(MIN_HEDGE_DELAY));
        let start = |n: usize| {
            let endpoint = order[n % order.len()].clone();
            self.attempt(
                endpoint,
                service,
                method,
                metadata.clone(),
                body.clone(),
                deadline,
            )
        };
        let mut running = FuturesUnordered::new();
        let mut tally = Tally {
            cursor: 0,
            started: 0,
            retries: 0,
            not_sent: 0,
            last_error: None,
        };
        loop {
            if running.is_empty() {
                if tally.started >= plan.attempts || tally.not_sent >= order.len() {
                    break;
                }
                if tally.last_error.is_some() && tally.not_sent == 0 {
                    // A retry: a backoff that ends before the deadline, and the budget.
                    let wait = backoff(&resilience.retry, tally.retries + 1);
                    if Instant::now() + wait >= deadline {
                        break;
                    }
                    if !resilience.budget.withdraw() {
                        stats.budget_exhausted();
                        break;
                    }
                    stats.retried();
                    tally.retries += 1;
                    tokio::time::sleep(wait).await;
                }
                running.push(start(tally.cursor));
                tally.cursor += 1;
                tally.started += 1;
            }
            let hedge_now = hedge.filter(|_| tally.started < plan.attempts);
            let timer = async {
                match hedge_now {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(result) = running.next() => match result {
                    Ok(reply) => return Ok(reply),
                    Err(CallError::NotSent(status)) => {
                        tally.started -= 1;
                        tally.not_sent += 1;
                        tally.last_error = Some(status);
                        if running.is_empty() {
                            continue;
                        }
                    }
                    Err(CallError::Failed(status)) if retryable(&status) => {
                        tally.not_sent = 0;
                        tally.last_error = Some(status);
                    }
                    Err(CallError::Failed(status)) => return Err(status),
                },
                () = timer => {
                    if resilience.budget.withdraw() {
                        stats.hedged();
                        running.push(start(tally.cursor));
                        tally.cursor += 1;
                        tally.started += 1;
                    } else {
                        stats.budget_exhausted();
                        hedge = None;
                    }
                }
            }
        }
        Err(tally.last_error.unwrap_or_else(|| {
            Status::unavailable(format!("no provider of `{service}` could be reached"))
        }))
    }
}

/// How long a hedge waits at least: a hedge delay of zero would double every call.
pub(crate) const MIN_HEDGE_DELAY: Duration = Duration::from_micros(100);
