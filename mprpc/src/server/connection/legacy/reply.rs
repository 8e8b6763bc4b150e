//! A failure as the original's callers can read it: a valid response message of the
//! method, with the status in its `ResultCode result = 1` field when it has one (the
//! original's examples all do: `message ResultCode { int32 errcode = 1; bytes errmsg = 2; }`),
//! else the empty message (every field at its default). `errcode` is the status code's
//! number (`Unimplemented` 12, `Unavailable` 14, ...), `errmsg` `"<Code>: <message>"`.
//!
//! The shape is read from the descriptors the generated service embeds; a service built
//! without them answers the empty message.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::server::service::Service;
use crate::Status;

/// The reply to an original caller of `service`/`method` whose call failed with `status`.
pub(crate) fn failure_reply(service: &dyn Service, method: &str, status: &Status) -> Bytes {
    if !has_result_code(service, method) {
        return Bytes::new();
    }
    let errmsg = format!("{:?}: {}", status.code(), status.message());
    let mut inner = BytesMut::new();
    prost::encoding::int32::encode(1, &status.code().as_i32(), &mut inner);
    prost::encoding::bytes::encode(2, &errmsg.into_bytes(), &mut inner);
    let mut reply = BytesMut::with_capacity(inner.len() + 6);
    encode_key(1, WireType::LengthDelimited, &mut reply);
    encode_varint(inner.len() as u64, &mut reply);
    reply.put(inner);
    reply.freeze()
}

/// Whether `method`'s response has field 1 of a message type with `int32` field 1 and a
/// `bytes` or `string` field 2.
fn has_result_code(service: &dyn Service, method: &str) -> bool {
    let Ok(set) = FileDescriptorSet::decode(service.file_descriptor_set()) else {
        return false;
    };
    let full = service.name();
    let output = set.file.iter().find_map(|file| {
        file.service.iter().find_map(|s| {
            let name = qualified(file.package(), s.name());
            (name == full)
                .then(|| s.method.iter().find(|m| m.name() == method))
                .flatten()
                .map(|m| m.output_type().trim_start_matches('.').to_owned())
        })
    });
    let Some(response) = output.and_then(|name| message(&set, &name)) else {
        return false;
    };
    let Some(result) = response.field.iter().find(|f| f.number() == 1) else {
        return false;
    };
    if result.r#type() != Type::Message {
        return false;
    }
    let Some(code) = message(&set, result.type_name().trim_start_matches('.')) else {
        return false;
    };
    let field = |n: i32| {
        code.field
            .iter()
            .find(|f| f.number() == n)
            .map(|f| f.r#type())
    };
    field(1) == Some(Type::Int32) && matches!(field(2), Some(Type::Bytes | Type::String))
}

/// The message of full name `name` (top-level or nested) in `set`.
fn message<'a>(set: &'a FileDescriptorSet, name: &str) -> Option<&'a DescriptorProto> {
    fn find<'a>(
        prefix: &str,
        messages: &'a [DescriptorProto],
        name: &str,
    ) -> Option<&'a DescriptorProto> {
        messages.iter().find_map(|m| {
            let full = qualified(prefix, m.name());
            if full == name {
                Some(m)
            } else if name.starts_with(&format!("{full}.")) {
                find(&full, &m.nested_type, name)
            } else {
                None
            }
        })
    }
    set.file
        .iter()
        .find_map(|file| find(file.package(), &file.message_type, name))
}

fn qualified(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_owned()
    } else {
        format!("{package}.{name}")
    }
}
