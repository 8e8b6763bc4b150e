//! Streaming calls on a [`Channel`]: server streaming, client streaming and both ways,
//! typed (what generated clients call) and raw (encoded messages, for tools).
//!
//! A stream goes to one provider, chosen as a unary call's is; one that cannot be opened
//! there (no connection, a provider going away) is opened on the next. Once open it stays
//! on its provider: a stream is not retried or hedged.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use prost::Message;

use super::connection::{CallError, OpenStream};
use super::Channel;
use crate::stream::{encoded, Decode, IntoStreamingRequest, MethodKind, Streaming};
use crate::{Body, Request, Status};

pub(crate) use crate::stream::EncodedStream as Outgoing;

impl Channel {
    /// Calls a server-streaming method: one request, a stream of replies.
    pub async fn server_streaming<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: Request<Req>,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default + 'static,
    {
        let request = request.map(|m| crate::protocol::encode::encode(&m));
        let kind = MethodKind::ServerStreaming;
        self.open_typed((service, method, kind), request, None, replies::<Resp>())
            .await
    }

    /// Calls a client-streaming method: a stream of requests, one reply.
    pub async fn client_streaming<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: impl IntoStreamingRequest<Req>,
    ) -> Result<Resp, Status>
    where
        Req: Message + 'static,
        Resp: Message + Default + 'static,
    {
        let (request, requests) = split(request.into_streaming_request());
        let kind = MethodKind::ClientStreaming;
        let mut replies = self
            .open_typed(
                (service, method, kind),
                request,
                Some(requests),
                replies::<Resp>(),
            )
            .await?;
        match replies.message().await? {
            Some(reply) => Ok(reply),
            // An empty message is encoded as no bytes at all.
            None => Ok(Resp::default()),
        }
    }

    /// Calls a bidirectional-streaming method: a stream of requests, a stream of replies.
    pub async fn streaming<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: impl IntoStreamingRequest<Req>,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: Message + 'static,
        Resp: Message + Default + 'static,
    {
        let (request, requests) = split(request.into_streaming_request());
        let kind = MethodKind::Bidirectional;
        self.open_typed(
            (service, method, kind),
            request,
            Some(requests),
            replies::<Resp>(),
        )
        .await
    }

    /// Opens a streaming call of `kind` with encoded messages: `request` carries the one
    /// request of a server-streaming call (else its body is ignored) and the call's metadata
    /// and timeout; `requests` the stream of a client-streaming or bidirectional one. The
    /// replies come back encoded; a client-streaming call's one reply is its stream's one
    /// message. A reply read from the wire is one buffer, hence `Bytes` (the requests are
    /// [`Body`]s: a large one may be in pieces).
    pub async fn streaming_raw(
        &self,
        service: &str,
        method: &str,
        kind: MethodKind,
        request: Request<impl Into<Body>>,
        requests: Option<crate::stream::EncodedStream>,
    ) -> Result<Streaming<Bytes>, Status> {
        let request = request.map(Into::into);
        if kind == MethodKind::Unary {
            return Err(Status::invalid_argument(
                "streaming_raw opens streaming calls; call unary methods with unary_raw",
            ));
        }
        let requests = match (kind.client_streams(), requests) {
            (true, Some(requests)) => Some(requests),
            (true, None) => Some(Box::pin(futures_util::stream::empty()) as Outgoing),
            (false, _) => None,
        };
        self.open_typed((service, method, kind), request, requests, encoded())
            .await
    }

    async fn open_typed<T: 'static>(
        &self,
        call: (&str, &str, MethodKind),
        request: Request<Body>,
        requests: Option<Outgoing>,
        decode: Decode<T>,
    ) -> Result<Streaming<T>, Status> {
        if self.layers.outer.is_empty() {
            return self.stream_unlayered(call, request, requests, decode).await;
        }
        let stream = self.stream_layered(call, request, requests).await?;
        Ok(stream.retype(decode))
    }

    /// Opens the stream on the provider the balancer chooses, or the next one while it
    /// cannot be opened.
    pub(crate) async fn open_stream_on_provider(
        &self,
        (service, method, kind): (&str, &str, MethodKind),
        mut request: Request<Body>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<OpenStream, Status> {
        let state = self.service(service).await?;
        let (instances, endpoints) = self.endpoints_of(&state);
        if instances.is_empty() {
            return Err(Status::unavailable(format!(
                "no providers of `{service}` are known"
            )));
        }
        let policy = self.inner.config.load_balance;
        let hash_key = request.hash_key().map(str::to_owned);
        let first = state
            .balancer
            .first(policy, &instances, &endpoints, hash_key.as_deref());
        let order = state
            .balancer
            .order(policy, first, &instances, hash_key.as_deref());
        let order = std::iter::once(first).chain(order.into_iter().filter(|i| *i != first));
        let metadata = std::mem::take(request.metadata_mut());
        let body = request.into_inner();
        let mut last_error = None;
        for i in order {
            let endpoint = &endpoints[i];
            if endpoint.is_legacy() {
                last_error = Some(Status::unimplemented(format!(
                    "the provider at {} speaks the original C++ mprpc's protocol, which has no \
                     streaming calls",
                    endpoint.address()
                )));
                continue;
            }
            if endpoint.in_backoff() && last_error.is_none() && endpoints.len() > 1 {
                continue;
            }
            let conn = match endpoint
                .connection(
                    &self.inner.config,
                    &self.inner.metrics,
                    self.tls_settings()?,
                )
                .await
            {
                Ok(conn) => conn,
                Err(status) => {
                    last_error = Some(status);
                    continue;
                }
            };
            let timeout =
                deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            match conn
                .open_stream(
                    (service, method, kind),
                    metadata.clone(),
                    timeout,
                    body.clone(),
                )
                .await
            {
                Ok(opened) => return Ok(opened),
                Err(CallError::NotSent(status)) => last_error = Some(status),
                Err(CallError::Failed(status)) => return Err(status),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Status::unavailable(format!("no provider of `{service}` could be reached"))
        }))
    }
}

/// The call's context, and its stream of messages encoded.
fn split<Req: Message + 'static>(
    request: Request<std::pin::Pin<Box<dyn Stream<Item = Req> + Send>>>,
) -> (Request<Body>, Outgoing) {
    let mut requests = None;
    let request = request.map(|stream| {
        requests = Some(stream.map(|m| crate::protocol::encode::encode(&m)).boxed());
        Body::new()
    });
    (request, requests.expect("set by map"))
}

/// [`Decode`] for a stream of replies: a bad one is `Internal`.
fn replies<M: Message + Default>() -> Decode<M> {
    Decode {
        decode: |body| M::decode(body),
        invalid: |e| Status::internal(format!("cannot decode a streamed reply: {e}")),
    }
}
