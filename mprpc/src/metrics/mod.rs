//! Call metrics: per service and method, on the provider side and the consumer side.
//!
//! Counters are plain atomics, updated on the call path without locks once a method's entry
//! exists. [`Metrics::snapshot`] copies everything out for the admin endpoint (`/metrics`,
//! `/status`) and tools. A process normally uses [`Metrics::global`]; tests give a provider or
//! a channel a [`Metrics::new`] of their own so that counts are exactly theirs.
//!
//! Only services and methods that exist are recorded: calls to unknown ones are counted by
//! code in one `rejected` counter, so that garbage names cannot grow the table.
//!
//! This module imports nothing above [`crate::status`]: the registry and the client push what
//! they know into it as its own plain types ([`KnownProvider`]), and the admin endpoint adds
//! what other modules count (dropped log lines) when it renders a snapshot.

mod adaptive;
mod histogram;
mod lookup;
mod queues;
mod resilience;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub use adaptive::LimitGauge;
pub use histogram::{Histogram, HistogramSnapshot, BUCKETS_US};
pub use queues::{QueueRegistration, QueuedBytes};
pub use resilience::{ProviderHealth, ResilienceCounts};

use crate::hash::NameMap;
use crate::Code;

/// Which end of a call a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// Calls this process served (provider).
    Server = 0,
    /// Calls this process made (consumer).
    Client = 1,
}

type MethodTable = NameMap<String, NameMap<String, Arc<MethodMetrics>>>;

impl Side {
    /// `"server"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

const CODES: usize = 17;

/// The live counters of one method on one side.
#[derive(Debug, Default)]
pub struct MethodMetrics {
    calls: AtomicU64,
    in_flight: AtomicI64,
    by_code: [AtomicU64; CODES],
    latency: Histogram,
    resilience: resilience::MethodResilience,
    /// Stream messages received and sent by this side's calls of the method.
    stream_messages: [AtomicU64; 2],
}

impl MethodMetrics {
    /// Records a call starting; the returned guard records its end when [`CallRecord::finish`]
    /// is called, or as `Cancelled` if it is dropped first.
    pub fn start(self: &Arc<Self>) -> CallRecord {
        self.start_at(Instant::now())
    }

    /// [`start`](MethodMetrics::start) for a call that started at `started` (a time the
    /// caller has already read off the clock).
    pub fn start_at(self: &Arc<Self>, started: Instant) -> CallRecord {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CallRecord {
            method: Some(self.clone()),
            started,
        }
    }

