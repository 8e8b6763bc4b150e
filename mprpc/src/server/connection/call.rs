//! Reading one request off the wire and handing it to the provider's stack.
//!
//! A request is refused with a status, without running anything, when the provider is
//! shutting down (marked `not_run`, so that its caller sends it to another provider), the
//! service or method is unknown, or its metadata is over the limits. It is
//! dropped without a reply when its caller is no longer waiting: it cancelled the call or
//! closed the connection in the same read, or its deadline passed while the request waited in
//! buffers (as far as the caller's clock can be trusted to tell, see `docs/PROTOCOL.md`).
//! Everything else goes to the stack ([`crate::server::layer::stack`]: limits, metrics,
//! tracing, deadline, panics, the user's layers, the handler), whose outcome is written back
//! as the reply. Its first poll runs right here, on the connection's reader, and a call that
//! has to wait moves to a task of its own.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;

use super::{broken, stream, Connection, Ending, InFlight, Turn};
use crate::compression::{Accepted, Encoding, Outgoing};
use crate::metrics::Side;
use crate::protocol::codec::compact::{check_metadata, request_header};
use crate::protocol::limits::MetadataTooLarge;
use crate::protocol::{
    metadata_from_wire, metadata_to_wire, Frame, OutFrame, Outbox, RequestHeader, ResponseHeader,
};
use crate::server::dispatch::quote;
use crate::server::layer::stack::{Call, Outcome};
use crate::server::service::Service;
use crate::stream::MethodKind;
use crate::sync::lock;
use crate::{Body, Code, Metadata, Status};

/// What becomes of a request read off the wire.
// Lives for a moment on the reader's stack; boxing the call would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Admitted {
    /// It goes to the stack (with its id, its kind, the window of a streaming call and
    /// whether its caller reads `MessageBatch` frames, and the encodings its caller takes
    /// the reply in).
    Call(Call, u64, (MethodKind, u64, bool), Accepted),
    /// It is refused at once with this reply.
    Refused(u64, Status),
    /// The provider is shutting down: refused at once, marked as never run.
    ShuttingDown(u64),
    /// Nobody waits for it: no reply.
    Dropped,
}

/// What becomes of a request once read: what the reader then does with it.
pub(super) enum Step {
    /// Nothing (it was dropped).
    Nothing,
    /// This reply goes out at once (a refusal).
    Reply(OutFrame),
    /// This call's work starts ([`Connection::start`]); a call of this kind.
    Start(u64, CallWork, MethodKind),
}

/// A call's work, boxed once: its first poll runs on the reader, the rest (if any) in a task
/// of its own, and a box moves as a pointer (the work itself is about a kilobyte). It ends
/// with the call's reply frame.
pub(super) type CallWork = std::pin::Pin<Box<dyn Future<Output = OutFrame> + Send>>;

impl Connection {
    /// Decides what becomes of the request in `frame`: refused, dropped, or its work to
    /// start. Not an `async fn`: the reader would hold and move its whole future, the call's
    /// work in it, for every request.
    pub(super) fn on_request(
        &self,
        frame: Frame,
        caller_gone: bool,
        cancelled: &[u64],
        turn: &Turn<'_>,
    ) -> Result<Step, Ending> {
        let (mut call, id, (kind, window, batches), accepted) =
            match self.admit(frame, caller_gone, cancelled, turn.draining)? {
                Admitted::Call(call, id, stream, accepted) => (call, id, stream, accepted),
                Admitted::Refused(id, status) => {
                    self.shared.metrics.rejected(status.code());
                    let reply = OutFrame::Response(error_header(id, &status), Body::new());
                    return Ok(Step::Reply(reply));
                }
                Admitted::ShuttingDown(id) => {
                    let status =
                        Status::unavailable("provider is shutting down; the call was not run");
                    self.shared.metrics.rejected(status.code());
                    let header = ResponseHeader {
                        not_run: true,
                        ..error_header(id, &status)
                    };
                    return Ok(Step::Reply(OutFrame::Response(header, Body::new())));
                }
                Admitted::Dropped => return Ok(Step::Nothing),
            };
        let max_frame_size = self.shared.config.max_frame_size;
        let stream = (kind != MethodKind::Unary).then(|| {
            let counters =
                (self.shared.metrics).method(Side::Server, call.service.name(), call.method);
            let limits = (max_frame_size, counters);
            stream::open(turn, (id, kind, window, batches), &mut call.request, limits)
        });
        let work = self.work(call, (id, accepted));
        let work: CallWork = match stream {
            // A unary call's future has nothing more in it than before streams existed.
            None => Box::pin(work),
            Some(stream) => Box::pin(async move {
                let _stream = stream;
                work.await
            }),
        };
        Ok(Step::Start(id, work, kind))
    }

