//! One provider address as a consumer sees it: its connection, and reconnect backoff.
//!
//! A connection is opened on first use (never per call). When it dies, the next call opens a
//! new one; if that fails, the endpoint waits before trying again (exponential backoff from
//! `reconnect_backoff` up to `reconnect_backoff_max`), and calls meanwhile go to other
//! providers or fail fast with `Unavailable` instead of piling up on connect attempts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::connection::Connection;
use super::resilience::outlier::Health;
use crate::config::ClientConfig;
use crate::metrics::Metrics;
use crate::tls::Connector;
use crate::Status;

pub(crate) struct Endpoint {
    address: String,
    /// The provider speaks the original C++ mprpc's protocol: a connection per call
    /// (`client/legacy.rs`), none kept here.
    legacy: bool,
    state: Mutex<State>,
    /// Held while connecting, so that concurrent callers share one attempt.
    connecting: tokio::sync::Mutex<()>,
    /// Calls in flight through this endpoint (for the least-loaded balancer).
    in_flight: AtomicUsize,
    /// Moving average of call latency in microseconds (for the least-loaded balancer).
    latency_us: AtomicU64,
    /// Failures and ejections (outlier detection).
    health: Health,
}

/// Counts a call in flight on an endpoint and records its latency when dropped.
pub(crate) struct InFlight<'a> {
    endpoint: &'a Endpoint,
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        let sample = self.started.elapsed().as_micros().min(u128::from(u32::MAX)) as u64;
        // EWMA with weight 1/8; races between calls only blur the average.
        let old = self.endpoint.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.endpoint.latency_us.store(new, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct State {
    conn: Option<Arc<Connection>>,
    /// Connect failures in a row.
    failures: u32,
    /// No connect attempt before this.
    retry_at: Option<Instant>,
    last_error: Option<Status>,
}

impl Endpoint {
    /// The provider's address, `host:port`.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Whether the provider speaks the original C++ mprpc's protocol.
    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy
    }

    pub(crate) fn new(address: String, legacy: bool) -> Endpoint {
        Endpoint {
            address,
            legacy,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            latency_us: AtomicU64::new(0),
            health: Health::default(),
        }
    }

    /// Its failures and ejections.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// Marks a call in flight until the guard is dropped.
    pub(crate) fn start_call(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: self,
            started: Instant::now(),
        }
    }

    /// A load score: calls in flight (plus this one) times recent latency.
    pub(crate) fn load(&self) -> u64 {
        let in_flight = self.in_flight.load(Ordering::Relaxed) as u64 + 1;
        let latency = self.latency_us.load(Ordering::Relaxed).max(1);
        in_flight.saturating_mul(latency)
    }

    /// Whether the endpoint is waiting out a reconnect backoff.
    pub(crate) fn in_backoff(&self) -> bool {
        let state = self.lock();
        state.conn.is_none() && state.retry_at.is_some_and(|t| Instant::now() < t)
    }

    fn usable(&self) -> Option<Arc<Connection>> {
        let mut state = self.lock();
        match &state.conn {
            Some(conn) if conn.is_usable() => Some(conn.clone()),
            Some(_) => {
                state.conn = None;
                None
            }
            None => None,
        }
    }

    /// The live connection, opening one if needed.
    pub(crate) async fn connection(
        &self,
        config: &ClientConfig,
        metrics: &Metrics,
        tls: Option<&Connector>,
    ) -> Result<Arc<Connection>, Status> {
        if let Some(conn) = self.usable() {
            return Ok(conn);
        }
        // Boxed: connecting (TCP, TLS, the connection's start) is a 1.5 KB future, which
        // would otherwise sit in every call's future and be copied each time it moves.
        Box::pin(self.connect(config, metrics, tls)).await
    }

    /// Opens the connection, one caller at a time (the others wait, then take it).
    async fn connect(
        &self,
        config: &ClientConfig,
        metrics: &Metrics,
        tls: Option<&Connector>,
    ) -> Result<Arc<Connection>, Status> {
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.usable() {
            return Ok(conn);
        }
        {
            let state = self.lock();
            if let Some(retry_at) = state.retry_at {
                if Instant::now() < retry_at {
                    let last = state.last_error.as_ref().map_or("", |s| s.message());
                    return Err(Status::unavailable(format!(
                        "provider {} is unreachable (retrying in {:?}): {last}",
                        self.address,
                        retry_at - Instant::now()
                    )));
                }
            }
        }
        match Connection::connect(&self.address, config, metrics, tls).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                let mut state = self.lock();
                state.conn = Some(conn.clone());
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
                tracing::debug!(address = %self.address, "connected");
                Ok(conn)
            }
            Err(status) => {
                let mut state = self.lock();
                state.failures = state.failures.saturating_add(1);
                let exp = state.failures.saturating_sub(1).min(16);
                let backoff = config
                    .reconnect_backoff
                    .saturating_mul(1 << exp)
                    .min(config.reconnect_backoff_max);
                state.retry_at = Some(Instant::now() + backoff);
                state.last_error = Some(status.clone());
                tracing::debug!(address = %self.address, ?backoff, "connect failed: {status}");
                Err(status)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
