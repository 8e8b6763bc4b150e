//! What the provider hands a streaming handler: the request's stream of messages and the
//! sink for its replies, carried in the request's extensions down the stack (so the layers
//! see a streaming call like any other, from its start to its end), and taken out by the
//! generated adapter.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use prost::Message;

use super::batch::Batch;
use super::{Decode, Inbound, Outbound, Streaming};
use crate::metrics::MethodMetrics;
use crate::sync::lock;
use crate::{Body, Request, Status};

/// A streaming call's connection to the wire, in its request's extensions until the
/// adapter takes it.
#[derive(Clone)]
pub(crate) struct StreamIo(Arc<Mutex<Option<IoParts>>>);

pub(crate) struct IoParts {
    pub(crate) inbound: Option<Arc<Inbound>>,
    pub(crate) sink: Option<ReplySink>,
    /// The method's counters, for the messages read.
    pub(crate) counters: Arc<MethodMetrics>,
}

impl StreamIo {
    pub(crate) fn new(
        inbound: Option<Arc<Inbound>>,
        sink: Option<ReplySink>,
        counters: Arc<MethodMetrics>,
    ) -> StreamIo {
        StreamIo(Arc::new(Mutex::new(Some(IoParts {
            inbound,
            sink,
            counters,
        }))))
    }

    /// Takes the parts out of a request.
    pub(crate) fn take<T>(request: &mut Request<T>) -> Result<IoParts, Status> {
        request
            .extensions_mut()
            .remove::<StreamIo>()
            .and_then(|io| lock(&io.0).take())
            .ok_or_else(|| {
                Status::internal("a streaming handler was called without its stream (was the call made as unary?)")
            })
    }
}

impl IoParts {
    /// The request's stream of messages, decoded as `M`.
    pub(crate) fn requests<M: Message + Default>(&mut self) -> Result<Streaming<M>, Status> {
        let inbound = self
            .inbound
            .take()
            .ok_or_else(|| Status::internal("this call has no stream of requests"))?;
        Ok(Streaming::new(inbound, requests::<M>()).counted(self.counters.clone(), None))
    }

    /// The sink for the replies.
    pub(crate) fn sink(&mut self) -> Result<ReplySink, Status> {
        self.sink
            .take()
            .ok_or_else(|| Status::internal("this call has no stream of replies"))
    }
}

/// [`Decode`] for a stream of requests: a bad one is `InvalidArgument`.
pub(crate) fn requests<M: Message + Default>() -> Decode<M> {
    Decode {
        decode: |body| M::decode(body),
        invalid: |e| Status::invalid_argument(format!("cannot decode a streamed message: {e}")),
    }
}

/// Where a streaming handler's replies go: the call's stream on the wire, with its
/// flow control.
#[derive(Debug)]
pub struct ReplySink {
    outbound: Outbound,
    max_frame_size: usize,
    /// The caller reads `MessageBatch` frames.
    batched: bool,
    counters: Arc<MethodMetrics>,
}

impl ReplySink {
    pub(crate) fn new(
        outbound: Outbound,
        (max_frame_size, batched): (usize, bool),
        counters: Arc<MethodMetrics>,
    ) -> ReplySink {
        ReplySink {
            outbound,
            max_frame_size,
            batched,
            counters,
        }
    }

    /// The failure of a reply of `size` bytes over the frame limit.
    fn too_large(&self, size: usize) -> Status {
        Status::resource_exhausted(format!(
            "a streamed reply of {size} bytes exceeds the maximum frame size of {} bytes",
            self.max_frame_size
        ))
    }

    /// Sends one encoded reply, once the caller has credit for it. A message over the
    /// frame limit fails the call with `ResourceExhausted`; a call the caller left fails
    /// with `Cancelled`.
    pub async fn send(&self, body: impl Into<Body>) -> Result<(), Status> {
        let body = body.into();
        if body.len() + 64 > self.max_frame_size {
            return Err(self.too_large(body.len()));
        }
        self.outbound
            .send(body)
            .await
            .map_err(|_| Status::cancelled("the caller is gone"))?;
        self.counters.stream_messages_sent(1);
        Ok(())
    }
}