    /// The call's work: the stack (which decompresses its body), then the reply frame
    /// (compressed if both sides want it, in the call's own task).
    fn work(
        &self,
        call: Call,
        (id, accepted): (u64, Accepted),
    ) -> impl Future<Output = OutFrame> + Send {
        // The stack's future, then the reply's, as the two states of one `Then` (which holds
        // one or the other): in an async block, the call (or the stack's future) would take
        // its room twice, once captured and once moved to be awaited, and the task is boxed
        // at the whole size.
        let serve = self.shared.stack.clone().serve(call);
        let max_frame_size = self.shared.config.max_frame_size;
        let outgoing = self.shared.config.compression.outgoing();
        serve.then(move |outcome| async move {
            if let Ok(reply) = &outcome {
                if outgoing.choose(reply.get_ref().len(), accepted).is_some() {
                    // Compressed off the connection's reader, which polls a call inline.
                    tokio::task::yield_now().await;
                }
            }
            reply_frame(id, outcome, max_frame_size, (outgoing, accepted))
        })
    }

    /// Runs the first poll of `work` here, and returns its reply if that finished it; if it
    /// has to wait, the rest runs in a task of its own, which queues the reply.
    pub(super) async fn start(
        &self,
        mut work: CallWork,
        id: u64,
        turn: &Turn<'_>,
    ) -> Option<OutFrame> {
        // A deliberate choice: the call's first poll runs right here, on the connection's
        // reader. A handler that answers without waiting (most do) then costs no task spawn
        // and no extra wake-up; one that waits is moved to a task of its own and runs in
        // parallel with the rest. (A handler that computes for long without awaiting
        // should use `spawn_blocking`, as anywhere in tokio.)
        let hint = turn.tx.hint();
        hint.enter();
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        if let Poll::Ready(reply) = first {
            hint.leave();
            return Some(reply);
        }
        self.wait_for(work, id, turn);
        None
    }

    /// Moves a call that has to wait to a task of its own, which queues its reply when done.
    /// The call is counted in flight on the connection already (its task counts it out).
    pub(super) fn wait_for(&self, work: CallWork, id: u64, turn: &Turn<'_>) {
        let replier = Replier(turn.tx.clone());
        // Only a call that waits is in the table of calls a `Cancel` can stop, so only its task
        // removes its entry when done (a call answered in its first poll takes no lock). Spawned
        // while holding the lock, so that the task cannot remove its entry before it exists.
        let in_flight = turn.in_flight.clone();
        let mut guard = lock(turn.in_flight);
        let handle = turn.calls.spawn(async move {
            let _entry = Entry { in_flight, id };
            let reply = work.await;
            let _ = replier.0.send(reply).await;
        });
        guard.insert(id, handle.abort_handle());
    }

