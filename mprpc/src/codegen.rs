//! What generated code uses. Not a stable API for hand-written code: it exists so that the
//! output of `mprpc-build` needs nothing but `mprpc` in the user's dependencies.

pub use std::future::Future;
pub use std::sync::Arc;

pub use crate::Body;
pub use bytes::Bytes;
pub use prost;

pub use crate::client::layer::{interceptor as client_interceptor, ClientCall};
pub use crate::client::{BlockingChannel, BlockingStreaming, Channel};
pub use crate::server::layer::ServerCall;
pub use crate::server::{BoxFuture, Intercepted, Service};
pub use crate::stream::{
    send_stream, BoxStream, IntoStreamingRequest, MethodKind, ReplySink, Streaming,
};
pub use crate::{Code, Idempotency, IntoRequest, Request, Response, Status};
pub use futures_util::Stream;

/// The request of a client-streaming handler: its stream of messages.
pub fn client_stream_request<M: prost::Message + Default>(
    request: Request<Body>,
) -> Result<Request<Streaming<M>>, Status> {
    crate::stream::streaming_request::<M>(request).map(|(request, _)| request)
}

/// The request of a bidirectional handler, and the sink for its replies.
pub fn bidi_request<M: prost::Message + Default>(
    request: Request<Body>,
) -> Result<(Request<Streaming<M>>, ReplySink), Status> {
    let (request, sink) = crate::stream::streaming_request::<M>(request)?;
    let sink = sink.ok_or_else(|| Status::internal("this call has no stream of replies"))?;
    Ok((request, sink))
}

/// The request message of a server-streaming handler, and the sink for its replies.
pub fn server_stream_request<M: prost::Message + Default>(
    request: Request<Body>,
) -> Result<(Request<M>, ReplySink), Status> {
    crate::stream::server_streaming_request::<M>(request)
}

/// A client's request for a method that declares `level` in its `.proto`, unless the caller
/// set a level of its own.
pub fn declare_idempotency<T>(request: Request<T>, level: Idempotency) -> Request<T> {
    request.declare_idempotency(level)
}

/// Decodes a request body into the method's message type; a bad body is `InvalidArgument`.
pub fn decode_request<M: prost::Message + Default>(
    service: &str,
    method: &str,
    request: Request<Body>,
) -> Result<Request<M>, Status> {
    let mut failure = None;
    let request = request.map(|body| {
        M::decode(body.into_bytes()).unwrap_or_else(|e| {
            failure = Some(e);
            M::default()
        })
    });
    match failure {
        None => Ok(request),
        Some(e) => Err(Status::invalid_argument(format!(
            "cannot decode the request of {service}/{method}: {e}"
        ))),
    }
}

/// Encodes a reply message.
pub fn encode_response<M: prost::Message>(message: &M) -> Body {
    crate::protocol::encode::encode(message)
}

/// The answer to a method the service does not have.
pub fn unimplemented_method(service: &str, method: &str) -> BoxFuture<Result<Body, Status>> {
    let status = Status::unimplemented(format!("service `{service}` has no method `{method}`"));
    Box::pin(std::future::ready(Err(status)))
}
