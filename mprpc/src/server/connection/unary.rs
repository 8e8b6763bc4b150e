//! What the protocols besides mprpc's own (HTTP/JSON, gRPC, the original's) share: finding
//! the unary method a call names, and serving a hyper connection until it ends, draining it
//! when the provider shuts down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::Connection;
use crate::metrics::Side;
use crate::server::dispatch::quote;
use crate::server::service::Service;
use crate::{Metadata, Status};

/// Why a call names no unary method of its service.
pub(super) enum NoMethod {
    /// The service has no such method.
    Unknown(Status),
    /// The method streams; the protocol (`protocol`) carries unary calls only.
    Streams(Status),
}

impl NoMethod {
    pub(super) fn into_status(self) -> Status {
        match self {
            NoMethod::Unknown(status) | NoMethod::Streams(status) => status,
        }
    }
}

/// The method `name` of `service`, if it is a unary one; `protocol` names the caller's
/// protocol in the refusal of a streaming method.
pub(super) fn unary_method(
    service: &Arc<dyn Service>,
    name: &str,
    protocol: &str,
) -> Result<&'static str, NoMethod> {
    let Some(method) = service.methods().iter().copied().find(|m| *m == name) else {
        return Err(NoMethod::Unknown(Status::unimplemented(format!(
            "service `{}` has no method `{}`",
            service.name(),
            quote(name)
        ))));
    };
    if service
        .streaming_methods()
        .iter()
        .any(|(m, _)| *m == method)
    {
        return Err(NoMethod::Streams(Status::unimplemented(format!(
            "`{}/{method}` streams; {protocol} carries unary calls only",
            service.name()
        ))));
    }
    Ok(method)
}

/// A call's metadata from an HTTP request's headers: every header but those `skip` names
/// (HTTP's or the protocol's own), and those whose value is not text.
pub(super) fn metadata_from_headers(
    headers: &http::HeaderMap,
    skip: impl Fn(&str) -> bool,
) -> Metadata {
    let mut metadata = Metadata::new();
    for (name, value) in headers {
        if skip(name.as_str()) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            metadata.append(name.as_str(), value);
        }
    }
    metadata
}

/// Response metadata as headers (what is not a valid header is left out).
pub(super) fn put_metadata(headers: &mut http::HeaderMap, metadata: &Metadata) {
    for (key, value) in metadata.iter() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// Why a request's body was not read.
pub(super) enum BodyError {
    /// Larger than the limit (announced, or as it came).
    TooLarge,
    /// Not whole within the time allowed.
    Slow,
    /// The peer broke it off.
    Broken(String),
}

/// Reads a request's body whole: at most `limit` bytes (a larger `content-length` is refused
/// before anything is read), within `timeout` (a peer that announces a body and sends it
/// slowly, or never, holds the call no longer).
pub(super) async fn read_body(
    body: hyper::body::Incoming,
    headers: &http::HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let announced = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Slow),
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

/// A hyper connection (HTTP/1.1 or HTTP/2) that can be asked to finish what it has and stop.
pub(super) trait Graceful: Future {
    fn graceful(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, B, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, B, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl Connection {
    /// Serves `serving` until it ends, asking it to finish gracefully when the provider
    /// starts shutting down, and dropping it when the shutdown grace has run out; counted as
    /// an open connection meanwhile.
    pub(super) async fn serve_hyper<F, E>(&self, serving: F, protocol: &str)
    where
        F: Graceful<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let metrics = &self.shared.metrics;
        metrics.connection(Side::Server, 1);
        self.serve_hyper_until_done(serving, protocol).await;
        metrics.connection(Side::Server, -1);
    }

    async fn serve_hyper_until_done<F, E>(&self, serving: F, protocol: &str)
    where
        F: Graceful<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        tokio::pin!(serving);
        let mut shutdown = self.shutdown.clone();
        let mut draining = *shutdown.borrow();
        if draining {
            serving.as_mut().graceful();
        }
        loop {
            tokio::select! {
                served = serving.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(peer = %self.peer, "{protocol} connection ended: {e}");
                    }
                    return;
                }
                changed = shutdown.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        serving.as_mut().graceful();
                    }
                }
                () = self.force_close.cancelled() => return,
            }
        }
    }
}
