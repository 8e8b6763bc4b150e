//! Shared pieces of the integration tests: the test service, process helpers and a fake
//! provider that misbehaves on purpose.

pub mod certs;
pub mod fake;
pub mod http;
pub mod load;
pub mod logs;
pub mod process;
pub mod python;
pub mod raw;
pub mod streams;
pub mod zk;

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mprpc::{Code, Request, Status};

/// The generated test service.
#[allow(missing_docs)]
pub mod proto {
    mprpc::include_proto!("mprpc.test");
}

pub use proto::echo_client::{EchoBlockingClient, EchoClient};
pub use proto::echo_server::{Echo, EchoServer};
pub use proto::{EchoRequest, EchoResponse, StreamReply, StreamRequest};

/// Counts what handlers did, so tests can see work start, finish or be abandoned.
#[derive(Default, Debug)]
pub struct Counters {
    /// Handlers that started.
    pub started: AtomicUsize,
    /// Handlers that ran to the end.
    pub finished: AtomicUsize,
    /// Handlers dropped before the end (deadline or cancel).
    pub abandoned: AtomicUsize,
}

/// The test service: echoes, sleeps, fails or panics as each request asks.
#[derive(Clone, Debug, Default)]
pub struct EchoService {
    /// Put into every reply's `served_by`.
    pub name: String,
    /// Shared counters.
    pub counters: Arc<Counters>,
    /// Print `call started` on stdout when a handler starts (for process tests).
    pub announce: bool,
    /// Added to every call's delay (a slow provider, for load-balancing tests).
    pub extra_delay_ms: u32,
    /// When not 0, every call fails with this code (a broken provider), after its delay.
    pub fail_with: Arc<AtomicI32>,
    /// A provider of fixed capacity: each call holds one of these permits while it waits
    /// its delay, so at most that many are served at once and the others queue for a permit
    /// in arrival order, like calls waiting for a pool of workers or database connections.
    /// With `n` permits and a delay of `d`, the provider serves `n / d` calls a second
    /// whatever the machine.
    pub capacity: Option<Arc<tokio::sync::Semaphore>>,
}

impl EchoService {
    /// A service with the given name and fresh counters.
    pub fn named(name: &str) -> EchoService {
        EchoService {
            name: name.to_owned(),
            ..EchoService::default()
        }
    }
}

struct Abandoned<'a> {
    counters: &'a Counters,
    done: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The `metadata_key` that asks the echo handler for the subject of the client's TLS
/// certificate (mutual TLS), in `metadata_value`.
pub const PEER_IDENTITY_KEY: &str = "@peer-identity";

/// The `metadata_key` that asks the echo handler for the name of the authenticated caller
/// (`[server.auth]`), in `metadata_value`.
pub const PRINCIPAL_KEY: &str = "@principal";

/// The `metadata_key` that asks the echo handler for the trace id its caller sent
/// (`mprpc::trace::TraceContext::from_metadata`, which reads the request header's trace fields
/// or the metadata keys), in `metadata_value`.
pub const TRACE_KEY: &str = "@trace";

/// A value a server layer puts in a request's extensions; the echo handler returns it in
/// `metadata_value` when asked for the key [`LayerNote::KEY`].
#[derive(Clone, Debug)]
pub struct LayerNote(pub String);

impl LayerNote {
    /// The `metadata_key` that asks for the note.
    pub const KEY: &'static str = "@layer-note";
}

impl Echo for EchoService {
    type SubscribeStream = mprpc::stream::BoxStream<StreamReply>;
    type ChatStream = mprpc::stream::BoxStream<StreamReply>;

