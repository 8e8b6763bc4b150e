//! `mprpc describe SERVICE`: the service's methods with their request and response types,
//! then every message (and enum) they use, with its fields, in `.proto` syntax and with the
//! comments of the `.proto` file.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write;

use prost_reflect::{
    Cardinality, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
    ServiceDescriptor, Syntax,
};

use crate::dynamic;
use crate::target::Target;

/// Options of `mprpc describe`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Show a service's methods with their request and response messages",
    long_about = "Show a service's methods with their request and response types, followed by \
        the fields of every message they use.\n\n\
        The descriptors come from the reflection service of one provider: --addr HOST:PORT, or \
        the first provider the registry lists."
)]
pub(crate) struct Args {
    /// Fully qualified service name, e.g. fixbug.UserServiceRpc.
    pub service: String,
}

/// Runs `mprpc describe`.
pub(crate) async fn run(target: &Target, args: Args) -> anyhow::Result<()> {
    let resolved = target.resolve(&args.service).await?;
    let service = dynamic::service_descriptor(
        &resolved.provider_channel,
        &resolved.provider,
        &args.service,
    )
    .await?;
    print!("{}", render(&service, &resolved.provider));
    Ok(())
}

/// The whole description, as printed.
fn render(service: &ServiceDescriptor, provider: &str) -> String {
    let mut out = String::new();
    let file = service.parent_file();
    let _ = writeln!(out, "// {} (from {provider})", file.name());
    comment(&mut out, "", &file, service.path());
    let _ = writeln!(out, "service {} {{", service.full_name());
    for method in service.methods() {
        comment(&mut out, "  ", &method.parent_file(), method.path());
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = write!(
            out,
            "  rpc {}({}{}) returns ({}{})",
            method.name(),
            stream(method.is_client_streaming()),
            method.input().full_name(),
            stream(method.is_server_streaming()),
            method.output().full_name()
        );
        match crate::dynamic::idempotency(&method) {
            mprpc::Idempotency::Unknown => out.push_str(";\n"),
            level => {
                let _ = writeln!(
                    out,
                    " {{\n    option idempotency_level = {};\n  }}",
                    level.as_str()
                );
            }
        }
    }
    out.push_str("}\n");

    // Every message and enum reachable from the methods, in order of first use.
    let mut queue: VecDeque<MessageDescriptor> = service
        .methods()
        .flat_map(|m| [m.input(), m.output()])
        .collect();
    let mut seen = HashSet::new();
    let mut enums = Vec::new();
    while let Some(message) = queue.pop_front() {
        if !seen.insert(message.full_name().to_owned()) || is_well_known(message.full_name()) {
            continue;
        }
        out.push('\n');
        render_message(&mut out, &message);
        for field in message.fields() {
            match field.kind() {
                Kind::Message(m) if m.is_map_entry() => {
                    queue.extend(m.fields().filter_map(|f| f.kind().as_message().cloned()));
                    enums.extend(m.fields().filter_map(|f| f.kind().as_enum().cloned()));
                }
                Kind::Message(m) => queue.push_back(m),
                Kind::Enum(e) => enums.push(e),
                _ => {}
            }
        }
    }
    for e in enums {
        if seen.insert(e.full_name().to_owned()) && !is_well_known(e.full_name()) {
            out.push('\n');
            render_enum(&mut out, &e);
        }
    }
    out
}

fn is_well_known(name: &str) -> bool {
    name.starts_with("google.protobuf.")
}

fn render_message(out: &mut String, message: &MessageDescriptor) {
    comment(out, "", &message.parent_file(), message.path());
    let _ = writeln!(out, "message {} {{", message.full_name());
    let mut oneofs_done = HashSet::new();
    for field in message.fields() {
        match field.containing_oneof().filter(|o| !o.is_synthetic()) {
            Some(oneof) => {
                if oneofs_done.insert(oneof.name().to_owned()) {
                    let _ = writeln!(out, "  oneof {} {{", oneof.name());
                    for f in oneof.fields() {
                        render_field(out, "    ", &f);
                    }
                    out.push_str("  }\n");
                }
            }
            None => render_field(out, "  ", &field),
        }
    }
    out.push_str("}\n");
}

