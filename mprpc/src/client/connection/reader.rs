//! The consumer connection's reader: replies to their waiting calls, a provider's `GoAway`
//! and pings, and the failure of every waiting call when the connection ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

use super::{CallError, ConnShared, PONG_ROOM};
use crate::compression::Encoding;
use crate::protocol::codec::compact::{check_metadata, response_header};
use crate::protocol::codec::decode_header;
use crate::protocol::limits::{MetadataLimits, MetadataTooLarge};
use crate::protocol::{
    metadata_from_wire, Frame, FrameDecoder, FrameKind, FrameReader, GoAwayHeader, OutFrame,
    ProtocolError,
};
use crate::status::{printable, MAX_PEER_MESSAGE};
use crate::sync::lock;
use crate::{Code, Response, Status};

/// Frames read in a burst (taken without waiting) between two readings of the clock.
const CLOCK_EVERY: u32 = 256;
/// Replies handed to their callers before the reader lets them run. A read buffer holds
/// hundreds of small replies; waking all their callers in one go overflows tokio's local
/// run queue (256 tasks), and the callers pushed to the global queue then wait while the
/// others cycle (a worker looks at that queue once every 61 polls): at 1,024 calls in
/// flight, some waited 100 ms while the median waited 1 ms. Yielding after each group keeps
/// the callers in the local queue, served in the order their replies came. The group must
/// be smaller than the 61 polls a worker makes between two looks at its I/O and deferred
/// tasks (when the yielding reader comes back): with 128, each round added 128 callers and
/// ran only 61, so the queue still overflowed now and then (tokio's `worker_overflow_count`:
/// 27-126 times in a 3-second window; callers waited up to 75 ms); with 48, never.
const WAKE_BURST: u32 = 48;

pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    rd: R,
    shared: Arc<ConnShared>,
    close: CancellationToken,
    max_frame_size: usize,
) {
    let mut frames = FrameReader::with_capacity(rd, FrameDecoder::new(max_frame_size), 64 * 1024);
    let closed = close.clone().cancelled_owned();
    tokio::pin!(closed);
    // Frames taken without waiting since the clock was last read.
    let mut unclocked = 0u32;
    // Replies handed on since the reader last let their callers run.
    let mut woken = 0u32;
    let reason = loop {
        let next = match frames.next().now_or_never() {
            // A frame already read: no need to look at the cancellation first.
            Some(next) => {
                unclocked += 1;
                next
            }
            None => {
                unclocked = CLOCK_EVERY;
                tokio::select! {
                    () = &mut closed => break Status::unavailable(format!("connection to {} was closed", shared.address)),
                    next = frames.next() => next,
                }
            }
        };
        let frame = match next {
            None => {
                break Status::unavailable(format!(
                    "provider {} closed the connection",
                    shared.address
                ))
            }
            Some(Err(e)) => break read_error(&e, &shared.address),
            Some(Ok(frame)) => frame,
        };
        // The clock is read after a wait for the socket, and every so many frames of a
        // burst: a stream of small messages would otherwise read it per message.
        if unclocked >= CLOCK_EVERY {
            unclocked = 0;
            let ms = shared.opened.elapsed().as_millis() as u64;
            shared.last_read_ms.store(ms, Ordering::Relaxed);
        }
        match frame.kind {
            FrameKind::Response | FrameKind::CompactResponse => {
                if let Err(reason) = on_response(&shared, frame) {
                    break reason;
                }
                woken += 1;
                if woken >= WAKE_BURST {
                    woken = 0;
                    tokio::task::yield_now().await;
                }
            }
            FrameKind::GoAway => {
                shared.going_away.store(true, Ordering::Relaxed);
                if let Some(status) = go_away_status(&frame, &shared.address) {
                    // A protocol complaint: the provider closes right after.
                    tracing::debug!(address = %shared.address, "provider sent GoAway: {status}");
                    lock(&shared.pending).closed.get_or_insert(status);
                } else {
                    tracing::debug!(address = %shared.address, "provider is shutting down");
                }
            }
            FrameKind::Ping => {
                // A provider that pings and does not read what we write is owed no pongs:
                // answer only while little waits to be written.
                if shared.tx.unwritten() < PONG_ROOM {
                    let _ = shared.tx.try_send(OutFrame::Pong(frame.body));
                }
            }
            FrameKind::Pong => {}
            FrameKind::Message | FrameKind::MessageBatch | FrameKind::WindowUpdate => {
                if let Err(reason) = super::stream::on_frame(&shared, frame) {
                    break reason;
                }
            }
            FrameKind::Request
            | FrameKind::CompactRequest
            | FrameKind::Cancel
            | FrameKind::HalfClose => {
                break Status::internal(format!(
                    "protocol error: provider {} sent a {:?} frame",
                    shared.address, frame.kind
                ));
            }
        }
    };
    fail_all(&shared, reason);
    close.cancel();
}