    async fn subscribe(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Self::SubscribeStream, Status> {
        Ok(streams::subscribe(self, request.into_inner()))
    }

    async fn upload(
        &self,
        request: Request<mprpc::stream::Streaming<StreamRequest>>,
    ) -> Result<StreamReply, Status> {
        streams::upload(self, request.into_inner()).await
    }

    async fn chat(
        &self,
        request: Request<mprpc::stream::Streaming<StreamRequest>>,
    ) -> Result<Self::ChatStream, Status> {
        Ok(streams::chat(self, request.into_inner()))
    }

    async fn read(&self, request: Request<EchoRequest>) -> Result<EchoResponse, Status> {
        self.echo(request).await
    }

    async fn echo(&self, request: Request<EchoRequest>) -> Result<EchoResponse, Status> {
        self.counters.started.fetch_add(1, Ordering::SeqCst);
        if self.announce {
            println!("call started");
        }
        let mut guard = Abandoned {
            counters: &self.counters,
            done: false,
        };
        let budget_us = request.deadline().map_or(0, |d| {
            d.saturating_duration_since(Instant::now()).as_micros() as u64
        });
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let identity = request.extensions().get::<mprpc::tls::PeerIdentity>();
        let metadata_value = match request.extensions().get::<LayerNote>() {
            _ if request.get_ref().metadata_key == PEER_IDENTITY_KEY => {
                identity.map(|i| i.subject().to_owned()).unwrap_or_default()
            }
            _ if request.get_ref().metadata_key == PRINCIPAL_KEY => request
                .extensions()
                .get::<mprpc::auth::Principal>()
                .map(|p| p.name().to_owned())
                .unwrap_or_default(),
            Some(note) if request.get_ref().metadata_key == LayerNote::KEY => note.0.clone(),
            _ if request.get_ref().metadata_key == TRACE_KEY => {
                mprpc::trace::TraceContext::from_metadata(request.metadata())
                    .map(|t| t.trace_hex())
                    .unwrap_or_default()
            }
            _ => request
                .metadata()
                .get(&request.get_ref().metadata_key)
                .unwrap_or_default()
                .to_owned(),
        };
        // Response metadata from the handler: who answered.
        mprpc::server::reply_metadata(|m| m.insert("served-by", self.name.clone()));
        let mut req = request.into_inner();
        if !req.forward_to.is_empty() {
            let next = EchoClient::new(mprpc::client::Channel::to_address(std::mem::take(
                &mut req.forward_to,
            )));
            tracing::info!("forwarding");
            let reply = next.echo(req).await;
            guard.done = true;
            return reply;
        }
        tracing::info!(served_by = %self.name, "echo");
        let delay_ms = req.delay_ms + self.extra_delay_ms;
        let _permit = match &self.capacity {
            Some(permits) => Some(
                permits
                    .acquire()
                    .await
                    .map_err(|_| Status::unavailable("the capacity semaphore was closed"))?,
            ),
            None => None,
        };
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay_ms))).await;
        }
        guard.done = true;
        self.counters.finished.fetch_add(1, Ordering::SeqCst);
        if req.panic {
            panic!("the test asked for a panic");
        }
        if req.fail_code != 0 {
            return Err(Status::new(Code::from_i32(req.fail_code), req.fail_message));
        }
        let broken = self.fail_with.load(Ordering::SeqCst);
        if broken != 0 {
            let message = format!("{} is broken on purpose", self.name);
            return Err(Status::new(Code::from_i32(broken), message));
        }
        Ok(EchoResponse {
            payload: req.payload,
            served_by: self.name.clone(),
            peer,
            metadata_value,
            budget_us,
        })
    }
}

/// A channel's retries, hedges and budget refusals for `method` (consumer side), from its
/// metrics.
pub fn resilience_counts(
    metrics: &mprpc::metrics::Metrics,
    method: &str,
) -> mprpc::metrics::ResilienceCounts {
    metrics
        .snapshot()
        .methods
        .iter()
        .find(|m| m.side == mprpc::metrics::Side::Client && m.method == method)
        .map(|m| m.resilience)
        .unwrap_or_default()
}

/// Polls `condition` every few milliseconds until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
