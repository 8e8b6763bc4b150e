//! Streaming calls on a consumer's connection: opening one, pumping the caller's stream of
//! requests, and the reader's part (messages, credit, the final reply).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{CallError, ConnShared, Connection};
use crate::metrics::MethodMetrics;
use crate::protocol::codec::decode_header;
use crate::protocol::{
    metadata_from_wire, CancelHeader, Frame, FrameKind, OutFrame, RequestHeader, ResponseHeader,
    StreamHeader, WindowUpdateHeader,
};
use crate::stream::window::INITIAL_STREAM_WINDOW;
use crate::stream::{Announced, End, Inbound, MethodKind, Outbound, Refused};
use crate::sync::lock;
use crate::{Body, Metadata, Status};

pub(crate) use crate::client::stream::Outgoing;

/// A streaming call opened on a connection.
pub(crate) struct OpenStream {
    pub(crate) id: u64,
    pub(crate) inbound: Arc<Inbound>,
    pub(crate) outbound: Option<Outbound>,
    shared: Arc<ConnShared>,
}

impl Connection {
    /// Opens a streaming call: registers its stream and writes its `Request` frame (with
    /// `body`, the request of a server-streaming call).
    pub(crate) async fn open_stream(
        &self,
        (service, method, kind): (&str, &str, MethodKind),
        metadata: Metadata,
        timeout: Option<Duration>,
        body: Body,
    ) -> Result<OpenStream, CallError> {
        let shared = &self.shared;
        let id = shared
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(reason) = &lock(&shared.pending).closed {
            return Err(CallError::NotSent(reason.clone()));
        }
        let send_credit = kind.client_streams().then_some(INITIAL_STREAM_WINDOW);
        let (inbound, outbound) = shared.streams.open(id, Some(Announced::Yes), send_credit);
        let inbound = inbound.expect("opened with a queue");
        // Streams' messages are not compressed (yet).
        let header = RequestHeader {
            kind: kind.wire(),
            window: shared.streams.windows().stream,
            batches: kind.server_streams(),
            ..super::request_header(id, (service, method), metadata, timeout)
        };
        if let Err(status) = super::check_fits(&header, body.len(), shared.max_frame_size) {
            shared.streams.remove(id);
            return Err(CallError::NotSent(status));
        }
        if shared
            .tx
            .send(OutFrame::Request(header, body))
            .await
            .is_err()
        {
            shared.streams.remove(id);
            let reason = self.closed_reason().unwrap_or_else(|| {
                Status::unavailable(format!("connection to {} closed", shared.address))
            });
            return Err(CallError::NotSent(reason));
        }
        // Closed after the frame was queued: the reader may have failed the streams before
        // this one was in the table's snapshot.
        if let Some(reason) = self.closed_reason() {
            shared.streams.finish(id, End::Failed(reason));
        }
        Ok(OpenStream {
            id,
            inbound,
            outbound,
            shared: shared.clone(),
        })
    }
}

impl OpenStream {
    /// What dropping the caller's stream before its end does: the provider is told to stop
    /// (a `Cancel`), and the stream leaves the table.
    pub(crate) fn canceller(&self) -> impl FnOnce() + Send + Sync + 'static {
        let (shared, id) = (self.shared.clone(), self.id);
        move || {
            if shared.streams.contains(id) {
                shared.streams.remove(id);
                let _ = shared
                    .tx
                    .try_send(OutFrame::Cancel(CancelHeader { request_id: id }));
            }
        }
    }

    /// Sends `requests` down the stream in a task of its own, then half-closes it; stops when
    /// `stop` is cancelled or the stream ends. A message over the frame limit fails the call
    /// with `ResourceExhausted`.
    pub(crate) fn pump(
        &mut self,
        requests: Outgoing,
        stop: CancellationToken,
        counters: Arc<MethodMetrics>,
    ) {
        let Some(outbound) = self.outbound.take() else {
            return;
        };
        let (shared, id) = (self.shared.clone(), self.id);
        tokio::spawn(async move {
            let run = send_all(&shared, &outbound, requests, &counters);
            tokio::select! {
                () = stop.cancelled() => {}
                sent = run => if let Err(status) = sent {
                    // Ours to say: the provider is told, the caller gets the reason.
                    if shared.streams.finish(id, End::Failed(status)) {
                        let _ = shared.tx.try_send(OutFrame::Cancel(CancelHeader { request_id: id }));
                    }
                }
            }
        });
    }
}

async fn send_all(
    shared: &ConnShared,
    outbound: &Outbound,
    mut requests: Outgoing,
    counters: &MethodMetrics,
) -> Result<(), Status> {
    while let Some(body) = requests.next().await {
        if body.len() + 64 > shared.max_frame_size {
            return Err(Status::resource_exhausted(format!(
                "a streamed request of {} bytes exceeds the maximum frame size of {} bytes",
                body.len(),
                shared.max_frame_size
            )));
        }
        if outbound.send(body).await.is_err() {
            return Ok(());
        }
        counters.stream_messages_sent(1);
    }
    let _ = outbound.half_close().await;
    Ok(())
}

/// A `Response` that no unary call waits for: the end of a streaming call, if it is one.
pub(super) fn on_response(shared: &ConnShared, header: ResponseHeader, body: Bytes) {
    let metadata = metadata_from_wire(header.metadata);
    let end = if header.code == 0 {
        End::Finished {
            trailers: metadata,
            body: (!body.is_empty()).then_some(body),
        }
    } else {
        End::Failed(
            Status::from_wire(header.code, &header.message)
                .with_details(header.details)
                .with_metadata(metadata),
        )
    };
    shared.streams.finish(header.request_id, end);
}

/// A `Message`, `MessageBatch` or `WindowUpdate` frame from the provider. An `Err` closes
/// the connection.
pub(super) fn on_frame(shared: &ConnShared, frame: Frame) -> Result<(), Status> {
    let address = &shared.address;
    let bad = |e| Status::internal(format!("from {address}: {e}"));
    if frame.kind == FrameKind::WindowUpdate {
        let header: WindowUpdateHeader = decode_header(&frame).map_err(bad)?;
        shared
            .streams
            .on_window_update(header.request_id, header.increment);
        return Ok(());
    }
    let header: StreamHeader = decode_header(&frame).map_err(bad)?;
    let batched = frame.kind == FrameKind::MessageBatch;
    match shared
        .streams
        .on_message(header.request_id, frame.body, batched)
    {
        Ok(()) => Ok(()),
        Err(Refused::Connection(o)) => Err(Status::internal(format!(
            "provider {address} sent stream messages past the connection's flow-control \
             window of {} bytes",
            o.window
        ))),
        Err(Refused::Stream(id, o)) => {
            let status = Status::internal(format!(
                "provider {address} sent messages past the stream's flow-control window of {} \
                 bytes",
                o.window
            ));
            fail_stream(shared, id, status);
            Ok(())
        }
        Err(Refused::Malformed(id, e)) => {
            fail_stream(
                shared,
                id,
                Status::internal(format!("provider {address} sent {e}")),
            );
            Ok(())
        }
    }
}

/// Fails stream `id` with the provider's fault `status`, and cancels it.
fn fail_stream(shared: &ConnShared, id: u64, status: Status) {
    shared.streams.finish(id, End::Failed(status));
    let _ = shared
        .tx
        .try_send(OutFrame::Cancel(CancelHeader { request_id: id }));
}
