//! A connection in gRPC (`[server.protocols] grpc`): HTTP/2 served by hyper, each unary call
//! (`POST /package.Service/Method`, `application/grpc`, one length-prefixed message) run
//! through the same stack as mprpc's own calls (admission, auth, metrics, tracing, layers).
//! `grpc-timeout` is the call's deadline, the other headers its metadata; the reply is the
//! length-prefixed message with `grpc-status` in trailers, a failure a "trailers-only"
//! response (`grpc-status` and `grpc-message` in the headers). gRPC's status codes are
//! mprpc's. `grpc.health.v1.Health/Check` (`health.rs`) and server reflection
//! (`reflection.rs`) are answered here.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, HeaderValue, Method};
use http_body_util::{Either, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::unary::{metadata_from_headers, put_metadata, read_body, unary_method, BodyError};
use super::{Connection, Io};
use crate::compression::{Accepted, Encoding};
use crate::server::dispatch::quote;
use crate::server::layer::stack::Call;
use crate::{Code, Metadata, Status};

mod health;
mod messages;
mod reflection;
mod stream;

use stream::Bridge;

/// A reply's body: its message, then its trailers; or nothing at all for a trailers-only
/// reply, whose HEADERS frame must end the stream.
type Body = Either<Either<Fixed, Empty<Bytes>>, StreamBody<Streamed>>;
type Fixed =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;
/// A body produced as it goes (reflection's answers).
type Streamed = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>;

/// Headers that are HTTP's or gRPC's own, not the call's metadata.
const NOT_METADATA: &[&str] = &[
    "content-type",
    "content-length",
    "te",
    "user-agent",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "accept-encoding",
];

impl Connection {
    /// Serves HTTP/2 until the peer closes or the provider shuts down (calls in flight are
    /// answered first: a GOAWAY, then the end).
    pub(crate) async fn run_grpc<S: Io>(self, stream: S) {
        let conn = Arc::new(self);
        let handler = conn.clone();
        let bridge = Arc::new(Bridge::default());
        let streams = bridge.clone();
        let service = hyper::service::service_fn(move |request| {
            let (conn, bridge) = (handler.clone(), streams.clone());
            async move { Ok::<_, Infallible>(conn.grpc_request(&bridge, request).await) }
        });
        let config = &conn.shared.config;
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(
                u32::try_from(config.max_calls_per_connection).unwrap_or(u32::MAX),
            )
            .max_header_list_size(
                u32::try_from(config.metadata_limits().max_bytes)
                    .unwrap_or(u32::MAX)
                    .saturating_add(8192),
            )
            .keep_alive_interval(config.idle_timeout / 4)
            .keep_alive_timeout(config.frame_timeout);
        let serving = builder.serve_connection(TokioIo::new(stream), service);
        conn.serve_hyper(serving, "gRPC").await;
        bridge.close(conn.shared.config.shutdown_grace).await;
    }

    async fn grpc_request(
        &self,
        bridge: &Bridge,
        request: http::Request<Incoming>,
    ) -> http::Response<Body> {
        let path = request.uri().path();
        let reflection = reflection::SERVICES.iter().any(|s| {
            path.strip_prefix('/').and_then(|p| p.strip_prefix(s)) == Some("/ServerReflectionInfo")
        });
        if reflection && request.method() == Method::POST {
            let encoding = match request_encoding(request.headers()) {
                Ok(encoding) => encoding,
                Err(status) => return failure(&status),
            };
            let mut frames = self.reflect(request.into_body(), encoding);
            let stream = futures_util::stream::poll_fn(move |cx| frames.poll_recv(cx));
            return response(Either::Right(StreamBody::new(Box::pin(stream))));
        }
        // The encodings the caller takes its reply in.
        let accepted = request
            .headers()
            .get("grpc-accept-encoding")
            .and_then(|v| v.to_str().ok())
            .map_or(Accepted::NONE, Accepted::from_list);
        if request.method() == Method::POST {
            if let Some(route) = self.streaming_route(request.uri().path()) {
                return self.grpc_stream(bridge, request, route, accepted).await;
            }
        }
        match self.grpc_call(request).await {
            Ok((metadata, message)) => {
                let outgoing = self.shared.config.compression.outgoing();
                let encoding = outgoing.choose(message.len(), accepted);
                let framed = messages::frame(message, encoding);
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                let frames = vec![Ok(Frame::data(framed)), Ok(Frame::trailers(trailers))];
                let body = StreamBody::new(futures_util::stream::iter(frames));
                let mut reply = response(Either::Left(Either::Left(body)));
                put_metadata(reply.headers_mut(), &metadata);
                if let Some(encoding) = encoding {
                    let name = HeaderValue::from_static(encoding.name());
                    reply.headers_mut().insert("grpc-encoding", name);
                }
                reply
            }
            Err(status) => failure(&status),
        }
    }

    /// One call: the reply's metadata and message, or its failure.
    async fn grpc_call(
        &self,
        request: http::Request<Incoming>,
    ) -> Result<(Metadata, crate::Body), Status> {
        let refused = |status: Status| {
            self.shared.metrics.rejected(status.code());
            status
        };
        if request.method() != Method::POST {
            return Err(refused(Status::unimplemented(
                "gRPC calls are POST requests",
            )));
        }
        let path = request.uri().path().to_owned();
        let Some((service_name, method_name)) = path.trim_start_matches('/').split_once('/') else {
            return Err(refused(Status::unimplemented(format!(
                "no method at `{}`",
                quote(&path)
            ))));
        };
        let encoding = request_encoding(request.headers()).map_err(refused)?;
        let arrived = Instant::now();
        let (parts, body) = request.into_parts();
        let limit = self.shared.config.max_frame_size;
        let timeout = self.shared.config.frame_timeout;
        let body = match read_body(body, &parts.headers, limit.saturating_add(5), timeout).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Err(refused(Status::resource_exhausted(format!(
                    "the request is larger than the maximum of {limit} bytes"
                ))))
            }
            Err(BodyError::Slow) => {
                return Err(refused(Status::deadline_exceeded(format!(
                    "the request did not arrive within frame_timeout ({timeout:?})"
                ))))
            }
            Err(BodyError::Broken(e)) => {
                return Err(refused(Status::cancelled(format!(
                    "the request did not arrive whole: {e}"
                ))))
            }
        };
        let (message, encoding) = unframe(body, limit, encoding).map_err(refused)?;
        if service_name == health::SERVICE {
            return health::check(self, method_name, message).map(|m| (Metadata::new(), m.into()));
        }
        let router = &self.shared.router;
        let service = router
            .get(service_name)
            .cloned()
            .ok_or_else(|| refused(router.unknown_service(service_name)))?;
        let method = unary_method(&service, method_name, "this provider's gRPC")
            .map_err(|e| refused(e.into_status()))?;
        let (metadata, deadline) = metadata(&parts.headers, arrived).map_err(refused)?;
        if *self.shutdown.borrow() {
            return Err(refused(Status::unavailable(
                "provider is shutting down; the call was not run",
            )));
        }
        let request = self.request(message, metadata, deadline);
        let call = Call {
            service: service.clone(),
            method,
            request,
            arrived,
            connection_calls: 1,
            encoding,
        };
        // Through the stack like any call: its failures are counted there.
        let reply = self.shared.stack.clone().serve(call).await?;
        if reply.get_ref().len() > limit {
            return Err(Status::resource_exhausted(format!(
                "the reply of {} bytes exceeds the maximum of {limit} bytes",
                reply.get_ref().len()
            )));
        }
        Ok(reply.into_parts())
    }
}

