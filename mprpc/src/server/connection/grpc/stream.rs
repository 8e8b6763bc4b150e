//! gRPC's streaming calls (server, client and both ways), run as mprpc streams.
//!
//! A gRPC connection's first streaming call starts its **bridge**: a connection of mprpc's
//! own protocol over an in-process pipe, its provider side served like any connection (the
//! gRPC caller's address and TLS identity, the provider's stack, limits, windows and
//! shutdown), its consumer side a [`ProviderConnection`]. Each gRPC stream becomes an mprpc
//! stream on it: request messages go as the stream's credit allows (so HTTP/2's flow
//! control holds back a fast gRPC sender), replies go out as DATA frames as they come, and
//! the stream's end is the trailers (`grpc-status`, `grpc-message`, the trailing metadata).
//! `grpc-timeout` covers the whole stream; a gRPC caller that resets its stream cancels the
//! call (the handler sees `Cancelled`); a request stream that breaks or carries a bad message
//! ends the call with that status. Nothing of the stream machinery is written twice.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use http_body_util::{Either, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::messages::{frame, Messages};
use super::{failure, metadata, put_status, request_encoding, response, Body};
use crate::client::ProviderConnection;
use crate::compression::Accepted;
use crate::config::ClientConfig;
use crate::metrics::Metrics;
use crate::server::connection::unary::put_metadata;
use crate::server::connection::Connection;
use crate::server::service::Service;
use crate::stream::{EncodedStream, MethodKind, Streaming};
use crate::sync::lock;
use crate::Status;

/// The bytes the in-process pipe holds each way.
const PIPE_BYTES: usize = 256 * 1024;

/// A gRPC connection's bridge to mprpc's streams, started by its first streaming call,
/// and started again if it breaks.
#[derive(Default)]
pub(in crate::server::connection) struct Bridge {
    state: tokio::sync::Mutex<BridgeState>,
    /// The consumer side's counters (the provider side counts in the provider's).
    metrics: Metrics,
}

#[derive(Default)]
struct BridgeState {
    connection: Option<Arc<ProviderConnection>>,
    /// The provider sides' tasks, awaited (and if need be aborted) when the gRPC connection
    /// ends.
    serving: Vec<JoinHandle<()>>,
    /// The gRPC connection has ended: no new bridge.
    closed: bool,
}

impl Bridge {
    /// Closes the bridge once its gRPC connection has ended: the pipe closes, and its
    /// provider side finishes (within the shutdown grace, like any connection), or is
    /// aborted.
    pub(in crate::server::connection) async fn close(&self, grace: Duration) {
        let serving = {
            let mut state = self.state.lock().await;
            state.closed = true;
            state.connection = None;
            std::mem::take(&mut state.serving)
        };
        for mut serving in serving {
            let limit = grace + Duration::from_secs(1);
            if tokio::time::timeout(limit, &mut serving).await.is_err() {
                serving.abort();
            }
        }
    }

    /// The bridge's consumer side: the one running, or a new one if there is none or it
    /// broke.
    async fn connection(&self, conn: &Connection) -> Result<Arc<ProviderConnection>, Status> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(Status::unavailable("the gRPC connection is closing"));
        }
        if let Some(bridge) = state.connection.as_ref().filter(|c| c.is_usable()) {
            return Ok(bridge.clone());
        }
        state.serving.retain(|task| !task.is_finished());
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        let provider_side = Connection {
            peer: conn.peer,
            busy: Arc::default(),
            shared: conn.shared.clone(),
            shutdown: conn.shutdown.clone(),
            force_close: conn.force_close.clone(),
            // The same process: the same clock.
            trust_caller_clock: true,
            identity: conn.identity.clone(),
        };
        let (rd, wr) = tokio::io::split(far);
        state
            .serving
            .push(tokio::spawn(provider_side.run(rd, wr, None)));
        let config = &conn.shared.config;
        let client = ClientConfig {
            max_frame_size: config.max_frame_size,
            stream_window: config.stream_window,
            connection_window: config.connection_window,
            write_timeout: config.write_timeout,
            // Often enough that the provider side never finds the pipe idle.
            ping_interval: (config.idle_timeout / 3).max(Duration::from_millis(100)),
            ..ClientConfig::default()
        };
        let (rd, wr) = tokio::io::split(near);
        let name = format!("the gRPC bridge of {}", conn.peer);
        let bridge = Arc::new(ProviderConnection::start(
            rd,
            wr,
            &name,
            &client,
            self.metrics.clone(),
        ));
        state.connection = Some(bridge.clone());
        Ok(bridge)
    }
}