fn render_field(out: &mut String, indent: &str, field: &FieldDescriptor) {
    comment(out, indent, &field.parent_file(), field.path());
    let label = if field.is_map() {
        ""
    } else {
        match field.cardinality() {
            Cardinality::Repeated => "repeated ",
            Cardinality::Required => "required ",
            Cardinality::Optional
                if field.field_descriptor_proto().proto3_optional()
                    || (field.parent_file().syntax() == Syntax::Proto2
                        && field.containing_oneof().is_none()) =>
            {
                "optional "
            }
            Cardinality::Optional => "",
        }
    };
    let ty = match field.kind() {
        Kind::Message(entry) if field.is_map() => format!(
            "map<{}, {}>",
            type_name(&entry.map_entry_key_field().kind()),
            type_name(&entry.map_entry_value_field().kind())
        ),
        kind => type_name(&kind),
    };
    let _ = writeln!(
        out,
        "{indent}{label}{ty} {} = {};",
        field.name(),
        field.number()
    );
}

fn render_enum(out: &mut String, e: &EnumDescriptor) {
    comment(out, "", &e.parent_file(), e.path());
    let _ = writeln!(out, "enum {} {{", e.full_name());
    for value in e.values() {
        let _ = writeln!(out, "  {} = {};", value.name(), value.number());
    }
    out.push_str("}\n");
}

fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => m.full_name().into(),
        Kind::Enum(e) => e.full_name().into(),
    }
}

/// Writes the leading comment the `.proto` file has for the element at `path`, if any.
fn comment(out: &mut String, indent: &str, file: &FileDescriptor, path: &[i32]) {
    let Some(info) = &file.file_descriptor_proto().source_code_info else {
        return;
    };
    let Some(text) = info
        .location
        .iter()
        .find(|l| l.path == path)
        .and_then(|l| l.leading_comments.as_deref())
    else {
        return;
    };
    for line in text.trim_end().lines() {
        let _ = writeln!(out, "{indent}//{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::prost_types::{
        field_descriptor_proto::{Label, Type},
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        MethodDescriptorProto, ServiceDescriptorProto,
    };
    use prost_reflect::DescriptorPool;

    #[test]
    fn renders_methods_then_the_messages_they_use() {
        let field = |name: &str, number, ty: Type, type_name: Option<&str>, label: Label| {
            FieldDescriptorProto {
                name: Some(name.to_owned()),
                number: Some(number),
                r#type: Some(ty as i32),
                type_name: type_name.map(str::to_owned),
                label: Some(label as i32),
                json_name: Some(name.to_owned()),
                ..FieldDescriptorProto::default()
            }
        };
        let message = |name: &str, fields| DescriptorProto {
            name: Some(name.to_owned()),
            field: fields,
            ..DescriptorProto::default()
        };
        let fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("s.proto".to_owned()),
                package: Some("s".to_owned()),
                syntax: Some("proto3".to_owned()),
                message_type: vec![
                    message(
                        "Req",
                        vec![field("name", 1, Type::Bytes, None, Label::Optional)],
                    ),
                    message(
                        "Resp",
                        vec![field(
                            "items",
                            2,
                            Type::Message,
                            Some(".s.Item"),
                            Label::Repeated,
                        )],
                    ),
                    message(
                        "Item",
                        vec![field("n", 1, Type::Uint32, None, Label::Optional)],
                    ),
                ],
                service: vec![ServiceDescriptorProto {
                    name: Some("Svc".to_owned()),
                    method: vec![MethodDescriptorProto {
                        name: Some("Get".to_owned()),
                        input_type: Some(".s.Req".to_owned()),
                        output_type: Some(".s.Resp".to_owned()),
                        ..MethodDescriptorProto::default()
                    }],
                    ..ServiceDescriptorProto::default()
                }],
                ..FileDescriptorProto::default()
            }],
        };
        let pool = DescriptorPool::from_file_descriptor_set(fds).unwrap();
        let service = pool.get_service_by_name("s.Svc").unwrap();
        let text = render(&service, "127.0.0.1:1");
        assert_eq!(
            text,
            "// s.proto (from 127.0.0.1:1)\n\
             service s.Svc {\n  rpc Get(s.Req) returns (s.Resp);\n}\n\n\
             message s.Req {\n  bytes name = 1;\n}\n\n\
             message s.Resp {\n  repeated s.Item items = 2;\n}\n\n\
             message s.Item {\n  uint32 n = 1;\n}\n"
        );
    }
}