/// The one message of a unary request: a flag byte (1: compressed with the call's
/// `grpc-encoding`), a big-endian `u32` length, the message; and its encoding (the stack
/// decompresses it once the call is admitted).
fn unframe(
    mut body: Bytes,
    limit: usize,
    encoding: Option<Encoding>,
) -> Result<(Bytes, Option<Encoding>), Status> {
    if body.len() < 5 {
        return Err(Status::invalid_argument(format!(
            "a gRPC request of {} bytes: not one length-prefixed message",
            body.len()
        )));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if len > limit {
        return Err(Status::resource_exhausted(format!(
            "a message of {len} bytes exceeds the maximum of {limit} bytes"
        )));
    }
    if body.len() != len {
        return Err(Status::invalid_argument(format!(
            "a unary call carries one message of {len} bytes; {} bytes came",
            body.len()
        )));
    }
    messages::encoding_of(compressed, encoding).map(|encoding| (body, encoding))
}

/// The call's `grpc-encoding`: `None` for none or `identity`, `Unimplemented` for one this
/// provider does not take.
fn request_encoding(headers: &HeaderMap) -> Result<Option<Encoding>, Status> {
    match headers.get("grpc-encoding") {
        None => Ok(None),
        Some(name) if name == "identity" => Ok(None),
        Some(name) => match name.to_str().ok().and_then(Encoding::from_name) {
            Some(encoding) => Ok(Some(encoding)),
            None => Err(Status::unimplemented(format!(
                "grpc-encoding {name:?} is not supported; this provider takes {ACCEPTED}"
            ))),
        },
    }
}

/// The call's metadata from the request's headers, and its deadline from `grpc-timeout`.
fn metadata(headers: &HeaderMap, arrived: Instant) -> Result<(Metadata, Option<Instant>), Status> {
    let metadata = metadata_from_headers(headers, |name| {
        NOT_METADATA.contains(&name) || name.ends_with("-bin")
    });
    let deadline = match headers.get("grpc-timeout") {
        None => None,
        Some(value) => Some(arrived + timeout(value)?),
    };
    Ok((metadata, deadline))
}

/// `grpc-timeout`: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn timeout(value: &HeaderValue) -> Result<Duration, Status> {
    let bad = || Status::invalid_argument(format!("grpc-timeout {value:?} is not a timeout"));
    let text = value.to_str().map_err(|_| bad())?;
    if text.len() < 2 || text.len() > 9 {
        return Err(bad());
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// A "trailers-only" reply: the failure's status and metadata in the headers.
fn failure(status: &Status) -> http::Response<Body> {
    let mut reply = response(Either::Left(Either::Right(Empty::new())));
    let headers = reply.headers_mut();
    put_metadata(headers, status.metadata());
    put_status(headers, status);
    reply
}

/// The encodings a provider takes requests in, for `grpc-accept-encoding`.
const ACCEPTED: &str = "zstd,gzip";

fn response(body: Body) -> http::Response<Body> {
    let mut reply = http::Response::new(body);
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-accept-encoding", HeaderValue::from_static(ACCEPTED));
    reply
}

/// `grpc-status` and `grpc-message` (percent-encoded, as the protocol asks).
fn put_status(headers: &mut HeaderMap, status: &Status) {
    let code = match status.code() {
        Code::Ok => Code::Unknown,
        code => code,
    };
    headers.insert("grpc-status", HeaderValue::from(code.as_i32()));
    let mut message = String::new();
    for b in status.message().bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            message.push(b as char);
        } else {
            message.push_str(&format!("%{b:02X}"));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&message) {
        headers.insert("grpc-message", value);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;
    use crate::compression::compress;

    #[test]
    fn grpc_timeouts_parse() {
        let t = |s: &'static str| timeout(&HeaderValue::from_static(s));
        assert_eq!(t("100m").unwrap(), Duration::from_millis(100));
        assert_eq!(t("2S").unwrap(), Duration::from_secs(2));
        assert_eq!(t("1H").unwrap(), Duration::from_secs(3600));
        assert_eq!(t("5u").unwrap(), Duration::from_micros(5));
        assert!(t("100").is_err());
        assert!(t("123456789S").is_err());
        assert!(t("xS").is_err());
    }

    #[test]
    fn a_request_is_one_length_prefixed_message() {
        let framed = Bytes::from_static(b"\x00\x00\x00\x00\x02hi");
        assert_eq!(
            unframe(framed, 16, None).unwrap(),
            (Bytes::from_static(b"hi"), None)
        );
        let two = Bytes::from_static(b"\x00\x00\x00\x00\x01h\x00\x00\x00\x00\x01i");
        let e = unframe(two, 16, None).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let big = Bytes::from_static(b"\x00\x00\x01\x00\x00");
        let e = unframe(big, 16, None).unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        let unnamed = Bytes::from_static(b"\x01\x00\x00\x00\x00");
        assert_eq!(
            unframe(unnamed, 16, None).unwrap_err().code(),
            Code::Internal
        );
    }

    #[test]
    fn a_compressed_request_is_handed_on_with_its_encoding() {
        let packed = compress(Encoding::Gzip, b"hello");
        let mut framed = BytesMut::new();
        framed.put_u8(1);
        framed.put_u32(packed.len() as u32);
        framed.put(packed.clone());
        let (message, encoding) = unframe(framed.freeze(), 64, Some(Encoding::Gzip)).unwrap();
        assert_eq!((message, encoding), (packed, Some(Encoding::Gzip)));
    }
}