/// A streaming method a gRPC path names: its service, name and kind.
pub(super) type Route = (Arc<dyn Service>, &'static str, MethodKind);

impl Connection {
    /// The streaming method at `path` (`/package.Service/Method`), if it names one.
    pub(super) fn streaming_route(&self, path: &str) -> Option<Route> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let service = self.shared.router.get(service)?.clone();
        let (method, kind) = service
            .streaming_methods()
            .iter()
            .copied()
            .find(|(m, _)| *m == method)?;
        Some((service, method, kind))
    }

    /// Runs a gRPC streaming call on the bridge: the response's headers at once, then its
    /// messages as they come, then its trailers.
    pub(super) async fn grpc_stream(
        &self,
        bridge: &Bridge,
        request: http::Request<Incoming>,
        route: Route,
        accepted: Accepted,
    ) -> http::Response<Body> {
        match self.open_grpc_stream(bridge, request, route).await {
            Ok((replies, failure)) => {
                let outgoing = self.shared.config.compression.outgoing();
                let encoding = outgoing.encoding.filter(|e| accepted.contains(*e));
                let frames = reply_frames(replies, failure, (encoding, outgoing.threshold));
                let mut reply = response(Either::Right(StreamBody::new(frames)));
                if let Some(encoding) = encoding {
                    let name = HeaderValue::from_static(encoding.name());
                    reply.headers_mut().insert("grpc-encoding", name);
                }
                reply
            }
            Err(status) => {
                self.shared.metrics.rejected(status.code());
                failure(&status)
            }
        }
    }

    /// Opens the call's mprpc stream: its replies, and where a failure of its request
    /// stream is told.
    async fn open_grpc_stream(
        &self,
        bridge: &Bridge,
        request: http::Request<Incoming>,
        (service, method, kind): Route,
    ) -> Result<(Streaming<Bytes>, Failure), Status> {
        let arrived = Instant::now();
        let (parts, body) = request.into_parts();
        let encoding = request_encoding(&parts.headers)?;
        let (metadata, deadline) = metadata(&parts.headers, arrived)?;
        if *self.shutdown.borrow() {
            return Err(Status::unavailable(
                "provider is shutting down; the call was not run",
            ));
        }
        let config = &self.shared.config;
        let (limit, frame_timeout) = (config.max_frame_size, config.frame_timeout);
        let mut messages = Messages::new(body, limit, encoding, frame_timeout);
        let failure = Failure::default();
        let (first, requests) = if kind.client_streams() {
            (Bytes::new(), Some(failure.watch(messages)))
        } else {
            // The one request of a server-streaming call, whole within `frame_timeout` (and
            // the call's deadline).
            let by = arrived + frame_timeout;
            let by = deadline.map_or(by, |d| d.min(by));
            let read = tokio::time::timeout_at(by.into(), one_message(&mut messages)).await;
            let first = read.unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "the request message did not arrive within {:?}",
                    by.saturating_duration_since(arrived)
                )))
            })?;
            (first, None)
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let connection = bridge.connection(self).await?;
        let call = (service.name(), method, kind);
        let call_metadata = (metadata, timeout);
        let replies = connection
            .stream_raw(call, call_metadata, first.into(), requests, &bridge.metrics)
            .await?;
        Ok((replies, failure))
    }
}

/// The one request message of a server-streaming call, and the end of its body.
async fn one_message(messages: &mut Messages) -> Result<Bytes, Status> {
    let first = match messages.next().await {
        Some(message) => message?,
        None => {
            return Err(Status::internal(
                "a server-streaming call needs its request message",
            ))
        }
    };
    match messages.next().await {
        None => Ok(first),
        Some(Err(status)) => Err(status),
        Some(Ok(_)) => Err(Status::internal(
            "a server-streaming call carries one request message",
        )),
    }
}

/// Where the request stream's failure (a bad message, a broken body) is told to the reply
/// side, which ends the call with it.
#[derive(Clone, Default)]
struct Failure {
    status: Arc<Mutex<Option<Status>>>,
    told: CancellationToken,
}

impl Failure {
    /// The messages of a request body as the stream of requests sent on the bridge. On a
    /// failure it stops (without ending: an end would be a half-close, a good end) and the
    /// reply side is told.
    fn watch(&self, messages: Messages) -> EncodedStream {
        let failure = self.clone();
        Box::pin(futures_util::stream::unfold(
            messages,
            move |mut messages| {
                let failure = failure.clone();
                async move {
                    match messages.next().await {
                        None => None,
                        Some(Ok(message)) => Some((message.into(), messages)),
                        Some(Err(status)) => {
                            *lock(&failure.status) = Some(status);
                            failure.told.cancel();
                            std::future::pending().await
                        }
                    }
                }
            },
        ))
    }

    fn take(&self) -> Status {
        lock(&self.status)
            .take()
            .unwrap_or_else(|| Status::internal("the request stream failed"))
    }
}

/// The response body: a DATA frame per reply, then the trailers.
fn reply_frames(
    replies: Streaming<Bytes>,
    failure: Failure,
    (encoding, threshold): (Option<crate::compression::Encoding>, usize),
) -> super::Streamed {
    let state = Some((replies, failure));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut replies, failure) = state?;
        let next = tokio::select! {
            biased;
            () = failure.told.cancelled() => Err(failure.take()),
            next = replies.message() => next,
        };
        let frame = match next {
            Ok(Some(message)) => {
                let encoding = encoding.filter(|_| message.len() >= threshold);
                let data = Frame::data(frame(message.into(), encoding));
                return Some((Ok::<_, Infallible>(data), Some((replies, failure))));
            }
            Ok(None) => {
                let mut trailers = HeaderMap::new();
                if let Some(metadata) = replies.trailers() {
                    put_metadata(&mut trailers, metadata);
                }
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                Frame::trailers(trailers)
            }
            Err(status) => {
                let mut trailers = HeaderMap::new();
                put_metadata(&mut trailers, status.metadata());
                put_status(&mut trailers, &status);
                Frame::trailers(trailers)
            }
        };
        // The last frame; the stream (and with it the call, if still open) is dropped.
        Some((Ok(frame), None))
    })
    .boxed()
}
