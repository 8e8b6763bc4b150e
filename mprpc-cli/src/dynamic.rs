//! Descriptors fetched from a provider by reflection, and protobuf messages built from JSON
//! and printed as JSON with them (`prost-reflect`'s [`DynamicMessage`], proto3 JSON mapping:
//! `bytes` are base64, 64-bit integers are strings, enums are names).

use anyhow::Context;
use bytes::Bytes;
use mprpc::client::{reflection, Channel};
use mprpc::stream::MethodKind;
use mprpc::{Code, Status};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions, ServiceDescriptor,
};

/// Fetches the descriptors of `service` from the provider behind `channel` (at `provider`).
///
/// A provider that does not host the service gives `Unimplemented`, as calling it would.
pub(crate) async fn service_descriptor(
    channel: &Channel,
    provider: &str,
    service: &str,
) -> anyhow::Result<ServiceDescriptor> {
    let encoded = match reflection::file_descriptor_set(channel, service).await {
        Ok(encoded) => encoded,
        Err(status) if status.code() == Code::NotFound => {
            let hosted = reflection::list_services(channel)
                .await
                .map_err(|s| in_reflection(s, service, provider))?;
            if hosted.iter().any(|s| s.name == service) {
                anyhow::bail!(
                    "the provider at {provider} serves `{service}` without descriptors, so its \
                     messages cannot be converted from or to JSON"
                );
            }
            let names: Vec<&str> = hosted.iter().map(|s| s.name.as_str()).collect();
            return Err(Status::unimplemented(format!(
                "the provider at {provider} does not host `{service}` (it hosts: {})",
                names.join(", ")
            ))
            .into());
        }
        Err(status) => return Err(in_reflection(status, service, provider).into()),
    };
    let pool = DescriptorPool::decode(encoded).with_context(|| {
        format!("the provider at {provider} sent bad descriptors for `{service}`")
    })?;
    pool.get_service_by_name(service).with_context(|| {
        format!("the descriptors the provider at {provider} sent do not declare `{service}`")
    })
}

/// A reflection call's failure, keeping its code and saying what was being asked.
fn in_reflection(status: Status, service: &str, provider: &str) -> Status {
    Status::new(
        status.code(),
        format!(
            "cannot fetch the descriptors of `{service}` from {provider}: {}",
            status.message()
        ),
    )
}

/// The method `name` of `service`, or `Unimplemented` naming the methods there are.
pub(crate) fn method(service: &ServiceDescriptor, name: &str) -> Result<MethodDescriptor, Status> {
    service.methods().find(|m| m.name() == name).ok_or_else(|| {
        let names: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        Status::unimplemented(format!(
            "service `{}` has no method `{name}` (it has: {})",
            service.full_name(),
            names.join(", ")
        ))
    })
}

/// The `idempotency_level` the method declares in its `.proto`.
pub(crate) fn idempotency(method: &MethodDescriptor) -> mprpc::Idempotency {
    use prost_reflect::prost_types::method_options::IdempotencyLevel;
    let options = method.method_descriptor_proto().options.as_ref();
    match options.map(|o| o.idempotency_level()) {
        Some(IdempotencyLevel::NoSideEffects) => mprpc::Idempotency::NoSideEffects,
        Some(IdempotencyLevel::Idempotent) => mprpc::Idempotency::Idempotent,
        _ => mprpc::Idempotency::Unknown,
    }
}

/// Which of the method's sides stream, as its `.proto` declares.
pub(crate) fn kind(method: &MethodDescriptor) -> MethodKind {
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => MethodKind::Unary,
        (true, false) => MethodKind::ClientStreaming,
        (false, true) => MethodKind::ServerStreaming,
        (true, true) => MethodKind::Bidirectional,
    }
}

/// Parses `json` as a `desc` message and encodes it. Unknown fields are refused.
pub(crate) fn encode_json(desc: &MessageDescriptor, json: &str) -> anyhow::Result<Bytes> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize_with_options(
        desc.clone(),
        &mut deserializer,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .and_then(|m| deserializer.end().map(|()| m))
    .with_context(|| format!("the request is not a valid {} in JSON", desc.full_name()))?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// How a reply is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Indented, over several lines: a unary reply.
    Pretty,
    /// On one line: each message of a stream of replies (JSON lines).
    Line,
}