/// Hands a reply to the call waiting for it. An `Err` is a reply that cannot be decoded:
/// the connection is unusable.
fn on_response(shared: &ConnShared, frame: Frame) -> Result<(), Status> {
    // Counted like the provider counts requests' (before decoding a large header).
    let limits = MetadataLimits::default();
    if let Err(e) = check_metadata(&limits, &frame, 4) {
        fail_call(shared, &e);
        return Ok(());
    }
    let header = response_header(&frame)
        .map_err(|e| Status::internal(format!("from {}: {e}", shared.address)))?;
    if frame.kind == FrameKind::CompactResponse {
        // The provider reads compact requests.
        shared.tx.hint().speak_compact();
    }
    if let Err(e) = limits.check_decoded(header.request_id, &header.metadata) {
        fail_call(shared, &e);
        return Ok(());
    }
    let Some(waiter) = lock(&shared.pending).waiters.remove(&header.request_id) else {
        super::stream::on_response(shared, header, frame.body);
        return Ok(());
    };
    if header.accept_encoding != 0 && !shared.decompresses.load(Ordering::Relaxed) {
        shared.decompresses.store(true, Ordering::Relaxed);
    }
    let metadata = metadata_from_wire(header.metadata);
    let result = if header.code == 0 {
        match Encoding::from_wire(header.encoding) {
            Ok(encoding) => Ok((Response::from_parts(metadata, frame.body.into()), encoding)),
            Err(unknown) => Err(CallError::Failed(Status::internal(format!(
                "provider {} sent a reply compressed with an unknown encoding ({unknown})",
                shared.address
            )))),
        }
    } else {
        let status = Status::from_wire(header.code, &header.message)
            .with_details(header.details)
            .with_metadata(metadata);
        // Refused without being run (the provider is shutting down): as if never sent.
        Err(if header.not_run {
            CallError::NotSent(status)
        } else {
            CallError::Failed(status)
        })
    };
    let _ = waiter.send(result);
    Ok(())
}

/// What a consumer reports when the provider's byte stream cannot be read. A frame over this
/// consumer's limit is the provider's fault, not a limit the caller hit: `Internal`, not the
/// `ResourceExhausted` a provider answers to a request that is too large.
fn read_error(e: &ProtocolError, address: &str) -> Status {
    match e {
        ProtocolError::FrameTooLarge { size, max } => Status::internal(format!(
            "provider {address} sent a frame of {size} bytes, over this consumer's \
             max_frame_size of {max} bytes"
        )),
        _ => Status::unavailable(format!("connection to {address} failed: {e}")),
    }
}

/// Why a `GoAway` closes the connection, or `None` for a provider that is shutting down
/// (code `Unavailable`), whose calls in flight still get their replies.
///
/// Whatever the provider sent, the status is a failure: a `GoAway` with code 0 (`Ok`) is read
/// as `Unavailable`, one that cannot be decoded as `Internal`.
fn go_away_status(frame: &Frame, address: &str) -> Option<Status> {
    let header: GoAwayHeader = match decode_header(frame) {
        Ok(header) => header,
        Err(e) => {
            return Some(Status::internal(format!(
                "provider {address} closed the connection: {e}"
            )))
        }
    };
    let status = match header.code {
        code if code == Code::Unavailable.as_i32() => return None,
        0 => Status::unavailable(printable(&header.message, MAX_PEER_MESSAGE)),
        code => Status::from_wire(code, &header.message),
    };
    let closed = format!("provider {address} closed the connection");
    let message = match status.message() {
        "" => closed,
        said => format!("{closed}: {said}"),
    };
    Some(Status::new(status.code(), message))
}

/// Fails the call whose reply carried metadata over this consumer's limits.
fn fail_call(shared: &ConnShared, e: &MetadataTooLarge) {
    let waiter = lock(&shared.pending).waiters.remove(&e.id);
    if let Some(waiter) = waiter {
        let status = Status::internal(format!(
            "provider {} sent a reply over this consumer's limit: {e}",
            shared.address
        ));
        let _ = waiter.send(Err(CallError::Failed(status)));
    }
}

/// Marks the connection closed and answers every waiter with `reason`.
///
/// After a `GoAway` the provider answers every call it has read before it closes, so a call
/// still waiting when the connection closes was never run: it may be sent elsewhere.
pub(super) fn fail_all(shared: &ConnShared, reason: Status) {
    let never_run = shared.going_away.load(Ordering::Relaxed);
    let waiters = {
        let mut pending = lock(&shared.pending);
        let reason = pending.closed.get_or_insert(reason).clone();
        shared.streams.fail_all(&reason);
        std::mem::take(&mut pending.waiters)
            .into_values()
            .map(move |w| (w, reason.clone()))
            .collect::<Vec<_>>()
    };
    for (waiter, reason) in waiters {
        let error = if never_run {
            CallError::NotSent(reason)
        } else {
            CallError::Failed(reason)
        };
        let _ = waiter.send(Err(error));
    }
}
