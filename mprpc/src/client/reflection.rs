//! Calls to a provider's reflection service (see [`crate::reflection`]): what tools use to
//! learn what a provider hosts and how to encode its messages.

use bytes::Bytes;

use super::Channel;
use crate::reflection::{
    FileDescriptorSetRequest, FileDescriptorSetResponse, ListServicesRequest, ListServicesResponse,
    ServiceInfo, SERVICE_NAME,
};
use crate::{Request, Status};

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
