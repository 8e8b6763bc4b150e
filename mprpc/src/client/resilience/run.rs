//! Running a call that may run more than once: retries after failures, hedges after
//! silence, each to the next provider in the balancer's order.
//!
//! - An attempt that fails `Unavailable` or `ResourceExhausted` (the provider is going away,
//!   its connection broke, or it is overloaded) is retried on the next provider after a
//!   backoff, while attempts are left, the budget allows, and the wait fits before the
//!   deadline. Any other failure is the call's answer, once no other attempt is running.
//! - With hedging on, an attempt unanswered after the hedge delay is joined by another on
//!   the next provider (budget allowing); the first reply wins, and the others are dropped,
//!   which sends their providers a `Cancel`.
//! - An attempt that never reached its provider goes straight to the next one, as for any
//!   call: no budget, no backoff, once per provider at most.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::outlier::Verdict;
use super::{backoff, hedge_delay, retryable, Plan};
use crate::client::connection::CallError;
use crate::client::endpoint::Endpoint;
use crate::client::Channel;
use crate::config::RetryConfig;
use crate::metrics::Side;
use crate::{Body, Metadata, Response, Status};

/// One call's attempts so far.
#[derive(Default)]
struct Tally {
    /// Attempts started (refused ones included), to the next provider in the order each time.
    cursor: usize,
    /// Attempts that reached a provider or may have.
    started: u32,
    retries: u32,
    /// Attempts refused in a row without reaching a provider.
    not_sent: usize,
    last_error: Option<Status>,
    /// A failure no retry can mend, kept while other attempts may still succeed.
    fatal: Option<Status>,
    /// Whether each attempt, by number, has answered.
    answered: Vec<bool>,
}

/// What to do when no attempt is running.
enum Next {
    /// Start one now.
    Now,
    /// Start one after this backoff (a retry).
    After(Duration),
    /// Give up with the last error.
    Stop,
}

impl Tally {
    /// Counts the start of the next attempt, and returns its number.
    fn start(&mut self) -> usize {
        self.answered.push(false);
        self.cursor += 1;
        self.started += 1;
        self.cursor - 1
    }

    /// Takes in attempt `n`'s failure.
    fn failed(&mut self, n: usize, error: CallError) {
        self.answered[n] = true;
        match error {
            CallError::NotSent(status) => {
                self.started -= 1;
                self.not_sent += 1;
                self.last_error = Some(status);
            }
            CallError::Failed(status) if retryable(&status) => {
                self.not_sent = 0;
                self.last_error = Some(status);
            }
            CallError::Failed(status) => self.fatal = Some(status),
        }
    }

    /// With nothing running: another attempt, when, or none.
    fn next(&self, plan: &Plan, providers: usize, retry: &RetryConfig, deadline: Instant) -> Next {
        if self.started >= plan.attempts || self.not_sent >= providers {
            return Next::Stop;
        }
        if self.last_error.is_none() || self.not_sent > 0 {
            // The first attempt, or the next provider after one that was never reached.
            return Next::Now;
        }
        let wait = backoff(retry, self.retries + 1);
        if Instant::now() + wait >= deadline {
            return Next::Stop;
        }
        Next::After(wait)
    }
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
        body: Body,
        deadline: Instant,
    ) -> Result<Response<Body>, Status> {
        let resilience = &self.inner.resilience;
        resilience.budget.deposit();
        // Looked up only when there is something to count.
        let stats = || self.inner.metrics.method(Side::Client, service, method);
        let mut hedge = plan
            .hedge
            .and_then(|d| hedge_delay(d, &self.inner.metrics, service, method))
            .map(|d| d.max(MIN_HEDGE_DELAY));
        // Attempt `n` goes to the n-th provider of the order, and says which it was.
        let start = |n: usize| {
            let (endpoint, metadata) = (order[n % order.len()].clone(), metadata.clone());
            let attempt = self.attempt(endpoint, service, method, metadata, body.clone(), deadline);
            async move { (n, attempt.await) }
        };
        let mut running = FuturesUnordered::new();
        let mut tally = Tally::default();
        loop {
            if running.is_empty() {
                if let Some(status) = tally.fatal {
                    return Err(status);
                }
                match tally.next(&plan, order.len(), &resilience.retry, deadline) {
                    Next::Stop => break,
                    Next::Now => {}
                    Next::After(_) if !resilience.budget.withdraw() => {
                        stats().budget_exhausted();
                        break;
                    }
                    Next::After(wait) => {
                        stats().retried();
                        tally.retries += 1;
                        tokio::time::sleep(wait).await;
                    }
                }
                running.push(start(tally.start()));
            }
            let hedge_now =
                hedge.filter(|_| tally.started < plan.attempts && tally.fatal.is_none());
            let timer = sleep_or_never(hedge_now);
            // A reply that is ready wins over a hedge timer that fires at the same time.
            let answer = tokio::select! {
                biased;
                Some(answer) = running.next() => Some(answer),
                () = timer => None,
            };
            match answer {
                Some((n, Ok(reply))) => {
                    tally.answered[n] = true;
                    self.overtaken(&order, n, &tally.answered);
                    return Ok(reply);
                }
                Some((n, Err(error))) => tally.failed(n, error),
                None if resilience.budget.withdraw() => {
                    stats().hedged();
                    running.push(start(tally.start()));
                }
                None => {
                    stats().budget_exhausted();
                    hedge = None;
                }
            }
        }
        Err(tally.last_error.unwrap_or_else(|| {
            Status::unavailable(format!("no provider of `{service}` could be reached"))
        }))
    }

    /// Counts the attempts still running that started before attempt `winner` (a later
    /// attempt overtook them: they were outstanding past the hedge delay) as failures of
    /// their providers, so that a provider that stalls is ejected even though hedging hides
    /// it.
    fn overtaken(&self, order: &[Arc<Endpoint>], winner: usize, answered: &[bool]) {
        let resilience = &self.inner.resilience;
        if !resilience.ejects() {
            return;
        }
        for n in (0..winner).filter(|&n| !answered[n]) {
            let health = order[n % order.len()].health();
            health.record(Verdict::Failure, &resilience.outlier, &resilience.outliers);
        }
    }
}

/// Sleeps for `delay`, or forever without one.
async fn sleep_or_never(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

/// How long a hedge waits at least: a hedge delay of zero would double every call.
pub(crate) const MIN_HEDGE_DELAY: Duration = Duration::from_micros(100);
