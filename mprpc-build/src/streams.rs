//! The generated code of streaming methods (the generator writes unary ones itself): the
//! trait method, the adapter's arm and the clients' methods of each kind, shaped like
//! tonic's.
//!
//! | kind | trait method | async client | blocking client |
//! | --- | --- | --- | --- |
//! | server streaming | `Request<In>` → `Self::MStream` | `Streaming<Out>` | `BlockingStreaming<Out>` |
//! | client streaming | `Request<Streaming<In>>` → `Out` | takes a `Stream` of `In` | takes an `IntoIterator` of `In` |
//! | bidirectional | `Request<Streaming<In>>` → `Self::MStream` | both | both |

use heck::ToUpperCamelCase;
use prost_build::Method;

use crate::generator::{request_of, result_of, rust_type, RT};

/// Appends one line to a `String` (writing to a `String` cannot fail).
macro_rules! emit {
    ($buf:expr, $($arg:tt)*) => {{
        let _ = std::fmt::Write::write_fmt($buf, format_args!($($arg)*));
        $buf.push('\n');
    }};
}

/// Which sides of a method stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    Client,
    Server,
    Both,
}

impl Kind {
    pub(crate) fn of(method: &Method) -> Kind {
        match (method.client_streaming, method.server_streaming) {
            (false, false) => Kind::Unary,
            (true, false) => Kind::Client,
            (false, true) => Kind::Server,
            (true, true) => Kind::Both,
        }
    }

    /// The runtime's `MethodKind` variant.
    fn runtime(self) -> &'static str {
        match self {
            Kind::Unary => "Unary",
            Kind::Client => "ClientStreaming",
            Kind::Server => "ServerStreaming",
            Kind::Both => "Bidirectional",
        }
    }
}

/// The associated type of a method whose replies stream: `ListFriendsStream`.
fn stream_type(method: &Method) -> String {
    format!("{}Stream", method.proto_name.to_upper_camel_case())
}

/// The request type a handler of `method` takes.
fn handler_input(method: &Method, kind: Kind) -> String {
    let input = rust_type(&method.input_type);
    match kind {
        Kind::Client | Kind::Both => format!("{RT}::Request<{RT}::Streaming<{input}>>"),
        Kind::Unary | Kind::Server => format!("{RT}::Request<{input}>"),
    }
}

/// The associated type of a method whose replies stream, if `method`'s do.
pub(crate) fn write_stream_type(method: &Method, kind: Kind, buf: &mut String) {
    if !matches!(kind, Kind::Server | Kind::Both) {
        return;
    }
    emit!(
        buf,
        "/// The stream of replies [`{name}`](Self::{name}) returns.",
        name = method.name
    );
    emit!(
        buf,
        "type {stream}: {RT}::Stream<Item = {result}> + ::core::marker::Send + 'static;",
        stream = stream_type(method),
        result = result_of(&rust_type(&method.output_type))
    );
}

/// The trait's method for a streaming method (its stream type is written before its docs).
pub(crate) fn write_trait_method(method: &Method, kind: Kind, buf: &mut String) {
    let ok = if matches!(kind, Kind::Server | Kind::Both) {
        format!("Self::{}", stream_type(method))
    } else {
        rust_type(&method.output_type)
    };
    emit!(
        buf,
        "fn {name}(&self, request: {input}) -> impl {RT}::Future<Output = {result}> + ::core::marker::Send;",
        name = method.name,
        input = handler_input(method, kind),
        result = result_of(&ok),
    );
}

/// The `streaming_methods` of the adapter, if the service has any.
pub(crate) fn write_streaming_methods(methods: &[Method], buf: &mut String) {
    let streaming: Vec<String> = methods
        .iter()
        .filter(|m| Kind::of(m) != Kind::Unary)
        .map(|m| {
            format!(
                "({:?}, {RT}::MethodKind::{})",
                m.proto_name,
                Kind::of(m).runtime()
            )
        })
        .collect();
    if streaming.is_empty() {
        return;
    }
    emit!(
        buf,
        "fn streaming_methods(&self) -> &'static [(&'static str, {RT}::MethodKind)] {{ &[{}] }}",
        streaming.join(", ")
    );
}

