//! The [`prost_build::ServiceGenerator`] that writes mprpc's server traits, server adapters
//! and clients.
//!
//! The code is built as plain text and must be valid Rust tokens: prost-build parses the whole
//! output with `syn` and formats it with `prettyplease`, so layout here does not matter.
//!
//! Generated code reaches the runtime only through `::mprpc::codegen`, so a user crate needs
//! nothing but `mprpc` (and `prost`, for the messages) in its dependencies. Every other path is
//! absolute (`::core::...`, `::std::...`) so that names in the user's crate cannot shadow it.

use std::fmt::Write as _;

use heck::ToSnakeCase;
use prost_build::{Comments, Method, Service};

use crate::streams::{self, Kind};

/// Appends one line to a `String` (writing to a `String` cannot fail).
macro_rules! emit {
    ($buf:expr, $($arg:tt)*) => {{
        let _ = writeln!($buf, $($arg)*);
    }};
}

pub(crate) const RT: &str = "::mprpc::codegen";
const RESULT: &str = "::core::result::Result";

/// Generates, for every service, a `<service>_server` module (async trait + adapter that
/// implements the runtime's `Service`) and a `<service>_client` module (async and blocking
/// clients).
///
/// [`Builder`](crate::Builder) installs it for you. Use it directly only to drive your own
/// [`prost_build::Config`]; then check the descriptors first with
/// [`check_file_descriptor_set`](crate::check_file_descriptor_set), since a generator cannot
/// report errors.
#[derive(Clone, Debug)]
pub struct Generator {
    build_server: bool,
    build_client: bool,
    /// Whether `<package>.mprpc.bin` descriptor files are written next to the code (the
    /// [`Builder`](crate::Builder) writes them), so adapters can serve reflection.
    descriptors: bool,
    /// Whether the package being generated has services (reset per package).
    package_has_services: bool,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            build_server: true,
            build_client: true,
            descriptors: false,
            package_has_services: false,
        }
    }
}

impl Generator {
    /// A generator that writes both the server and the client side.
    pub fn new() -> Self {
        Generator::default()
    }

    /// Whether to write the server trait and adapter (default `true`).
    pub fn build_server(mut self, yes: bool) -> Self {
        self.build_server = yes;
        self
    }

    /// Whether to write the async and blocking clients (default `true`).
    pub fn build_client(mut self, yes: bool) -> Self {
        self.build_client = yes;
        self
    }

    /// Whether each package's code embeds its descriptors from a `<package>.mprpc.bin` file
    /// beside it, for the provider's reflection service (default `false`; the
    /// [`Builder`](crate::Builder) turns it on and writes the files).
    pub fn embed_descriptors(mut self, yes: bool) -> Self {
        self.descriptors = yes;
        self
    }
}