    /// Counts `n` stream messages this side received (read by the application).
    pub fn stream_messages_received(&self, n: u64) {
        self.stream_messages[0].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` stream messages this side sent.
    pub fn stream_messages_sent(&self, n: u64) {
        self.stream_messages[1].fetch_add(n, Ordering::Relaxed);
    }

    fn finish(&self, code: Code, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let i = (code.as_i32() as usize).min(CODES - 1);
        self.by_code[i].fetch_add(1, Ordering::Relaxed);
        self.latency.record(elapsed);
    }
}

/// One call in progress.
#[derive(Debug)]
pub struct CallRecord {
    method: Option<Arc<MethodMetrics>>,
    started: Instant,
}

impl CallRecord {
    /// Records the call's outcome and latency.
    pub fn finish(mut self, code: Code) {
        if let Some(m) = self.method.take() {
            m.finish(code, self.started.elapsed());
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if let Some(m) = self.method.take() {
            m.finish(Code::Cancelled, self.started.elapsed());
        }
    }
}

/// A set of counters: usually the process-wide [`Metrics::global`].
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per side (server, client): service -> method -> counters. Nested so that a lookup
    /// by `&str` allocates nothing.
    methods: [RwLock<MethodTable>; 2],
    /// Calls refused before reaching a method (unknown service or method), by code.
    rejected: [AtomicU64; CODES],
    server_connections: AtomicI64,
    client_connections: AtomicI64,
    /// Times a provider stopped reading a connection whose client had not read its replies.
    read_pauses: AtomicU64,
    /// Connections closed because the peer accepted no bytes for the write timeout, by side.
    write_timeouts: [AtomicU64; 2],
    /// Connections a provider closed for a protocol error, by kind of error.
    protocol_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Registry nodes a consumer refused to use, by reason.
    registry_refused_nodes: Mutex<BTreeMap<&'static str, u64>>,
    /// The write queues of the provider's connections.
    server_queues: Arc<queues::Queues>,
    /// The providers' adaptive concurrency limits and the calls they shed.
    adaptive: Arc<adaptive::AdaptiveLimits>,
    /// The providers each consumer channel currently knows, by service.
    providers: RwLock<BTreeMap<String, Vec<KnownProvider>>>,
    /// Providers the consumers' outlier detection ejected at some point, by address.
    provider_health: Mutex<BTreeMap<String, ProviderHealth>>,
    started: OnceLock<Instant>,
}

impl Metrics {
    /// An empty, independent set of counters.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        let _ = m.inner.started.set(Instant::now());
        m
    }

    /// The process-wide counters, used by providers and channels unless given others.
    pub fn global() -> &'static Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(Metrics::new)
    }

    /// The counters of one method, created on first use.
    pub fn method(&self, side: Side, service: &str, method: &str) -> Arc<MethodMetrics> {
        if let Some(m) = lookup::cached(&self.inner, side, (service, method)) {
            return m;
        }
        let table = &self.inner.methods[side as usize];
        let found = table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .and_then(|methods| methods.get(method))
            .cloned();
        let m = found.unwrap_or_else(|| {
            table
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(service.to_owned())
                .or_default()
                .entry(method.to_owned())
                .or_default()
                .clone()
        });
        lookup::keep(&self.inner, side, (service, method), &m);
        m
    }

    /// Counts a call refused before reaching a method.
    pub fn rejected(&self, code: Code) {
        let i = (code.as_i32() as usize).min(CODES - 1);
        self.inner.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection opening (`+1`) or closing (`-1`).
    pub fn connection(&self, side: Side, delta: i64) {
        let c = match side {
            Side::Server => &self.inner.server_connections,
            Side::Client => &self.inner.client_connections,
        };
        c.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a provider pausing its reads of a connection (backpressure).
    pub fn read_paused(&self) {
        self.inner.read_pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed because its peer stopped reading.
    pub fn write_timed_out(&self, side: Side) {
        self.inner.write_timeouts[side as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection a provider closed for a protocol error of kind `kind`.
    pub fn protocol_error(&self, kind: &'static str) {
        *self
            .inner
            .protocol_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }

    /// Counts a registry node a consumer refused to use, for `reason` (e.g. `world_writable`).
    pub fn registry_refused(&self, reason: &'static str) {
        *self
            .inner
            .registry_refused_nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// Adds a provider connection's write queue to the `queued_bytes` gauge until the
    /// returned registration is dropped (when the connection closes).
    pub fn track_server_queue(&self, queue: Arc<dyn QueuedBytes>) -> QueueRegistration {
        self.inner.server_queues.track(queue)
    }

    /// Adds a provider's adaptive concurrency limit, now `initial`, to the
    /// `adaptive_limit` gauge until the returned gauge is dropped; the provider sets it as
    /// the limit moves and counts the calls it sheds with it.
    pub fn track_adaptive_limit(&self, initial: usize) -> LimitGauge {
        LimitGauge::new(self.inner.adaptive.clone(), initial)
    }

    /// Records the providers a consumer knows for a service (usually `&[ServiceInstance]`,
    /// which converts into [`KnownProvider`]).
    pub fn set_providers<P: Into<KnownProvider>>(
        &self,
        service: &str,
        providers: impl IntoIterator<Item = P>,
    ) {
        let providers = providers.into_iter().map(Into::into).collect();
        let mut p = self
            .inner
            .providers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        p.insert(service.to_owned(), providers);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut list: Vec<MethodSnapshot> = Vec::new();
        for side in [Side::Server, Side::Client] {
            let table = self.inner.methods[side as usize]
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for (service, methods) in table.iter() {
                for (method, m) in methods {
                    list.push(MethodSnapshot {
                        side,
                        service: service.clone(),
                        method: method.clone(),
                        calls: m.calls.load(Ordering::Relaxed),
                        in_flight: m.in_flight.load(Ordering::Relaxed).max(0) as u64,
                        by_code: codes(&m.by_code),
                        latency: m.latency.snapshot(),
                        resilience: m.resilience.counts(),
                        messages_received: m.stream_messages[0].load(Ordering::Relaxed),
                        messages_sent: m.stream_messages[1].load(Ordering::Relaxed),
                    });
                }
            }
        }
        list.sort_by(|a, b| (a.side, &a.service, &a.method).cmp(&(b.side, &b.service, &b.method)));
        MetricsSnapshot {
            methods: list,
            rejected: codes(&self.inner.rejected),
            server_connections: self.inner.server_connections.load(Ordering::Relaxed).max(0) as u64,
            client_connections: self.inner.client_connections.load(Ordering::Relaxed).max(0) as u64,
            read_pauses: self.inner.read_pauses.load(Ordering::Relaxed),
            server_write_timeouts: self.inner.write_timeouts[Side::Server as usize]
                .load(Ordering::Relaxed),
            client_write_timeouts: self.inner.write_timeouts[Side::Client as usize]
                .load(Ordering::Relaxed),
            protocol_errors: self
                .inner
                .protocol_errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            registry_refused_nodes: self
                .inner
                .registry_refused_nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            server_queued_bytes: self.inner.server_queues.total(),
            adaptive_limit: self.inner.adaptive.limit(),
            shed_calls: self.inner.adaptive.shed(),
            providers: self
                .inner
                .providers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            provider_health: self
                .inner
                .provider_health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            uptime: self
                .inner
                .started
                .get()
                .map_or(Duration::ZERO, Instant::elapsed),
        }
    }
}

impl fmt::Debug for Metrics {
    /// The uptime only: the counters are read with [`Metrics::snapshot`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field(
                "uptime",
                &self
                    .inner
                    .started
                    .get()
                    .map_or(Duration::ZERO, Instant::elapsed),
            )
            .finish_non_exhaustive()
    }
}

fn codes(counters: &[AtomicU64; CODES]) -> BTreeMap<Code, u64> {
    counters
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then(|| (Code::from_i32(i as i32), n))
        })
        .collect()
}

/// Everything [`Metrics`] counts, at one moment.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    /// Per method and side, sorted.
    pub methods: Vec<MethodSnapshot>,
    /// Calls refused before reaching a method, by code.
    pub rejected: BTreeMap<Code, u64>,
    /// Connections open to this provider.
    pub server_connections: u64,
    /// Connections this process's channels hold open.
    pub client_connections: u64,
    /// Times this provider stopped reading a connection because its client had not read
    /// `max_unwritten_bytes` of replies.
    pub read_pauses: u64,
    /// Connections this provider closed because the client read nothing for `write_timeout`.
    pub server_write_timeouts: u64,
    /// Connections this process's channels closed because the provider read nothing for
    /// `write_timeout`.
    pub client_write_timeouts: u64,
    /// Connections this provider closed for a protocol error, by kind.
    pub protocol_errors: BTreeMap<&'static str, u64>,
    /// Registry nodes this process's consumers refused to use, by reason (see
    /// [`Metrics::registry_refused`]).
    pub registry_refused_nodes: BTreeMap<&'static str, u64>,
    /// Bytes this provider's connections have queued for clients and not yet written.
    pub server_queued_bytes: u64,
    /// The provider's adaptive concurrency limit (`[server.adaptive_limit]`), or none
    /// without one (the sum, when several providers in the process have one).
    pub adaptive_limit: Option<u64>,
    /// Calls the adaptive limit refused (also counted in `rejected`, as
    /// `ResourceExhausted`).
    pub shed_calls: u64,
    /// Providers known per service by this process's channels.
    pub providers: BTreeMap<String, Vec<KnownProvider>>,
    /// Providers this process's channels ejected at some point, by address.
    pub provider_health: BTreeMap<String, ProviderHealth>,
    /// Time since these counters were created.
    pub uptime: Duration,
}

/// A provider a consumer channel knows, as the metrics record it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnownProvider {
    /// Where the provider listens, `host:port`.
    pub address: String,
}

impl KnownProvider {
    /// A provider at `address`.
    pub fn new(address: impl Into<String>) -> KnownProvider {
        KnownProvider {
            address: address.into(),
        }
    }
}

/// One method's counters on one side.
#[derive(Clone, Debug)]
pub struct MethodSnapshot {
    /// Provider or consumer side.
    pub side: Side,
    /// Fully qualified service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Calls finished.
    pub calls: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Finished calls by status code (`Ok` included).
    pub by_code: BTreeMap<Code, u64>,
    /// Latency of finished calls.
    pub latency: HistogramSnapshot,
    /// Retries, hedges and budget refusals (consumer side).
    pub resilience: ResilienceCounts,
    /// Stream messages this side received in the method's streaming calls (a streaming call
    /// counts once in `calls`, when it ends, with its whole duration as its latency).
    pub messages_received: u64,
    /// Stream messages this side sent in the method's streaming calls.
    pub messages_sent: u64,
}

impl MethodSnapshot {
    /// Finished calls whose code was not `Ok`.
    pub fn errors(&self) -> u64 {
        self.by_code
            .iter()
            .filter(|(c, _)| **c != Code::Ok)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_codes_and_in_flight() {
        let m = Metrics::new();
        let login = m.method(Side::Server, "a.B", "Login");
        let r1 = login.start();
        let r2 = login.start();
        assert_eq!(m.snapshot().methods[0].in_flight, 2);
        r1.finish(Code::Ok);
        drop(r2);
        m.rejected(Code::Unimplemented);
        let s = m.snapshot();
        let login = &s.methods[0];
        assert_eq!((login.calls, login.in_flight), (2, 0));
        assert_eq!(login.by_code[&Code::Ok], 1);
        assert_eq!(login.by_code[&Code::Cancelled], 1);
        assert_eq!(login.errors(), 1);
        assert_eq!(login.latency.count, 2);
        assert_eq!(s.rejected[&Code::Unimplemented], 1);
    }
}
