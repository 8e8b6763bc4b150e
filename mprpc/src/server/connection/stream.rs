//! Streaming calls on a provider's connection: opening a call's stream, the frames of its
//! messages and credit, and cutting off streams still open when the shutdown grace ends.

use std::sync::Arc;
use std::time::Duration;

use super::call::error_header;
use super::{broken, Ending, InFlight, Turn};
use crate::metrics::MethodMetrics;
use crate::protocol::codec::decode_header;
use crate::protocol::{Frame, FrameKind, OutFrame, Outbox, StreamHeader, WindowUpdateHeader};
use crate::stream::window::INITIAL_STREAM_WINDOW;
use crate::stream::{Announced, MethodKind, Refused, ReplySink, StreamIo, StreamTable};
use crate::sync::lock;
use crate::{Body, Request, Status};

/// Opens the stream of an admitted streaming call and puts it in the request's extensions,
/// where the generated adapter finds it. The guard closes the stream when the call ends,
/// however it ends (answered, aborted by a cancel, or cut off).
pub(super) fn open(
    turn: &Turn<'_>,
    (id, kind, window, batches): (u64, MethodKind, u64, bool),
    request: &mut Request<Body>,
    (max_frame_size, counters): (usize, Arc<MethodMetrics>),
) -> StreamGuard {
    let receives = kind.client_streams().then_some(Announced::No);
    let credit = match window {
        0 => INITIAL_STREAM_WINDOW,
        window => window,
    };
    let send_credit = kind.server_streams().then_some(credit);
    let (inbound, outbound) = turn.streams.open(id, receives, send_credit);
    let sink = outbound.map(|o| ReplySink::new(o, (max_frame_size, batches), counters.clone()));
    request
        .extensions_mut()
        .insert(StreamIo::new(inbound, sink, counters));
    StreamGuard {
        table: turn.streams.clone(),
        id,
    }
}

/// Closes a call's stream when dropped.
pub(super) struct StreamGuard {
    table: Arc<StreamTable>,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// A `Message`, `MessageBatch`, `HalfClose` or `WindowUpdate` frame from the consumer.
pub(super) fn on_frame(frame: Frame, turn: &Turn<'_>) -> Result<(), Ending> {
    let streams = turn.streams;
    if frame.kind == FrameKind::WindowUpdate {
        let header: WindowUpdateHeader = decode_header(&frame).map_err(broken)?;
        streams.on_window_update(header.request_id, header.increment);
        return Ok(());
    }
    let header: StreamHeader = decode_header(&frame).map_err(broken)?;
    if frame.kind == FrameKind::HalfClose {
        streams.on_half_close(header.request_id);
        return Ok(());
    }
    let batched = frame.kind == FrameKind::MessageBatch;
    match streams.on_message(header.request_id, frame.body, batched) {
        Ok(()) => Ok(()),
        Err(Refused::Connection(o)) => Err(Ending::Broken(
            "flow_control",
            Status::resource_exhausted(format!(
                "the consumer sent stream messages past the connection's flow-control window \
                 of {} bytes",
                o.window
            )),
        )),
        Err(Refused::Stream(id, o)) => {
            let status = Status::resource_exhausted(format!(
                "the consumer sent messages past the stream's flow-control window of {} bytes",
                o.window
            ));
            end_call(turn, id, &status);
            Ok(())
        }
        Err(Refused::Malformed(id, e)) => {
            end_call(
                turn,
                id,
                &Status::invalid_argument(format!("the consumer sent {e}")),
            );
            Ok(())
        }
    }
}

/// Ends call `id` with `status` for what its consumer sent on its stream; the connection and
/// its other calls carry on.
fn end_call(turn: &Turn<'_>, id: u64, status: &Status) {
    if let Some(handle) = lock(turn.in_flight).remove(&id) {
        handle.abort();
    }
    turn.streams.remove(id);
    let _ = turn
        .tx
        .try_send(OutFrame::Response(error_header(id, status), Body::new()));
}

/// Ends every stream still open when the shutdown grace has run out, each with a final
/// `Unavailable` that says so, before the connection closes.
pub(super) fn cut_off(tx: &Outbox, streams: &StreamTable, in_flight: &InFlight, grace: Duration) {
    let status = Status::unavailable(format!(
        "the provider shut down: the stream was still open when its shutdown grace of \
         {grace:?} ran out"
    ));
    end_all(tx, streams, in_flight, &status);
}

/// Ends every stream of the connection with `status`: its handler is dropped and the
/// consumer is told. For a connection whose reader is gone (a protocol error), no message,
/// half-close or credit can come any more, so a stream could only hang; its unary calls are
/// left to finish.
pub(super) fn end_all(tx: &Outbox, streams: &StreamTable, in_flight: &InFlight, status: &Status) {
    for id in streams.ids() {
        streams.remove(id);
        if let Some(handle) = lock(in_flight).remove(&id) {
            handle.abort();
        }
        let _ = tx.try_send(OutFrame::Response(error_header(id, status), Body::new()));
    }
}