/// The adapter's arm for a streaming method.
pub(crate) fn write_server_arm(method: &Method, kind: Kind, buf: &mut String) {
    let proto_name = &method.proto_name;
    let input = rust_type(&method.input_type);
    emit!(buf, "{proto_name:?} => {{");
    emit!(buf, "let inner = {RT}::Arc::clone(&self.inner);");
    emit!(buf, "::std::boxed::Box::pin(async move {{");
    match kind {
        Kind::Server => {
            emit!(
                buf,
                "let (request, sink) = {RT}::server_stream_request::<{input}>(request)?;"
            );
            emit!(buf, "let replies = inner.{}(request).await?;", method.name);
            emit!(buf, "{RT}::send_stream(sink, replies).await");
        }
        Kind::Client => {
            emit!(
                buf,
                "let request = {RT}::client_stream_request::<{input}>(request)?;"
            );
            emit!(
                buf,
                "inner.{}(request).await.map(|reply| {RT}::encode_response(&reply))",
                method.name
            );
        }
        Kind::Both => {
            emit!(
                buf,
                "let (request, sink) = {RT}::bidi_request::<{input}>(request)?;"
            );
            emit!(buf, "let replies = inner.{}(request).await?;", method.name);
            emit!(buf, "{RT}::send_stream(sink, replies).await");
        }
        Kind::Unary => unreachable!("unary arms are the generator's"),
    }
    emit!(buf, "}})");
    emit!(buf, "}}");
}

/// A client's method for a streaming method (`is_async`: the async client, else the
/// blocking one).
pub(crate) fn write_client_method(method: &Method, kind: Kind, is_async: bool, buf: &mut String) {
    let (name, proto_name) = (&method.name, &method.proto_name);
    let input = rust_type(&method.input_type);
    let output = rust_type(&method.output_type);
    let replies = if is_async {
        format!("{RT}::Streaming<{output}>")
    } else {
        format!("{RT}::BlockingStreaming<{output}>")
    };
    let ok = match kind {
        Kind::Client => output.clone(),
        _ => replies,
    };
    let result = result_of(&ok);
    let returns = if is_async {
        format!("impl {RT}::Future<Output = {result}> + ::core::marker::Send + '_")
    } else {
        result
    };
    let channel_method = match kind {
        Kind::Server => "server_streaming",
        Kind::Client => "client_streaming",
        Kind::Both => "streaming",
        Kind::Unary => unreachable!("unary methods are the generator's"),
    };
    if kind == Kind::Server {
        emit!(
            buf,
            "pub fn {name}(&self, request: impl {RT}::IntoRequest<{input}>) -> {returns} {{"
        );
        emit!(
            buf,
            "self.channel.{channel_method}(SERVICE_NAME, {proto_name:?}, {})",
            request_of(method)
        );
    } else if is_async {
        emit!(
            buf,
            "pub fn {name}(&self, request: impl {RT}::IntoStreamingRequest<{input}>) -> {returns} {{"
        );
        // Boxed before the future, which then holds no type of the caller's.
        emit!(
            buf,
            "let request = {RT}::IntoStreamingRequest::into_streaming_request(request);"
        );
        emit!(
            buf,
            "self.channel.{channel_method}(SERVICE_NAME, {proto_name:?}, request)"
        );
    } else {
        emit!(
            buf,
            "pub fn {name}<I>(&self, requests: I) -> {returns} where I: ::core::iter::IntoIterator<Item = {input}>, I::IntoIter: ::core::marker::Send + 'static {{"
        );
        emit!(
            buf,
            "self.channel.{channel_method}(SERVICE_NAME, {proto_name:?}, {RT}::Request::new(requests))"
        );
    }
    emit!(buf, "}}");
}
