//! Continuous load for fault tests: tasks calling the echo service's idempotent `Read` and its
//! non-idempotent `Echo` in a loop until stopped, each call recorded (when it started and
//! ended, who answered or how it failed) so that a test can tell which calls a fault hit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mprpc::Code;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{EchoClient, EchoRequest};

/// How long a task waits after a failed call before its next call.
pub const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(5);

/// The two methods of the echo service, by what a consumer may do with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `Read`: declared `NO_SIDE_EFFECTS`, so retried and hedged.
    Read,
    /// `Echo`: not idempotent, so never run twice.
    Echo,
}

/// One finished call.
#[derive(Clone, Debug)]
pub struct Record {
    /// Which method.
    pub method: Method,
    /// When the caller made it.
    pub started: Instant,
    /// When it returned.
    pub ended: Instant,
    /// The provider that answered, or the failure's code and message.
    pub outcome: Result<String, (Code, String)>,
}

impl Record {
    /// Whether it was running at `t`.
    pub fn in_flight_at(&self, t: Instant) -> bool {
        self.started <= t && t <= self.ended
    }

    /// How long it took.
    pub fn latency(&self) -> Duration {
        self.ended - self.started
    }
}

/// Tasks calling in a loop; every call is recorded.
#[derive(Debug)]
pub struct Load {
    stop: CancellationToken,
    records: Arc<Mutex<Vec<Record>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `readers` tasks calling `Read` and `writers` calling `Echo`, each call asking the
    /// handler to work for `work_ms` (so that a fault finds calls in flight), back to back
    /// (after a failure, [`PAUSE_AFTER_FAILURE`] apart).
    pub fn start(client: &EchoClient, readers: usize, writers: usize, work_ms: u32) -> Load {
        let stop = CancellationToken::new();
        let records = Arc::new(Mutex::new(Vec::new()));
        let methods = std::iter::repeat_n(Method::Read, readers)
            .chain(std::iter::repeat_n(Method::Echo, writers));
        let workers = methods
            .map(|method| {
                let (client, stop, records) = (client.clone(), stop.clone(), records.clone());
                tokio::spawn(async move {
                    // Ends when the test stops it; every call is bounded by its timeout.
                    while !stop.is_cancelled() {
                        let request = EchoRequest {
                            delay_ms: work_ms,
                            ..EchoRequest::default()
                        };
                        let started = Instant::now();
                        let reply = match method {
                            Method::Read => client.read(request).await,
                            Method::Echo => client.echo(request).await,
                        };
                        let record = Record {
                            method,
                            started,
                            ended: Instant::now(),
                            outcome: reply
                                .map(|r| r.served_by)
                                .map_err(|s| (s.code(), s.message().to_owned())),
                        };
                        let failed = record.outcome.is_err();
                        lock(&records).push(record);
                        if failed {
                            // A failure can come back at once: a caller spinning on it would
                            // starve the other tasks.
                            tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            records,
            workers,
        }
    }

    /// Calls finished so far.
    pub fn finished(&self) -> usize {
        lock(&self.records).len()
    }

    /// Successful calls answered by the provider `name` that started at `since` or later.
    pub fn served_by(&self, name: &str, since: Instant) -> usize {
        lock(&self.records)
            .iter()
            .filter(|r| r.started >= since && r.outcome.as_deref() == Ok(name))
            .count()
    }

    /// Calls that failed so far.
    pub fn failures(&self) -> usize {
        lock(&self.records)
            .iter()
            .filter(|r| r.outcome.is_err())
            .count()
    }

    /// Stops the tasks once their calls in flight have returned, and returns every record.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.cancel();
        for worker in self.workers {
            worker.await.expect("a load task");
        }
        std::mem::take(&mut *lock(&self.records))
    }
}

/// What the calls of one method came to.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Calls finished.
    pub calls: usize,
    /// Failed calls by code.
    pub failed: BTreeMap<Code, usize>,
}

impl Tally {
    /// The calls of `method` among `records`.
    pub fn of(records: &[Record], method: Method) -> Tally {
        let mut tally = Tally::default();
        for r in records.iter().filter(|r| r.method == method) {
            tally.calls += 1;
            if let Err((code, _)) = &r.outcome {
                *tally.failed.entry(*code).or_default() += 1;
            }
        }
        tally
    }

    /// Failed calls, whatever their code.
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} calls, {} failed", self.calls, self.failures())?;
        if !self.failed.is_empty() {
            let codes: Vec<String> = self
                .failed
                .iter()
                .map(|(c, n)| format!("{c:?} {n}"))
                .collect();
            write!(f, " ({})", codes.join(", "))?;
        }
        Ok(())
    }
}

/// How long after `fault` the calls were disturbed: until the end of the last call that
/// failed or took longer than `slow` (zero if none did).
pub fn disturbed_for(records: &[Record], fault: Instant, slow: Duration) -> Duration {
    records
        .iter()
        .filter(|r| r.ended >= fault && (r.outcome.is_err() || r.latency() > slow))
        .map(|r| r.ended - fault)
        .max()
        .unwrap_or_default()
}

/// The failed calls by method, code and message, with how many of each.
pub fn failures_by_message(records: &[Record]) -> BTreeMap<String, usize> {
    let mut failures = BTreeMap::new();
    for r in records {
        if let Err((code, message)) = &r.outcome {
            let key = format!("{:?} {code:?} {message}", r.method);
            *failures.entry(key).or_default() += 1;
        }
    }
    failures
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
