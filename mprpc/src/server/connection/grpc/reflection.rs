//! gRPC server reflection (`grpc.reflection.v1.ServerReflection`, and its older name
//! `grpc.reflection.v1alpha`, which Python's `grpcio-reflection` asks), so that `grpcurl`
//! and other tools list, describe and call a provider's services without `.proto` files.
//! Answers come from the descriptors the generated services embed: `list_services`,
//! `file_containing_symbol` (a service, method, message or enum) and `file_by_filename`,
//! each with the file and its dependencies; other requests get an error response.
//!
//! The call streams both ways: each request is answered as it arrives, and the response
//! stream ends, with `grpc-status: 0`, when the request stream does.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use hyper::body::{Frame, Incoming};
use prost::Message;
use prost_reflect::DescriptorPool;
use tokio::sync::mpsc;

use super::super::Connection;
use super::messages::{frame, Messages};
use super::put_status;
use crate::compression::Encoding;
use crate::Status;

/// The services' names: the current one and the older one.
pub(super) const SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[derive(Clone, PartialEq, Message)]
struct ServerReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "Request", tags = "3, 4, 5, 6, 7")]
    request: Option<Request>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Request {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(message, tag = "5")]
    FileContainingExtension(ExtensionRequest),
    #[prost(string, tag = "6")]
    AllExtensionNumbersOfType(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

#[derive(Clone, PartialEq, Message)]
struct ExtensionRequest {
    #[prost(string, tag = "1")]
    containing_type: String,
    #[prost(int32, tag = "2")]
    extension_number: i32,
}

#[derive(Clone, PartialEq, Message)]
struct ServerReflectionResponse {
    #[prost(string, tag = "1")]
    valid_host: String,
    #[prost(message, optional, tag = "2")]
    original_request: Option<ServerReflectionRequest>,
    #[prost(oneof = "Response", tags = "4, 6, 7")]
    response: Option<Response>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Response {
    #[prost(message, tag = "4")]
    Files(FileDescriptorResponse),
    #[prost(message, tag = "6")]
    Services(ListServiceResponse),
    #[prost(message, tag = "7")]
    Error(ErrorResponse),
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// The frames of the response body, as they are produced.
pub(super) type Frames = mpsc::Receiver<Result<Frame<Bytes>, Infallible>>;

impl Connection {
    /// Answers a reflection call: a task reads the requests as they come and sends each
    /// answer; the returned receiver is the response body.
    pub(super) fn reflect(&self, body: Incoming, encoding: Option<Encoding>) -> Frames {
        let (tx, rx) = mpsc::channel(16);
        let pools: Vec<(String, DescriptorPool)> = self
            .shared
            .router
            .services()
            .filter_map(|s| {
                let pool = self.shared.descriptors.pool(s.as_ref())?;
                Some((s.name().to_owned(), pool))
            })
            .collect();
        let config = &self.shared.config;
        let mut messages =
            Messages::new(body, config.max_frame_size, encoding, config.frame_timeout);
        tokio::spawn(async move {
            let mut trailers = HeaderMap::new();
            loop {
                let message = match messages.next().await {
                    None => break,
                    Some(Ok(message)) => message,
                    Some(Err(status)) => {
                        put_status(&mut trailers, &status);
                        break;
                    }
                };
                let Ok(request) = ServerReflectionRequest::decode(message) else {
                    let status = Status::invalid_argument("not a ServerReflectionRequest");
                    put_status(&mut trailers, &status);
                    break;
                };
                let answer = answer(&pools, request).encode_to_vec();
                let framed = frame(answer.into(), None);
                if tx.send(Ok(Frame::data(framed))).await.is_err() {
                    return;
                }
            }
            if !trailers.contains_key("grpc-status") {
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
            }
            let _ = tx.send(Ok(Frame::trailers(trailers))).await;
        });
        rx
    }
}

/// The answer to one request.
fn answer(
    pools: &[(String, DescriptorPool)],
    request: ServerReflectionRequest,
) -> ServerReflectionResponse {
    let response = match &request.request {
        Some(Request::ListServices(_)) => Response::Services(ListServiceResponse {
            service: pools
                .iter()
                .map(|(name, _)| ServiceResponse { name: name.clone() })
                .collect(),
        }),
        Some(Request::FileContainingSymbol(symbol)) => {
            match pools
                .iter()
                .find_map(|(_, pool)| Some((pool, file_of(pool, symbol)?)))
            {
                Some((pool, file)) => files(pool, Some(&file)),
                None => not_found(format!("no symbol `{symbol}` on this provider")),
            }
        }
        Some(Request::FileByFilename(name)) => {
            match pools
                .iter()
                .find(|(_, pool)| pool.get_file_by_name(name).is_some())
            {
                Some((_, pool)) => files(pool, Some(name)),
                None => not_found(format!("no file `{name}` on this provider")),
            }
        }
        _ => Response::Error(ErrorResponse {
            error_code: crate::Code::Unimplemented.as_i32(),
            error_message: "extensions are not served".to_owned(),
        }),
    };
    ServerReflectionResponse {
        valid_host: request.host.clone(),
        original_request: Some(request),
        response: Some(response),
    }
}

fn not_found(message: String) -> Response {
    Response::Error(ErrorResponse {
        error_code: crate::Code::NotFound.as_i32(),
        error_message: message,
    })
}

/// The file of `pool` that declares `symbol` (a service, a method `Service.Method`, a
/// message or an enum), if one does.
fn file_of(pool: &DescriptorPool, symbol: &str) -> Option<String> {
    let symbol = symbol.trim_start_matches('.');
    if let Some(service) = pool.get_service_by_name(symbol) {
        return Some(service.parent_file().name().to_owned());
    }
    if let Some(message) = pool.get_message_by_name(symbol) {
        return Some(message.parent_file().name().to_owned());
    }
    if let Some(e) = pool.get_enum_by_name(symbol) {
        return Some(e.parent_file().name().to_owned());
    }
    let (service, method) = symbol.rsplit_once('.')?;
    let service = pool.get_service_by_name(service)?;
    let declared = service.methods().any(|m| m.name() == method);
    declared.then(|| service.parent_file().name().to_owned())
}

/// The files of `pool` (all of them: the one asked for comes with its dependencies), the
/// one asked for first.
fn files(pool: &DescriptorPool, first: Option<&str>) -> Response {
    let mut files: Vec<_> = pool.file_descriptor_protos().collect();
    if let Some(name) = first {
        files.sort_by_key(|f| f.name() != name);
    }
    Response::Files(FileDescriptorResponse {
        file_descriptor_proto: files.iter().map(|f| f.encode_to_vec()).collect(),
    })
}
