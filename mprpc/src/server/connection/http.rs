//! A connection in HTTP/1.1 with JSON bodies (`[server.protocols] http`), served by hyper:
//! `POST /package.Service/Method` with the request as JSON returns the reply as JSON, run
//! through the same stack as mprpc's own calls (admission, auth, metrics, tracing, layers);
//! `GET /` lists the hosted services. Headers are the call's metadata (an `authorization`
//! header carries a bearer token as for any caller), `mprpc-timeout-ms` its deadline; a
//! failure is an HTTP status with `{"code", "status", "message"}` (`json.rs`). A body sent
//! with `Content-Encoding: gzip` or `zstd` is decompressed (at most `max_frame_size`); a
//! reply is compressed when the provider has `[server.compression]` and the request's
//! `Accept-Encoding` names its encoding.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::unary::{
    metadata_from_headers, put_metadata, read_body, unary_method, BodyError, NoMethod,
};
use super::{Connection, Io};
use crate::compression::{decompress, Accepted, DecompressError, Encoding};
use crate::server::dispatch::quote;
use crate::server::layer::stack::Call;
use crate::{Body, Metadata, Status};

mod json;

pub(crate) use json::Descriptors;

type Reply = http::Response<Full<Bytes>>;

/// A reply before it is sent: its HTTP status, JSON body and response metadata.
struct Answer(u16, Vec<u8>, Metadata);

/// The header that sets a call's deadline, in milliseconds.
const TIMEOUT_HEADER: &str = "mprpc-timeout-ms";

/// Headers that are HTTP's own, not the call's metadata.
const NOT_METADATA: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "accept",
    "accept-encoding",
    "content-encoding",
    "user-agent",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "expect",
    "upgrade",
    TIMEOUT_HEADER,
];