/// Sends every message of a handler's `replies` down `sink`, and returns what the call's
/// final `Response` carries: nothing (the messages went as the stream), or the failure the
/// stream ended with (after the messages before it).
///
/// Replies that are ready together go together: after waiting for one, it takes the others
/// the stream has ready (up to about 60 KiB or 1024 messages, and the frame limit), encodes
/// them straight into one buffer (one `MessageBatch` frame, for a caller that reads them)
/// and sends them as flow control allows (`batch.rs`). A stream that produces one reply at
/// a time sends each at once.
pub async fn send_stream<S, M>(sink: ReplySink, replies: S) -> Result<Body, Status>
where
    S: Stream<Item = Result<M, Status>> + Send,
    M: Message,
{
    let mut replies = std::pin::pin!(replies);
    let mut batch = Batch::new(sink.outbound.id(), sink.batched, sink.max_frame_size);
    // A reply that did not fit in the last batch's frame: the first of the next.
    let mut held: Option<M> = None;
    // Set once the stream has ended: `Ok` for its end, `Err` for its failure.
    let mut ended: Option<Result<(), Status>> = None;
    while ended.is_none() || held.is_some() {
        let first = match held.take() {
            Some(reply) => Ok(reply),
            None => match replies.next().await {
                None => break,
                Some(reply) => reply,
            },
        };
        if let Some(end) = fill(&sink, replies.as_mut(), first, &mut batch, &mut held) {
            ended = Some(end);
        }
        let sent = sink
            .outbound
            .send_batch(&mut batch)
            .await
            .map_err(|_| Status::cancelled("the caller is gone"))?;
        sink.counters.stream_messages_sent(sent as u64);
    }
    match ended {
        Some(Err(status)) => Err(status),
        _ => Ok(Body::new()),
    }
}

/// Adds `first` to `batch`, then every reply `replies` has ready, polled without waiting
/// (with a waker that does nothing: a stream that is not ready is polled again, and waited
/// for, by the caller), until the batch is full or a reply does not fit in its frame (that
/// one is `held` for the next). Returns the stream's end, if it came: `Ok` for its end, `Err`
/// for its failure (the handler's, or a reply over the frame limit).
fn fill<S, M>(
    sink: &ReplySink,
    mut replies: Pin<&mut S>,
    first: Result<M, Status>,
    batch: &mut Batch,
    held: &mut Option<M>,
) -> Option<Result<(), Status>>
where
    S: Stream<Item = Result<M, Status>>,
    M: Message,
{
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let mut next = Poll::Ready(Some(first));
    loop {
        // Each reply is looked at where the stream put it, not moved out of its `Poll`
        // (one move per reply showed in the profile).
        let Poll::Ready(Some(Ok(reply))) = &next else {
            return match next {
                Poll::Ready(Some(Err(status))) => Some(Err(status)),
                Poll::Ready(None) => Some(Ok(())),
                _ => None,
            };
        };
        let size = reply.encoded_len();
        if size + 64 > sink.max_frame_size {
            return Some(Err(sink.too_large(size)));
        }
        if !batch.fits(size) {
            if let Poll::Ready(Some(Ok(reply))) = next {
                *held = Some(reply);
            }
            return None;
        }
        batch.push(reply, size);
        if batch.full() {
            return None;
        }
        next = replies.as_mut().poll_next(&mut cx);
    }
}

/// The request's stream of messages, for a client-streaming or bidirectional handler.
pub(crate) fn streaming_request<M: Message + Default>(
    mut request: Request<Body>,
) -> Result<(Request<Streaming<M>>, Option<ReplySink>), Status> {
    let mut parts = StreamIo::take(&mut request)?;
    let requests = parts.requests::<M>()?;
    let sink = parts.sink.take();
    Ok((request.map(|_| requests), sink))
}

/// The one request message and the reply sink, for a server-streaming handler.
pub(crate) fn server_streaming_request<M: Message + Default>(
    mut request: Request<Body>,
) -> Result<(Request<M>, ReplySink), Status> {
    let mut parts = StreamIo::take(&mut request)?;
    let sink = parts.sink()?;
    let mut failure = None;
    let request = request.map(|body| {
        M::decode(body.into_bytes()).unwrap_or_else(|e| {
            failure = Some(e);
            M::default()
        })
    });
    match failure {
        None => Ok((request, sink)),
        Some(e) => Err(Status::invalid_argument(format!(
            "cannot decode the request: {e}"
        ))),
    }
}