    /// Decodes the request and decides what becomes of it: the wire's own checks.
    fn admit(
        &self,
        frame: Frame,
        caller_gone: bool,
        cancelled: &[u64],
        draining: bool,
    ) -> Result<Admitted, Ending> {
        let metrics = &self.shared.metrics;
        if caller_gone {
            metrics.rejected(Code::Cancelled);
            return Ok(Admitted::Dropped);
        }
        // A large header is counted before it is decoded: one of a million entries is never
        // built. A small one is counted once decoded.
        let limits = self.shared.config.metadata_limits();
        if let Err(e) = check_metadata(&limits, &frame, 5) {
            return Ok(Admitted::Refused(e.id, metadata_refusal(&e)));
        }
        let header = request_header(&frame).map_err(broken)?;
        if header.compact {
            // The caller reads compact responses (and a compact request says so too).
            self.busy.speak_compact();
        }
        if let Err(e) = limits.check_decoded(header.request_id, &header.metadata) {
            return Ok(Admitted::Refused(e.id, metadata_refusal(&e)));
        }
        let id = header.request_id;
        if cancelled.contains(&id) {
            metrics.rejected(Code::Cancelled);
            return Ok(Admitted::Dropped);
        }
        if draining {
            return Ok(Admitted::ShuttingDown(id));
        }
        let (service, method) = match self.route(&header) {
            Ok(found) => found,
            Err(status) => return Ok(Admitted::Refused(id, status)),
        };
        let kind = match call_kind(service.as_ref(), method, header.kind) {
            Ok(kind) => kind,
            Err(status) => return Ok(Admitted::Refused(id, status)),
        };
        let encoding = match Encoding::from_wire(header.encoding) {
            Ok(encoding) => encoding,
            Err(unknown) => {
                let status = Status::unimplemented(format!(
                    "the request is compressed with an encoding this provider does not know \
                     ({unknown}; it knows 1 gzip and 2 zstd)"
                ));
                return Ok(Admitted::Refused(id, status));
            }
        };
        let accepted = Accepted::from_wire(header.accept_encoding);
        let arrived = Instant::now();
        let deadline = self.deadline(&header, arrived);
        if deadline.is_some_and(|d| d <= arrived) {
            // The caller stopped waiting before the request was read: nobody wants a reply.
            tracing::debug!(peer = %self.peer, service = service.name(), method, "dropped a call whose deadline passed before it was read");
            metrics.rejected(Code::DeadlineExceeded);
            return Ok(Admitted::Dropped);
        }
        let trace = header.trace();
        let mut metadata = metadata_from_wire(header.metadata);
        metadata.set_trace_ids(trace);
        let request = self.request(frame.body, metadata, deadline);
        let call = Call {
            service,
            method,
            request,
            arrived,
            connection_calls: self.busy.count(),
            encoding,
        };
        let stream = (kind, header.window, header.batches);
        Ok(Admitted::Call(call, id, stream, accepted))
    }

    /// The hosted service and method the request names. The names are compared as bytes:
    /// only a refusal reads them as text.
    fn route(&self, header: &RequestHeader) -> Result<(Arc<dyn Service>, &'static str), Status> {
        let router = &self.shared.router;
        let Some(service) = router.get_bytes(&header.service).cloned() else {
            return Err(router.unknown_service(&String::from_utf8_lossy(&header.service)));
        };
        let Some(method) = service
            .methods()
            .iter()
            .copied()
            .find(|m| m.as_bytes() == header.method)
        else {
            return Err(Status::unimplemented(format!(
                "service `{}` has no method `{}`",
                service.name(),
                quote(&String::from_utf8_lossy(&header.method))
            )));
        };
        Ok((service, method))
    }

    /// When the caller will give up on the call, on this process's clock: `timeout_us`
    /// after the request was read, less the time it spent in buffers before that when the
    /// caller's clock may be trusted to tell (the same host, or `caller_clock =
    /// "synchronized"`).
    fn deadline(&self, header: &RequestHeader, arrived: Instant) -> Option<Instant> {
        if header.timeout_us == 0 {
            return None;
        }
        let budget = Duration::from_micros(header.timeout_us);
        let waited = if self.trust_caller_clock && header.sent_unix_us > 0 {
            let now_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            Duration::from_micros(now_us.saturating_sub(header.sent_unix_us))
        } else {
            Duration::ZERO
        };
        Some(arrived + budget.saturating_sub(waited))
    }
}

/// The kind of call a request opens, which must be its method's.
fn call_kind(service: &dyn Service, method: &str, asked: u32) -> Result<MethodKind, Status> {
    let declared = service
        .streaming_methods()
        .iter()
        .find(|(name, _)| *name == method)
        .map_or(MethodKind::Unary, |(_, kind)| *kind);
    match MethodKind::from_wire(asked) {
        Some(kind) if kind == declared => Ok(kind),
        Some(kind) => Err(Status::unimplemented(format!(
            "`{}/{method}` is a {declared} method; the call was made as {kind}",
            service.name()
        ))),
        None => Err(Status::invalid_argument(format!(
            "unknown call kind {asked} (0 unary, 1 client-streaming, 2 server-streaming, 3 both)"
        ))),
    }
}