impl Connection {
    /// Serves HTTP/1.1 requests until the peer closes, the connection idles past
    /// `frame_timeout` between requests, or the provider shuts down (requests in flight are
    /// answered first).
    pub(crate) async fn run_http<S: Io>(self, stream: S) {
        let conn = Arc::new(self);
        let handler = conn.clone();
        let service = hyper::service::service_fn(move |request| {
            let conn = handler.clone();
            async move { Ok::<_, Infallible>(conn.http_request(request).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(conn.shared.config.frame_timeout);
        let serving = builder.serve_connection(TokioIo::new(stream), service);
        conn.serve_hyper(serving, "HTTP").await;
    }

    async fn http_request(&self, request: http::Request<Incoming>) -> Reply {
        let accepted = request
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map_or(Accepted::NONE, Accepted::from_list);
        let answer = match self.http_call(request).await {
            Ok(answer) => answer,
            Err((code, status)) => {
                self.shared.metrics.rejected(status.code());
                let http = code.unwrap_or_else(|| json::http_status(status.code()));
                respond(http, json::error_body(&status), &Metadata::new())
            }
        };
        let outgoing = self.shared.config.compression.outgoing();
        let Answer(status, body, metadata) = answer;
        let (body, encoding) = outgoing.apply(Body::from(body), accepted);
        let mut reply = http::Response::new(Full::new(body.into_bytes()));
        *reply.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = reply.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        if outgoing.encoding.is_some() {
            let vary = header::HeaderValue::from_static("accept-encoding");
            headers.insert(header::VARY, vary);
        }
        if let Some(encoding) = encoding {
            let name = header::HeaderValue::from_static(encoding.name());
            headers.insert(header::CONTENT_ENCODING, name);
        }
        put_metadata(headers, &metadata);
        reply
    }

    /// One request: the reply, or the failure (with an HTTP status of its own where the
    /// call's status does not say it).
    async fn http_call(
        &self,
        request: http::Request<Incoming>,
    ) -> Result<Answer, (Option<u16>, Status)> {
        let path = request.uri().path().to_owned();
        if path == "/" {
            if request.method() != Method::GET {
                let status = Status::invalid_argument("`/` lists the services: use GET");
                return Err((Some(405), status));
            }
            let listing = json::listing(self.shared.router.services());
            return Ok(respond(200, listing, &Metadata::new()));
        }
        let Some((service_name, method_name)) = path.trim_start_matches('/').split_once('/') else {
            let status = Status::not_found(format!(
                "no method at `{}`: call POST /package.Service/Method",
                quote(&path)
            ));
            return Err((Some(404), status));
        };
        if request.method() != Method::POST {
            let status = Status::invalid_argument("a method is called with POST and a JSON body");
            return Err((Some(405), status));
        }
        let router = &self.shared.router;
        let no_method = |status| (Some(404), status);
        let service = router
            .get(service_name)
            .cloned()
            .ok_or_else(|| no_method(router.unknown_service(service_name)))?;
        let method = match unary_method(&service, method_name, "HTTP/JSON") {
            Ok(method) => method,
            Err(NoMethod::Unknown(status)) => return Err(no_method(status)),
            Err(streams) => return Err((None, streams.into_status())),
        };
        let descriptor = self
            .shared
            .descriptors
            .method(service.as_ref(), method)
            .map_err(|s| (None, s))?;
        let arrived = Instant::now();
        let (parts, body) = request.into_parts();
        let (metadata, deadline) = metadata(&parts.headers, arrived).map_err(|s| (None, s))?;
        let limit = self.shared.config.max_frame_size;
        let timeout = self.shared.config.frame_timeout;
        let body = match read_body(body, &parts.headers, limit, timeout).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let status = Status::resource_exhausted(format!(
                    "the body is larger than the maximum of {limit} bytes"
                ));
                return Err((Some(413), status));
            }
            Err(BodyError::Slow) => {
                let status = Status::deadline_exceeded(format!(
                    "the body did not arrive within frame_timeout ({timeout:?})"
                ));
                return Err((Some(408), status));
            }
            Err(BodyError::Broken(e)) => return Err((Some(400), Status::invalid_argument(e))),
        };
        let body = inflate(&parts.headers, body, limit)?;
        let encoded = json::request(&descriptor, &body).map_err(|s| (None, s))?;
        if *self.shutdown.borrow() {
            let status = Status::unavailable("provider is shutting down; the call was not run");
            return Err((None, status));
        }
        let request = self.request(encoded, metadata, deadline);
        let call = Call {
            service: service.clone(),
            method,
            request,
            arrived,
            connection_calls: 1,
            encoding: None,
        };
        // Through the stack like any call: its failures are counted there, not here.
        match self.shared.stack.clone().serve(call).await {
            Ok(reply) => {
                let (metadata, body) = reply.into_parts();
                match json::reply(&descriptor, body.into_bytes()) {
                    Ok(json) => Ok(respond(200, json, &metadata)),
                    Err(status) => Ok(respond(500, json::error_body(&status), &metadata)),
                }
            }
            Err(status) => {
                let http = json::http_status(status.code());
                Ok(respond(http, json::error_body(&status), status.metadata()))
            }
        }
    }
}

/// The call's metadata from the request's headers (HTTP's own left out), and its deadline.
fn metadata(
    headers: &http::HeaderMap,
    arrived: Instant,
) -> Result<(Metadata, Option<Instant>), Status> {
    let metadata = metadata_from_headers(headers, |name| NOT_METADATA.contains(&name));
    let deadline = match headers.get(TIMEOUT_HEADER) {
        None => None,
        Some(value) => {
            let ms = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "{TIMEOUT_HEADER} must be a number of milliseconds above 0"
                    ))
                })?;
            Some(arrived + Duration::from_millis(ms))
        }
    };
    Ok((metadata, deadline))
}

/// A JSON reply with `status`, and response metadata as headers.
fn respond(status: u16, body: Vec<u8>, metadata: &Metadata) -> Answer {
    Answer(status, body, metadata.clone())
}

/// The body as sent, decompressed if its `Content-Encoding` says so: at most `limit` bytes
/// (more is 413), an encoding this provider does not know 415, a body that does not
/// decompress 400.
fn inflate(
    headers: &http::HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, (Option<u16>, Status)> {
    let Some(name) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let name = name.to_str().unwrap_or("").trim();
    if name.is_empty() || name.eq_ignore_ascii_case("identity") {
        return Ok(body);
    }
    let Some(encoding) = Encoding::from_name(name) else {
        let status = Status::unimplemented(format!(
            "Content-Encoding `{}` is not supported; send gzip, zstd or nothing",
            quote(name)
        ));
        return Err((Some(415), status));
    };
    decompress(encoding, &body, limit).map_err(|e| {
        let http = match e {
            DecompressError::TooLarge { .. } => 413,
            DecompressError::Corrupt { .. } => 400,
        };
        (Some(http), e.into_status("the body"))
    })
}
