//! mprpc: a distributed RPC framework. Services are declared in `.proto` files; `mprpc-build`
//! generates the messages, an async server trait per service and typed clients (async and
//! blocking); a provider hosts implementations on a multi-threaded tokio runtime; a consumer
//! [`Channel`](client::Channel) finds providers through a [`registry`], keeps one multiplexed
//! connection to each, and reports every failure as a typed [`Status`].
//!
//! # Layout
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`status`] | [`Status`] and [`Code`]: every failure a caller can see |
//! | [`auth`] | bearer tokens, principals and allow lists |
//! | [`body`] | [`Body`]: a message's encoded bytes, one buffer or several pieces |
//! | [`request`] | [`Request`] and [`Metadata`]: a message with its call context |
//! | [`response`] | [`Response`]: a reply message with its response metadata |
//! | [`protocol`] | the frame format and its codec (see `docs/PROTOCOL.md`), and the original C++ mprpc's wire format |
//! | [`stream`] | streaming calls: [`stream::Streaming`], flow-control windows, a connection's open streams |
//! | [`server`] | the provider: listener, protocol detection, connections (mprpc's frames, the original's protocol, HTTP/JSON, gRPC), dispatch, graceful shutdown |
//! | [`client`] | the consumer: channel, multiplexed connections, load balancing, calls to the original's providers |
//! | [`reflection`] | the messages of the built-in service that tells tools what a provider hosts ([`client::reflection`] calls it) |
//! | [`registry`] | where providers are registered and found: the seam and the static list |
//! | [`admin`] | the optional HTTP admin port: `/metrics`, `/status`, `/health` |
//! | [`config`] | the TOML (or legacy `key=value`) configuration file |
//! | [`trace`] | trace and span ids carried in call metadata, and the spans around calls |
//! | [`context`] | the incoming call a handler's own calls belong to: its trace and deadline |
//! | [`tls`] | TLS on the RPC port: certificates from files, reloaded; the peer's identity |
//! | [`logging`] | `tracing` to a non-blocking daily file writer |
//! | [`metrics`] | per-method call counts, errors by code, latency histograms |
//! | [`report`] | an error and its causes as one line, for programs to print |
//!
//! Imports between these modules point one way, with no cycle: [`body`], [`request`], [`response`] and
//! [`status`] at the bottom; then [`protocol`]; then [`config`] (plain settings, which take their metadata
//! defaults from [`protocol::limits`]); then [`logging`], [`metrics`], [`trace`] (with [`context`]) and
//! [`reflection`] (its messages only); then [`stream`]; then [`registry`]; then [`client`] and [`server`]; and
//! [`admin`] last: the provider starts it, and it imports neither `server` nor `client`.
//! [`server::BoxFuture`] is defined in a private module below all of these, so that the
//! registries can name it without importing the provider.
//!
//! # Example
//!
//! ```ignore
//! // build.rs: mprpc_build::compile_protos(&["proto/user.proto"], &["proto"])?;
//! mprpc::include_proto!("fixbug");
//! ```

pub mod admin;
pub mod auth;
pub mod body;
pub mod client;
#[doc(hidden)]
pub mod codegen;
pub mod compression;
pub mod config;
pub mod context;
mod future;
mod hash;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod reflection;
pub mod registry;
pub mod report;
pub mod request;
pub mod response;
pub mod server;
pub mod status;
pub mod stream;
mod sync;
pub mod tls;
mod tower_stack;
pub mod trace;

pub use body::Body;
pub use request::{Idempotency, IntoRequest, Metadata, Request};
pub use response::Response;
pub use status::{Code, Status};

/// Includes the code `mprpc-build` generated for a protobuf package.
///
/// ```ignore
/// pub mod fixbug {
///     mprpc::include_proto!("fixbug");
/// }
/// ```
#[macro_export]
macro_rules! include_proto {
    ($package:tt) => {
        include!(concat!(env!("OUT_DIR"), concat!("/", $package, ".rs")));
    };
}