/// The status refusing a request whose metadata is over the limits.
fn metadata_refusal(e: &MetadataTooLarge) -> Status {
    Status::resource_exhausted(format!(
        "the request's metadata ({} entries, {} bytes) exceeds the provider's limit \
         (max_metadata_entries {}, max_metadata_bytes {})",
        e.entries, e.bytes, e.limits.max_entries, e.limits.max_bytes
    ))
}

/// A waiting call's entry in the table of calls a `Cancel` can stop, removed when its task
/// ends, however it ends (also if its reply's encoding panics). Only the entry of this task:
/// a peer that reuses the id once the reply is out may already have put a new call under it.
struct Entry {
    in_flight: InFlight,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut table = lock(&self.in_flight);
        let ours = tokio::task::try_id()
            .is_some_and(|task| table.get(&self.id).is_some_and(|h| h.id() == task));
        if ours {
            table.remove(&self.id);
        }
    }
}

/// Where a waiting call's reply goes (the connection's queue); the call, counted in flight
/// on the connection as it started, is counted out when this is dropped (also when the call
/// is aborted).
struct Replier(Outbox);

impl Drop for Replier {
    fn drop(&mut self) {
        self.0.hint().leave();
    }
}

/// The reply frame for a call's outcome, its body compressed when the provider's settings
/// and the caller's accepted encodings agree. A reply too large for a frame is replaced by a
/// `ResourceExhausted` failure.
fn reply_frame(
    id: u64,
    outcome: Outcome,
    max_frame_size: usize,
    (outgoing, accepted): (Outgoing, Accepted),
) -> OutFrame {
    match outcome {
        Ok(reply) => {
            let (metadata, body) = reply.into_parts();
            let (body, encoding) = outgoing.apply(body, accepted);
            if body.len() + 64 > max_frame_size {
                let status = Status::resource_exhausted(format!(
                    "the reply of {} bytes{} exceeds the maximum frame size of \
                     {max_frame_size} bytes",
                    body.len(),
                    if encoding.is_some() {
                        " (compressed)"
                    } else {
                        ""
                    },
                ));
                return OutFrame::Response(error_header(id, &status), Body::new());
            }
            let mut header = ok_header(id, metadata, encoding);
            if accepted != Accepted::NONE {
                header.accept_encoding = Accepted::ALL.wire();
            }
            OutFrame::Response(header, body)
        }
        Err(status) => OutFrame::Response(error_header(id, &status), Body::new()),
    }
}

fn ok_header(request_id: u64, metadata: Metadata, encoding: Option<Encoding>) -> ResponseHeader {
    ResponseHeader {
        request_id,
        code: 0,
        message: String::new(),
        metadata: metadata_to_wire(metadata),
        details: Default::default(),
        not_run: false,
        encoding: encoding.map_or(0, Encoding::wire),
        accept_encoding: 0,
    }
}

/// The header of a failed call. A failure is never sent with code 0, which the caller would
/// read as success: a handler's `Err(Status)` with code `Ok` goes out as `Unknown`.
pub(super) fn error_header(request_id: u64, status: &Status) -> ResponseHeader {
    let (code, message) = match status.code() {
        Code::Ok => (
            Code::Unknown,
            format!("{} (the handler failed with code Ok)", status.message()),
        ),
        code => (code, status.message().to_owned()),
    };
    ResponseHeader {
        request_id,
        code: code.as_i32(),
        message,
        metadata: metadata_to_wire(status.metadata().clone()),
        details: status.details().clone(),
        not_run: false,
        encoding: 0,
        accept_encoding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_never_sent_as_ok() {
        let header = error_header(3, &Status::new(Code::Ok, "odd"));
        assert_eq!(header.code, Code::Unknown.as_i32());
        assert_eq!(header.message, "odd (the handler failed with code Ok)");
        let header = error_header(3, &Status::not_found("x"));
        assert_eq!((header.code, header.message.as_str()), (5, "x"));
    }
}
