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
//!
//! This module holds what both ends share: the service's name and its messages. The service
//! itself is part of the provider (`server/reflection.rs`); the calls to it are
//! [`client::reflection`](crate::client::reflection).

use bytes::Bytes;
use prost::Message;

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

/// The reflection service's methods.
pub(crate) const METHODS: &[&str] = &["ListServices", "GetFileDescriptorSet"];