/// Decodes a `desc` message and renders it as pretty JSON; `emit_defaults` also prints the
/// fields that hold their default value (proto3 JSON leaves them out).
pub(crate) fn decode_to_json(
    desc: &MessageDescriptor,
    body: Bytes,
    emit_defaults: bool,
) -> Result<String, Status> {
    render(desc, body, emit_defaults, Layout::Pretty)
}

/// Decodes a `desc` message and renders it as JSON laid out as `layout` says.
pub(crate) fn render(
    desc: &MessageDescriptor,
    body: Bytes,
    emit_defaults: bool,
    layout: Layout,
) -> Result<String, Status> {
    let message = DynamicMessage::decode(desc.clone(), body).map_err(|e| {
        Status::internal(format!(
            "cannot decode the reply as {}: {e}",
            desc.full_name()
        ))
    })?;
    let options = SerializeOptions::new().skip_default_fields(!emit_defaults);
    let mut out = Vec::new();
    let written = match layout {
        Layout::Pretty => {
            message.serialize_with_options(&mut serde_json::Serializer::pretty(&mut out), &options)
        }
        Layout::Line => {
            message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        }
    };
    written.map_err(|e| Status::internal(format!("cannot render the reply as JSON: {e}")))?;
    String::from_utf8(out).map_err(|e| Status::internal(format!("reply JSON is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool with `t.M { bytes b = 1; uint64 n = 2; int32 long_name = 3; }`, built by hand.
    fn message() -> MessageDescriptor {
        use prost_reflect::prost_types::{
            field_descriptor_proto::Type, DescriptorProto, FieldDescriptorProto,
            FileDescriptorProto, FileDescriptorSet,
        };
        let field = |name: &str, json: &str, number, ty: Type| FieldDescriptorProto {
            name: Some(name.to_owned()),
            number: Some(number),
            r#type: Some(ty as i32),
            json_name: Some(json.to_owned()),
            ..FieldDescriptorProto::default()
        };
        let fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("t.proto".to_owned()),
                package: Some("t".to_owned()),
                syntax: Some("proto3".to_owned()),
                message_type: vec![DescriptorProto {
                    name: Some("M".to_owned()),
                    field: vec![
                        field("b", "b", 1, Type::Bytes),
                        field("n", "n", 2, Type::Uint64),
                        field("long_name", "longName", 3, Type::Int32),
                    ],
                    ..DescriptorProto::default()
                }],
                ..FileDescriptorProto::default()
            }],
        };
        let pool = DescriptorPool::from_file_descriptor_set(fds).unwrap();
        pool.get_message_by_name("t.M").unwrap()
    }

    #[test]
    fn json_round_trip() {
        let desc = message();
        let body = encode_json(&desc, r#"{"b": "aGk=", "n": "7"}"#).unwrap();
        let json = decode_to_json(&desc, body, false).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value, serde_json::json!({"b": "aGk=", "n": "7"}));
        let line = render(&desc, body_of(&desc), false, Layout::Line).unwrap();
        assert_eq!(line, r#"{"b":"aGk=","n":"7"}"#);
        let empty = decode_to_json(&desc, Bytes::new(), true).unwrap();
        let value: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(value, serde_json::json!({"b": "", "n": "0", "longName": 0}));
        // Requests may use the JSON name or the .proto name.
        for json in [r#"{"longName": 5}"#, r#"{"long_name": 5}"#] {
            let body = encode_json(&desc, json).unwrap();
            let value: serde_json::Value =
                serde_json::from_str(&decode_to_json(&desc, body, false).unwrap()).unwrap();
            assert_eq!(value, serde_json::json!({"longName": 5}), "{json}");
        }
    }

    fn body_of(desc: &MessageDescriptor) -> Bytes {
        encode_json(desc, r#"{"b": "aGk=", "n": "7"}"#).unwrap()
    }

    #[test]
    fn bad_json_is_refused() {
        let desc = message();
        assert!(encode_json(&desc, r#"{"nope": 1}"#).is_err());
        assert!(encode_json(&desc, r#"{"n": 1} trailing"#).is_err());
        assert!(encode_json(&desc, "not json").is_err());
    }
}
