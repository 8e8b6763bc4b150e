//! Reflection: every provider also serves `mprpc.reflection.Reflection`, which lists the
//! services it hosts and returns their protobuf descriptors, so that tools (the `mprpc`
//! command) can call any method with JSON and without the `.proto` files.
//!
//! ```proto
//! package mprpc.reflection;
//! service Reflection {
//!   rpc ListServices(ListServicesRequest) returns (ListServicesResponse);
//!   rpc GetFileDescriptorSet(FileDescriptorSetRequest) returns (FileDescriptorSetResponse);
//! }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::client::Channel;
use crate::server::{BoxFuture, Router, Service};
use crate::{Request, Status};

/// The reflection service's name.
pub const SERVICE_NAME: &str = "mprpc.reflection.Reflection";

/// `ListServices` request (empty).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ListServicesRequest {}

/// `ListServices` reply.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ListServicesResponse {
    /// The hosted services (the reflection service itself included).
    #[prost(message, repeated, tag = "1")]
    pub services: Vec<ServiceInfo>,
}

/// One hosted service.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ServiceInfo {
    /// Fully qualified name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Method names.
    #[prost(string, repeated, tag = "2")]
    pub methods: Vec<String>,
}

/// `GetFileDescriptorSet` request.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct FileDescriptorSetRequest {
    /// Fully qualified service name.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `GetFileDescriptorSet` reply.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct FileDescriptorSetResponse {
    /// An encoded `google.protobuf.FileDescriptorSet` declaring the service and everything
    /// it uses.
    #[prost(bytes = "bytes", tag = "1")]
    pub file_descriptor_set: Bytes,
}

/// The reflection service of one provider.
pub(crate) struct Reflection {
    services: Arc<Vec<(ServiceInfo, &'static [u8])>>,
}

impl Reflection {
    pub(crate) fn new(router: &Router) -> Reflection {
        let mut services: Vec<(ServiceInfo, &'static [u8])> = router
            .services()
            .map(|s| {
                let info = ServiceInfo {
                    name: s.name().to_owned(),
                    methods: s.methods().iter().map(|m| (*m).to_owned()).collect(),
                };
                (info, s.file_descriptor_set())
            })
            .collect();
        services.push((
            ServiceInfo {
                name: SERVICE_NAME.to_owned(),
                methods: METHODS.iter().map(|m| (*m).to_owned()).collect(),
            },
            &[],
        ));
        services.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Reflection {
            services: Arc::new(services),
        }
    }
}

const METHODS: &[&str] = &["ListServices", "GetFileDescriptorSet"];

impl Service for Reflection {
    fn name(&self) -> &'static str {
        SERVICE_NAME
    }

    fn methods(&self) -> &'static [&'static str] {
        METHODS
    }

    fn call(&self, method: &str, request: Request<Bytes>) -> BoxFuture<Result<Bytes, Status>> {
        let services = self.services.clone();
        let reply = match method {
            "ListServices" => Ok(ListServicesResponse {
                services: services.iter().map(|(info, _)| info.clone()).collect(),
            }
            .encode_to_vec()),
            "GetFileDescriptorSet" => FileDescriptorSetRequest::decode(request.into_inner())
                .map_err(|e| Status::invalid_argument(format!("bad request: {e}")))
                .and_then(|req| {
                    let (_, fds) = services
                        .iter()
                        .find(|(info, _)| info.name == req.service)
                        .ok_or_else(|| {
                            Status::not_found(format!(
                                "no service `{}` on this provider",
                                req.service
                            ))
                        })?;
                    if fds.is_empty() {
                        return Err(Status::not_found(format!(
                            "service `{}` was built without descriptors",
                            req.service
                        )));
                    }
                    Ok(FileDescriptorSetResponse {
                        file_descriptor_set: Bytes::from_static(fds),
                    }
                    .encode_to_vec())
                }),
            other => Err(Status::unimplemented(format!(
                "service `{SERVICE_NAME}` has no method `{other}`"
            ))),
        };
        Box::pin(std::future::ready(reply.map(Bytes::from)))
    }
}

/// Asks the provider behind `channel` which services it hosts.
pub async fn list_services(channel: &Channel) -> Result<Vec<ServiceInfo>, Status> {
    let reply: ListServicesResponse = channel
        .unary(
            SERVICE_NAME,
            "ListServices",
            Request::new(ListServicesRequest {}),
        )
        .await?;
    Ok(reply.services)
}

/// Asks the provider behind `channel` for the encoded `FileDescriptorSet` of `service`.
pub async fn file_descriptor_set(channel: &Channel, service: &str) -> Result<Bytes, Status> {
    let reply: FileDescriptorSetResponse = channel
        .unary(
            SERVICE_NAME,
            "GetFileDescriptorSet",
            Request::new(FileDescriptorSetRequest {
                service: service.to_owned(),
            }),
        )
        .await?;
    Ok(reply.file_descriptor_set)
}
