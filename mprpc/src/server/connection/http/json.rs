//! What HTTP/JSON callers see of a service: its messages as JSON (proto3's JSON mapping:
//! `bytes` as base64, 64-bit integers as strings, enums by name), converted with the
//! descriptors its generated code embeds, and a call's status as an HTTP status with a JSON
//! body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};

use crate::server::service::Service;
use crate::sync::lock;
use crate::{Code, Status};

/// The descriptors of each hosted service, decoded once, on first use.
#[derive(Default)]
pub(crate) struct Descriptors {
    pools: Mutex<HashMap<&'static str, Option<DescriptorPool>>>,
}

impl std::fmt::Debug for Descriptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptors").finish_non_exhaustive()
    }
}

impl Descriptors {
    /// The descriptors of `service`, decoded once; `None` for a service built without them.
    pub(crate) fn pool(&self, service: &dyn Service) -> Option<DescriptorPool> {
        let mut pools = lock(&self.pools);
        pools
            .entry(service.name())
            .or_insert_with(|| {
                let set = service.file_descriptor_set();
                if set.is_empty() {
                    return None;
                }
                DescriptorPool::decode(set).ok()
            })
            .clone()
    }

    /// The descriptor of `service`'s `method`: `Unimplemented` for a service built without
    /// descriptors (its messages cannot be read from JSON).
    pub(crate) fn method(
        &self,
        service: &dyn Service,
        method: &str,
    ) -> Result<MethodDescriptor, Status> {
        let name = service.name();
        let pool = self.pool(service);
        pool.and_then(|pool| pool.get_service_by_name(name))
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .ok_or_else(|| {
                Status::unimplemented(format!(
                    "`{name}` was built without descriptors: its messages cannot be read from JSON"
                ))
            })
    }
}

/// A request body in JSON, encoded as the method's request message.
pub(crate) fn request(method: &MethodDescriptor, body: &[u8]) -> Result<Bytes, Status> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize(method.input(), &mut json)
        .and_then(|m| json.end().map(|()| m))
        .map_err(|e| {
            Status::invalid_argument(format!(
                "the body is not a {} in JSON: {e}",
                method.input().full_name()
            ))
        })?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// A reply message as JSON.
pub(crate) fn reply(method: &MethodDescriptor, body: Bytes) -> Result<Vec<u8>, Status> {
    let message = DynamicMessage::decode(method.output(), body)
        .map_err(|e| Status::internal(format!("the handler's reply does not decode: {e}")))?;
    let mut out = Vec::new();
    let mut json = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut json, &SerializeOptions::new())
        .map_err(|e| Status::internal(format!("the reply cannot be written as JSON: {e}")))?;
    Ok(out)
}

/// The HTTP status of a call's status (the mapping of gRPC's HTTP gateway).
pub(crate) fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        _ => 500,
    }
}

/// A failure's JSON body: `{"code": 3, "status": "InvalidArgument", "message": "..."}`.
pub(crate) fn error_body(status: &Status) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "code": status.code().as_i32(),
        "status": format!("{:?}", status.code()),
        "message": status.message(),
    }))
    .unwrap_or_default()
}

/// `GET /`: the hosted services and their methods.
pub(crate) fn listing<'a>(services: impl Iterator<Item = &'a Arc<dyn Service>>) -> Vec<u8> {
    let services: Vec<serde_json::Value> = services
        .map(|s| serde_json::json!({ "name": s.name(), "methods": s.methods() }))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({ "services": services })).unwrap_or_default()
}
