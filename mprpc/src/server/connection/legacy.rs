//! A connection in the original C++ mprpc's protocol (`protocol::legacy`): one request, read
//! in as many pieces as it comes (within `frame_timeout`), run through the same stack as
//! mprpc's own calls (admission, auth, metrics, tracing, layers), answered with the bare
//! response message and a half-close.
//!
//! The original's callers read no status: a reply is whatever message comes before the FIN,
//! and the example caller passes a null controller, so a caller told of a failure crashes.
//! Every failure is therefore answered with a valid response message
//! ([`failure_reply`]): the method's response with its `ResultCode result = 1` field (the
//! original's convention) holding the status, else the empty message.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::unary::unary_method;
use super::{Connection, Io};
use crate::metrics::Side;
use crate::protocol::legacy::{LegacyDecoder, LegacyRequest};
use crate::server::dispatch::{quote, Router};
use crate::server::layer::stack::Call;
use crate::server::service::Service;
use crate::{Metadata, Status};

mod reply;

pub(crate) use reply::failure_reply;

/// A hosted service and one of its methods.
type Route = (Arc<dyn Service>, &'static str);

/// A call that cannot be routed: its service, when there is one, and why.
type Unrouted = (Option<Arc<dyn Service>>, Status);

/// Why a legacy connection closed without an answer.
struct Unanswered(&'static str, Status);

impl Connection {
    /// Serves one call of the original's protocol, then closes.
    pub(crate) async fn run_legacy<S: Io>(self, mut stream: S) {
        let metrics = self.shared.metrics.clone();
        metrics.connection(Side::Server, 1);
        match self.legacy_call(&mut stream).await {
            Ok(reply) => {
                let write = async {
                    stream.write_all(&reply).await?;
                    stream.shutdown().await
                };
                let limit = self.shared.config.write_timeout;
                if !matches!(tokio::time::timeout(limit, write).await, Ok(Ok(()))) {
                    tracing::debug!(peer = %self.peer, "a legacy caller did not take its reply");
                }
            }
            Err(Unanswered(kind, status)) => {
                metrics.protocol_error(kind);
                self.shared.complaints.warn(kind, self.peer, &status);
            }
        }
        metrics.connection(Side::Server, -1);
    }

    /// Reads the request and runs it: the reply to send, or why there is none.
    async fn legacy_call<S: Io>(&self, stream: &mut S) -> Result<Bytes, Unanswered> {
        let request = self.read_legacy(stream).await?;
        let (service, method) = match route(&self.shared.router, &request) {
            Ok(found) => found,
            Err((service, status)) => {
                self.shared.metrics.rejected(status.code());
                return Ok(service.map_or_else(Bytes::new, |s| {
                    failure_reply(s.as_ref(), &request.method, &status)
                }));
            }
        };
        if *self.shutdown.borrow() {
            let status = Status::unavailable("provider is shutting down; the call was not run");
            self.shared.metrics.rejected(status.code());
            return Ok(failure_reply(service.as_ref(), method, &status));
        }
        let arrived = Instant::now();
        let request = self.request(request.args, Metadata::new(), None);
        let call = Call {
            service: service.clone(),
            method,
            request,
            arrived,
            connection_calls: 1,
            encoding: None,
        };
        let outcome = tokio::select! {
            outcome = self.shared.stack.clone().serve(call) => outcome,
            () = self.force_close.cancelled() => Err(Status::unavailable(
                "the provider shut down before the call finished",
            )),
        };
        Ok(match outcome {
            Ok(reply) => reply.into_inner().into_bytes(),
            Err(status) => failure_reply(service.as_ref(), method, &status),
        })
    }

    /// Reads one whole request, within `frame_timeout` of its first byte.
    async fn read_legacy<S: Io>(&self, stream: &mut S) -> Result<LegacyRequest, Unanswered> {
        let config = &self.shared.config;
        let mut decoder = LegacyDecoder::new(config.max_frame_size);
        let mut buf = BytesMut::with_capacity(1024);
        let deadline = tokio::time::Instant::now() + config.frame_timeout;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => {}
                Err(e) => {
                    return Err(Unanswered(
                        "legacy_bad_request",
                        Status::invalid_argument(e.to_string()),
                    ))
                }
            }
            // Grown as the bytes come (at most doubling what is here), never to the size a
            // header announces: a peer announcing 16 MiB and sending nothing costs little.
            buf.reserve(buf.len().max(4096));
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => read,
                () = self.force_close.cancelled() => {
                    return Err(Unanswered("legacy_shutdown", Status::unavailable("shut down mid-request")));
                }
            };
            match read {
                Ok(Ok(0)) => {
                    return Err(Unanswered(
                        "legacy_truncated",
                        Status::invalid_argument(format!(
                            "closed after {} bytes of a request",
                            buf.len()
                        )),
                    ))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(Unanswered("io", Status::unavailable(e.to_string())));
                }
                Err(_) => {
                    return Err(Unanswered(
                        "frame_timeout",
                        Status::deadline_exceeded(format!(
                            "a request not whole within frame_timeout ({:?})",
                            config.frame_timeout
                        )),
                    ))
                }
            }
        }
    }
}

/// The hosted service and method a legacy request names. The original's service names are
/// unqualified (`UserServiceRpc`): a full name is taken as it is, else the one hosted
/// service whose last part is that name; two such services (in two packages) are ambiguous
/// and the call is refused. A failure comes with the service, when there is one.
fn route(router: &Router, request: &LegacyRequest) -> Result<Route, Unrouted> {
    let name = request.service.as_str();
    let service = match router.get(name) {
        Some(service) => service.clone(),
        None => {
            let mut matching = router
                .services()
                .filter(|s| s.name().rsplit('.').next() == Some(name));
            match (matching.next(), matching.next()) {
                (Some(service), None) => service.clone(),
                (None, _) => return Err((None, router.unknown_service(name))),
                (Some(a), Some(b)) => {
                    return Err((
                        None,
                        Status::unimplemented(format!(
                            "`{}` is ambiguous: this provider hosts `{}` and `{}`",
                            quote(name),
                            a.name(),
                            b.name()
                        )),
                    ))
                }
            }
        }
    };
    match unary_method(&service, &request.method, "the original's protocol") {
        Ok(method) => Ok((service, method)),
        Err(e) => Err((Some(service), e.into_status())),
    }
}