/// The descriptor file of a package, written beside its generated code.
pub(crate) fn descriptor_file_name(package: &str) -> String {
    let package = if package.is_empty() { "_" } else { package };
    format!("{package}.mprpc.bin")
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let names = Names::new(&service);
        if self.build_server {
            write_server(&service, &names, self.descriptors, buf);
            self.package_has_services = true;
        }
        if self.build_client {
            write_client(&service, &names, buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        if self.descriptors && std::mem::take(&mut self.package_has_services) {
            emit!(
                buf,
                "/// The encoded `FileDescriptorSet` this package was generated from: providers serve it\n\
                 /// through reflection, so tools can call its services without the `.proto` files."
            );
            emit!(
                buf,
                "pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!({:?});",
                descriptor_file_name(package)
            );
        }
    }
}

/// The names every part of a service's code uses.
struct Names {
    /// `fixbug.UserServiceRpc`: what goes on the wire.
    full_name: String,
    /// `UserServiceRpc`: the trait; the prefix of the structs.
    camel: String,
    /// `user_service_rpc`: the prefix of the modules.
    snake: String,
}

impl Names {
    fn new(service: &Service) -> Names {
        let full_name = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        Names {
            full_name,
            camel: service.name.trim_start_matches("r#").to_owned(),
            snake: service.proto_name.to_snake_case(),
        }
    }
}

/// The Rust type of a method's input or output, as seen from inside the nested
/// `<service>_server` / `<service>_client` module.
///
/// prost-build gives paths relative to the package's module (`LoginRequest`,
/// `super::other::Foo`), absolute paths for extern types (`::prost_types::Timestamp`), and `()`
/// for `google.protobuf.Empty`; only the relative ones need one more `super::`.
pub(crate) fn rust_type(ty: &str) -> String {
    if ty == "()" || ty.starts_with("::") || ty.starts_with("crate::") {
        ty.to_owned()
    } else {
        format!("super::{ty}")
    }
}

/// Writes the proto comments of an item as doc lines; `fallback` if it has none. Detached
/// comments (separated from the item by a blank line) are not about the item and are dropped.
fn write_docs(buf: &mut String, comments: &Comments, fallback: &str) {
    if comments.leading.is_empty() && comments.trailing.is_empty() {
        emit!(buf, "/// {fallback}");
    } else {
        let attached = Comments {
            leading_detached: Vec::new(),
            leading: comments.leading.clone(),
            trailing: comments.trailing.clone(),
        };
        attached.append_with_indent(0, buf);
    }
}

/// Writes the comments of a service (if any) after a blank doc line, below a summary line.
fn write_summary_and_docs(buf: &mut String, summary: &str, comments: &Comments) {
    emit!(buf, "/// {summary}");
    if !comments.leading.is_empty() || !comments.trailing.is_empty() {
        emit!(buf, "///");
        write_docs(buf, comments, "");
    }
}

pub(crate) fn result_of(ok: &str) -> String {
    format!("{RESULT}<{ok}, {RT}::Status>")
}

fn write_server(service: &Service, names: &Names, descriptors: bool, buf: &mut String) {
    let Names {
        full_name,
        camel,
        snake,
    } = names;
    let server = format!("{camel}Server");

    emit!(
        buf,
        "/// Server side of `{full_name}`: the service trait and its adapter."
    );
    emit!(buf, "pub mod {snake}_server {{");
    emit!(
        buf,
        "/// The fully qualified service name, as callers send it."
    );
    emit!(buf, "pub const SERVICE_NAME: &str = \"{full_name}\";");

    // The trait.
    write_docs(
        buf,
        &service.comments,
        &format!("The `{full_name}` service."),
    );
    emit!(buf, "///");
    emit!(
        buf,
        "/// Implement it and host the implementation in a provider with [`{server}`]."
    );
    emit!(
        buf,
        "pub trait {camel}: ::core::marker::Send + ::core::marker::Sync + 'static {{"
    );
    for method in &service.methods {
        let kind = Kind::of(method);
        // A streaming method's stream type comes first, so that the docs go to the method.
        streams::write_stream_type(method, kind, buf);
        write_docs(
            buf,
            &method.comments,
            &format!("Handles `{}`.", method.proto_name),
        );
        if kind != Kind::Unary {
            streams::write_trait_method(method, kind, buf);
            continue;
        }
        emit!(
            buf,
            "fn {name}(&self, request: {RT}::Request<{input}>) -> impl {RT}::Future<Output = {result}> + ::core::marker::Send;",
            name = method.name,
            input = rust_type(&method.input_type),
            result = result_of(&rust_type(&method.output_type)),
        );
    }
    emit!(buf, "}}");

    // The adapter.
    emit!(buf, "/// Hosts a [`{camel}`] implementation in a provider.");
    emit!(buf, "///");
    emit!(
        buf,
        "/// It is the runtime's type-erased `Service` for the implementation: it decodes"
    );
    emit!(
        buf,
        "/// each request, calls the trait method and encodes the reply."
    );
    emit!(buf, "pub struct {server}<T> {{ inner: {RT}::Arc<T> }}");
    emit!(buf, "impl<T: {camel}> {server}<T> {{");
    emit!(buf, "/// Wraps an implementation.");
    emit!(
        buf,
        "pub fn new(inner: T) -> Self {{ Self::from_arc({RT}::Arc::new(inner)) }}"
    );
    emit!(buf, "/// Wraps an implementation that is already shared.");
    emit!(
        buf,
        "pub fn from_arc(inner: {RT}::Arc<T>) -> Self {{ Self {{ inner }} }}"
    );
    emit!(
        buf,
        "/// Wraps an implementation, with `interceptor` checking each call to this service"
    );
    emit!(
        buf,
        "/// before its handler runs: an async closure over the call; an `Err` refuses it."
    );
    emit!(
        buf,
        "pub fn with_interceptor<F, Fut>(inner: T, interceptor: F) -> {RT}::Intercepted<Self, F> \
         where F: ::core::ops::Fn(&mut {RT}::ServerCall) -> Fut + ::core::marker::Send + ::core::marker::Sync + 'static, \
         Fut: {RT}::Future<Output = ::core::result::Result<(), {RT}::Status>> + ::core::marker::Send + 'static \
         {{ {RT}::Intercepted::new(Self::new(inner), interceptor) }}"
    );
    emit!(buf, "}}");
    emit!(buf, "impl<T> ::core::clone::Clone for {server}<T> {{");
    emit!(
        buf,
        "fn clone(&self) -> Self {{ Self {{ inner: {RT}::Arc::clone(&self.inner) }} }}"
    );
    emit!(buf, "}}");
    // Debug without `T: Debug`: an implementation need not be printable.
    emit!(buf, "impl<T> ::core::fmt::Debug for {server}<T> {{");
    emit!(
        buf,
        "fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{ f.debug_struct({server:?}).finish_non_exhaustive() }}"
    );
    emit!(buf, "}}");

    emit!(buf, "impl<T: {camel}> {RT}::Service for {server}<T> {{");
    emit!(buf, "fn name(&self) -> &'static str {{ SERVICE_NAME }}");
    let method_names: Vec<String> = service
        .methods
        .iter()
        .map(|m| format!("{:?}", m.proto_name))
        .collect();
    emit!(
        buf,
        "fn methods(&self) -> &'static [&'static str] {{ &[{}] }}",
        method_names.join(", ")
    );
    streams::write_streaming_methods(&service.methods, buf);
    if descriptors {
        emit!(
            buf,
            "fn file_descriptor_set(&self) -> &'static [u8] {{ super::FILE_DESCRIPTOR_SET }}"
        );
    }
    let request = if service.methods.is_empty() {
        "_request"
    } else {
        "request"
    };
    emit!(
        buf,
        "fn call(&self, method: &str, {request}: {RT}::Request<{RT}::Body>) -> {RT}::BoxFuture<{result}> {{",
        result = result_of(&format!("{RT}::Body")),
    );
    if service.methods.is_empty() {
        emit!(buf, "{RT}::unimplemented_method(SERVICE_NAME, method)");
    } else {
        emit!(buf, "match method {{");
        for method in &service.methods {
            match Kind::of(method) {
                Kind::Unary => write_server_arm(method, buf),
                kind => streams::write_server_arm(method, kind, buf),
            }
        }
        emit!(
            buf,
            "_ => {RT}::unimplemented_method(SERVICE_NAME, method),"
        );
        emit!(buf, "}}");
    }
    emit!(buf, "}}");
    emit!(buf, "}}");

    emit!(buf, "}}");
}

fn write_server_arm(method: &Method, buf: &mut String) {
    let proto_name = &method.proto_name;
    emit!(buf, "{proto_name:?} => {{");
    emit!(buf, "let inner = {RT}::Arc::clone(&self.inner);");
    emit!(buf, "::std::boxed::Box::pin(async move {{");
    emit!(
        buf,
        "let request = {RT}::decode_request::<{input}>(SERVICE_NAME, {proto_name:?}, request)?;",
        input = rust_type(&method.input_type),
    );
    // No `let reply = ...?;`: a `()` reply (`google.protobuf.Empty`) would trip clippy's
    // `let_unit_value` in the user's crate. The trait's result type also tells inference what
    // the `?` above converts into.
    emit!(
        buf,
        "inner.{}(request).await.map(|reply| {RT}::encode_response(&reply))",
        method.name
    );
    emit!(buf, "}})");
    emit!(buf, "}}");
}

/// The expression a client method sends: the caller's request, marked with the method's
/// declared `idempotency_level` if it has one.
pub(crate) fn request_of(method: &Method) -> String {
    use prost_types::method_options::IdempotencyLevel;
    let request = format!("{RT}::IntoRequest::into_request(request)");
    let level = match method.options.idempotency_level() {
        IdempotencyLevel::IdempotencyUnknown => return request,
        IdempotencyLevel::NoSideEffects => "NoSideEffects",
        IdempotencyLevel::Idempotent => "Idempotent",
    };
    format!("{RT}::declare_idempotency({request}, {RT}::Idempotency::{level})")
}

fn write_client(service: &Service, names: &Names, buf: &mut String) {
    let Names {
        full_name,
        camel,
        snake,
    } = names;
    // A service without methods never reads its channel.
    let field_attr = if service.methods.is_empty() {
        "#[allow(dead_code)] "
    } else {
        ""
    };

    emit!(
        buf,
        "/// Client side of `{full_name}`: an async and a blocking client."
    );
    emit!(buf, "pub mod {snake}_client {{");
    emit!(
        buf,
        "/// The fully qualified service name, as callers send it."
    );
    emit!(buf, "pub const SERVICE_NAME: &str = \"{full_name}\";");

    let flavours = [
        (
            format!("{camel}Client"),
            "Channel",
            format!("Async client of `{full_name}`."),
            true,
        ),
        (
            format!("{camel}BlockingClient"),
            "BlockingChannel",
            format!("Blocking client of `{full_name}`: each call blocks until its reply."),
            false,
        ),
    ];
    for (client, channel, summary, is_async) in flavours {
        // An async method returns the channel's future itself, with no async function of its
        // own: one level less in every call's future.
        let returns = |result: String| {
            if is_async {
                format!("impl {RT}::Future<Output = {result}> + ::core::marker::Send + '_")
            } else {
                result
            }
        };
        write_summary_and_docs(buf, &summary, &service.comments);
        emit!(buf, "#[derive(::core::clone::Clone, ::core::fmt::Debug)]");
        emit!(
            buf,
            "pub struct {client} {{ {field_attr}channel: {RT}::{channel} }}"
        );
        emit!(buf, "impl {client} {{");
        emit!(buf, "/// A client that sends its calls over `channel`.");
        emit!(
            buf,
            "pub fn new(channel: {RT}::{channel}) -> Self {{ Self {{ channel }} }}"
        );
        emit!(
            buf,
            "/// A client over `channel` whose calls first pass `interceptor`: an async closure"
        );
        emit!(
            buf,
            "/// over the call (add a token to its metadata); an `Err` refuses it, nothing is sent."
        );
        emit!(
            buf,
            "pub fn with_interceptor<F, Fut>(channel: {RT}::{channel}, interceptor: F) -> Self \
             where F: ::core::ops::Fn(&mut {RT}::ClientCall<'_>) -> Fut + ::core::marker::Send + ::core::marker::Sync + 'static, \
             Fut: {RT}::Future<Output = ::core::result::Result<(), {RT}::Status>> + ::core::marker::Send + 'static \
             {{ Self::new(channel.layer({RT}::client_interceptor(interceptor))) }}"
        );
        for method in &service.methods {
            write_docs(
                buf,
                &method.comments,
                &format!("Calls `{}`.", method.proto_name),
            );
            let kind = Kind::of(method);
            if kind != Kind::Unary {
                streams::write_client_method(method, kind, is_async, buf);
                continue;
            }
            emit!(
                buf,
                "pub fn {name}(&self, request: impl {RT}::IntoRequest<{input}>) -> {result} {{",
                name = method.name,
                input = rust_type(&method.input_type),
                result = returns(result_of(&rust_type(&method.output_type))),
            );
            emit!(
                buf,
                "self.channel.unary(SERVICE_NAME, {:?}, {})",
                method.proto_name,
                request_of(method),
            );
            emit!(buf, "}}");
            emit!(
                buf,
                "/// [`{name}`](Self::{name}), with the response metadata.",
                name = method.name,
            );
            emit!(
                buf,
                "pub fn {name}_with_metadata(&self, request: impl {RT}::IntoRequest<{input}>) -> {result} {{",
                name = method.name,
                input = rust_type(&method.input_type),
                result = returns(format!(
                    "::core::result::Result<{RT}::Response<{}>, {RT}::Status>",
                    rust_type(&method.output_type)
                )),
            );
            emit!(
                buf,
                "self.channel.unary_with_metadata(SERVICE_NAME, {:?}, {})",
                method.proto_name,
                request_of(method),
            );
            emit!(buf, "}}");
        }
        emit!(buf, "}}");
    }

    emit!(buf, "}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_types_gain_a_super() {
        assert_eq!(rust_type("LoginRequest"), "super::LoginRequest");
        assert_eq!(rust_type("super::other::Foo"), "super::super::other::Foo");
        assert_eq!(
            rust_type("::prost_types::Timestamp"),
            "::prost_types::Timestamp"
        );
        assert_eq!(rust_type("()"), "()");
    }
}
