//! Raw streaming calls on a consumer's connection, for the provider's gRPC front end: it
//! runs gRPC's streaming calls over a connection on an in-process pipe
//! (`server/connection/grpc/stream.rs`, with [`Connection::start`], which takes any pair of
//! halves), each becoming an mprpc stream to the provider's own stack, with its flow
//! control, deadline, cancellation, limits, layers and metrics, and no second implementation
//! of any of them.

use std::time::Duration;

use bytes::Bytes;

use super::{CallError, Connection};
use crate::client::stream::Outgoing;
use crate::metrics::{Metrics, Side};
use crate::stream::{MethodKind, Streaming};
use crate::Status;
use crate::{Body, Metadata};

impl Connection {
    /// Opens a streaming call with encoded messages: `body` is the request of a
    /// server-streaming call, `requests` the stream of the others, sent as credit allows and
    /// half-closed at their end. Dropping the returned stream before its end cancels the
    /// call.
    pub(crate) async fn stream_raw(
        &self,
        call: (&str, &str, MethodKind),
        (metadata, timeout): (Metadata, Option<Duration>),
        body: Body,
        requests: Option<Outgoing>,
        metrics: &Metrics,
    ) -> Result<Streaming<Bytes>, Status> {
        let (service, method, _) = call;
        let mut opened = self
            .open_stream(call, metadata, timeout, body)
            .await
            .map_err(|e| match e {
                CallError::NotSent(status) | CallError::Failed(status) => status,
            })?;
        let stop = tokio_util::sync::CancellationToken::new();
        let counters = metrics.method(Side::Client, service, method);
        if let Some(requests) = requests {
            opened.pump(requests, stop.clone(), counters);
        }
        let mut streaming = Streaming::new(opened.inbound.clone(), crate::stream::encoded())
            .on_drop(opened.canceller())
            .hold(stop.drop_guard());
        if let Some(timeout) = timeout {
            streaming = streaming.with_deadline(tokio::time::Instant::now() + timeout);
        }
        Ok(streaming)
    }
}
