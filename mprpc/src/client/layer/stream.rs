//! The channel's built-ins for a streaming call: the bearer token and the trace ids go into
//! its metadata, its deadline is the request's own or `stream_timeout` (no more than the
//! incoming call has left, inside a handler) and covers the whole stream, and metrics count
//! it from its opening to its end. Through the outer layers, a streaming call runs in a task
//! of its own, so that each layer sees its start and its end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{auth, deadline, trace, ClientCall, Next};
use crate::client::stream::Outgoing;
use crate::client::Channel;
use crate::metrics::Side;
use crate::stream::{MethodKind, Streaming};
use crate::sync::lock;
use crate::{Body, Request, Response, Status};

impl Channel {
    /// Opens a streaming call past the outer layers.
    pub(crate) async fn stream_unlayered<T: 'static>(
        &self,
        (service, method, kind): (&str, &str, MethodKind),
        mut request: Request<Body>,
        requests: Option<Outgoing>,
        decode: crate::stream::Decode<T>,
    ) -> Result<Streaming<T>, Status> {
        auth::add_token(&self.inner.token, &mut request)?;
        let span = trace::start(service, method, &mut request);
        let own = request.timeout().or(self.inner.config.stream_timeout);
        // Without a budget of its own, only the incoming call's bounds the stream.
        let (timeout, _) = deadline::budget(own.unwrap_or(Duration::MAX));
        let deadline = (timeout < Duration::from_secs(100 * 365 * 24 * 3600))
            .then(|| tokio::time::Instant::now() + timeout);
        let counters = self.inner.metrics.method(Side::Client, service, method);
        let record = counters.start();
        let open = self
            .open_stream_on_provider((service, method, kind), request, deadline)
            .instrument(span.clone());
        let opened = match deadline {
            Some(at) => tokio::time::timeout_at(at, open).await.unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "{service}/{method}: the stream did not open within {timeout:?}"
                )))
            }),
            None => open.await,
        };
        let mut opened = match opened {
            Ok(opened) => opened,
            Err(status) => {
                record.finish(status.code());
                return Err(status);
            }
        };
        let stop = tokio_util::sync::CancellationToken::new();
        if let Some(requests) = requests {
            opened.pump(requests, stop.clone(), counters.clone());
        }
        let mut streaming = Streaming::new(opened.inbound.clone(), decode)
            .on_drop(opened.canceller())
            // The call's span lasts as long as its stream.
            .hold((stop.drop_guard(), span))
            .counted(counters, Some(record));
        if let Some(at) = deadline {
            streaming = streaming.with_deadline(at);
        }
        Ok(streaming)
    }
}

/// A streaming call on its way through the outer layers: what the innermost step needs to
/// open it, and where it hands the opened stream to the caller. In the request's
/// extensions, taken out by the innermost step.
#[derive(Clone)]
pub(super) struct StreamOpening(Arc<Mutex<Option<Opening>>>);

struct Opening {
    kind: MethodKind,
    requests: Option<Outgoing>,
    opened: oneshot::Sender<Result<Streaming<Bytes>, Status>>,
}

impl Channel {
    /// Opens a streaming call through the outer layers. They run in a task of their own
    /// for as long as the stream lasts: each sees the call start, then its end (its final
    /// status, or `Cancelled` when the caller drops the stream), as with a unary call; the
    /// caller gets the stream as soon as it is open.
    pub(crate) async fn stream_layered(
        &self,
        (service, method, kind): (&str, &str, MethodKind),
        mut request: Request<Body>,
        requests: Option<Outgoing>,
    ) -> Result<Streaming<Bytes>, Status> {
        let (opened, opened_rx) = oneshot::channel();
        let opening = Opening {
            kind,
            requests,
            opened,
        };
        let opening = StreamOpening(Arc::new(Mutex::new(Some(opening))));
        request.extensions_mut().insert(opening);
        let channel = self.clone();
        let (service, method) = (service.to_owned(), method.to_owned());
        let layers = tokio::spawn(async move {
            let call = ClientCall::new(&service, &method, request);
            Next::new(&channel).run(call).await
        });
        match opened_rx.await {
            Ok(opened) => opened,
            // The layers answered without the innermost step opening the stream.
            Err(_) => match layers.await {
                Ok(Err(status)) => Err(status),
                Ok(Ok(_)) => Err(Status::internal(
                    "a client layer answered a streaming call itself; a layer may refuse a \
                     stream, not answer it",
                )),
                Err(e) => Err(Status::internal(format!("a client layer failed: {e}"))),
            },
        }
    }

    /// The innermost step of a streaming call through the outer layers: opens the stream,
    /// hands it to the caller, and returns once it has ended.
    pub(super) async fn stream_innermost(
        &self,
        (service, method): (&str, &str),
        request: Request<Body>,
        opening: StreamOpening,
    ) -> Result<Response<Body>, Status> {
        let Some(Opening {
            kind,
            requests,
            opened,
        }) = lock(&opening.0).take()
        else {
            return Err(Status::failed_precondition(
                "a client layer sent a streaming call twice; a stream is opened once",
            ));
        };
        let (ended, ended_rx) = oneshot::channel();
        let call = (service, method, kind);
        match self
            .stream_unlayered(call, request, requests, crate::stream::encoded())
            .await
        {
            Ok(stream) => {
                let stream = stream.on_end(move |ending| {
                    let _ = ended.send(ending);
                });
                if opened.send(Ok(stream)).is_err() {
                    return Err(Status::cancelled(
                        "the caller left before the stream opened",
                    ));
                }
                match ended_rx.await {
                    Ok(Ok(trailers)) => Ok(Response::from_parts(trailers, Body::new())),
                    Ok(Err(status)) => Err(status),
                    Err(_) => Err(Status::cancelled("the stream was dropped")),
                }
            }
            Err(status) => {
                let _ = opened.send(Err(status.clone()));
                Err(status)
            }
        }
    }
}
