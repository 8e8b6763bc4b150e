//! Checks on the compiled descriptors that must pass before any code is generated.
//!
//! A [`prost_build::ServiceGenerator`] cannot report errors, so whatever the generator cannot
//! handle is rejected here with a readable [`io::Error`]: method names that would collide once
//! turned into Rust names.

use std::collections::HashMap;
use std::io;

use heck::ToSnakeCase;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// Checks that every service in `fds` can be generated: no two methods of a service get the
/// same Rust name, and no method is named `new` (the clients'
/// constructor).
///
/// [`Builder::compile`](crate::Builder::compile) runs this itself; call it when you install
/// a [`Generator`](crate::Generator) in your own [`prost_build::Config`].
pub fn check_file_descriptor_set(fds: &FileDescriptorSet) -> io::Result<()> {
    check(fds, true)
}

pub(crate) fn check(fds: &FileDescriptorSet, build_client: bool) -> io::Result<()> {
    for file in &fds.file {
        for (service_index, service) in file.service.iter().enumerate() {
            let full_name = if file.package().is_empty() {
                service.name().to_owned()
            } else {
                format!("{}.{}", file.package(), service.name())
            };
            let mut rust_names: HashMap<String, &str> = HashMap::new();
            for (method_index, method) in service.method.iter().enumerate() {
                let proto_name = method.name();
                let what = format!(
                    "{}: method `{proto_name}` of service `{full_name}`",
                    position(file, &[6, service_index, 2, method_index])
                );
                let rust_name = proto_name.to_snake_case();
                if build_client && rust_name == "new" {
                    return Err(invalid(format!(
                        "{what} would become `new`, which the generated clients use as their \
                         constructor; rename the method"
                    )));
                }
                if let Some(other) = rust_names.insert(rust_name.clone(), proto_name) {
                    return Err(invalid(format!(
                        "{what} and method `{other}` would both become the Rust method \
                         `{rust_name}`; rename one of them"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `file:line:column` of the element at `path` (a `SourceCodeInfo` path), or just `file`
/// when the descriptors carry no source info.
fn position(file: &FileDescriptorProto, path: &[usize]) -> String {
    let span = file.source_code_info.as_ref().and_then(|info| {
        info.location
            .iter()
            .find(|location| {
                location.path.len() == path.len()
                    && location
                        .path
                        .iter()
                        .zip(path)
                        .all(|(&a, &b)| usize::try_from(a) == Ok(b))
            })
            .map(|location| &location.span)
    });
    match span.map(Vec::as_slice) {
        Some([line, column, ..]) => format!("{}:{}:{}", file.name(), line + 1, column + 1),
        _ => file.name().to_owned(),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("mprpc-build: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use prost_types::{MethodDescriptorProto, ServiceDescriptorProto};

    use super::*;

    fn fds(methods: Vec<MethodDescriptorProto>) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("s.proto".into()),
                package: Some("pkg".into()),
                service: vec![ServiceDescriptorProto {
                    name: Some("Svc".into()),
                    method: methods,
                    options: None,
                }],
                ..Default::default()
            }],
        }
    }

    fn method(name: &str) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(".pkg.Req".into()),
            output_type: Some(".pkg.Resp".into()),
            ..Default::default()
        }
    }

    #[test]
    fn unary_methods_pass() {
        check_file_descriptor_set(&fds(vec![method("Login"), method("Type")])).unwrap();
    }

    #[test]
    fn new_clashes_only_with_clients() {
        let set = fds(vec![method("New")]);
        let err = check(&set, true).unwrap_err().to_string();
        assert!(
            err.contains("s.proto: method `New` of service `pkg.Svc`"),
            "{err}"
        );
        check(&set, false).unwrap();
    }

    #[test]
    fn same_rust_name_is_rejected() {
        let err = check_file_descriptor_set(&fds(vec![method("GetFoo"), method("get_foo")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`get_foo`"), "{err}");
    }

    #[test]
    fn streaming_methods_are_accepted() {
        let mut m = method("Watch");
        m.server_streaming = Some(true);
        let mut n = method("Upload");
        n.client_streaming = Some(true);
        check_file_descriptor_set(&fds(vec![m, n])).unwrap();
    }
}
