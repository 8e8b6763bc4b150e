//! The seam between the provider and the code generated for each service.
//!
//! `mprpc-build` generates, for every service in a `.proto` file, a trait the application
//! implements and an adapter (`XxxServer<T>`) that implements [`Service`]: it decodes the
//! request for the named method, calls the trait, and encodes the reply. The provider only
//! ever sees [`Service`], so it can host any mix of services.

pub use crate::future::BoxFuture;
use crate::stream::MethodKind;
use crate::{Body, Request, Status};

/// A service the provider can host: usually a generated `XxxServer<T>` adapter.
pub trait Service: Send + Sync + 'static {
    /// Fully qualified name, `package.Service` (`fixbug.UserServiceRpc`), as callers send it.
    fn name(&self) -> &'static str;

    /// The service's method names as declared in the `.proto` file (`Login`, `Register`).
    fn methods(&self) -> &'static [&'static str];

    /// The methods that stream, with their kinds; every other method is unary. A streaming
    /// call reaches [`call`](Self::call) like a unary one, with its stream in the request's
    /// extensions (the generated adapter takes it out), and its future runs until the
    /// stream ends.
    fn streaming_methods(&self) -> &'static [(&'static str, MethodKind)] {
        &[]
    }

    /// Runs one call. The request body is the encoded request message; the reply is the
    /// encoded response message. An unknown method must give [`crate::Code::Unimplemented`].
    fn call(&self, method: &str, request: Request<Body>) -> BoxFuture<Result<Body, Status>>;

    /// The encoded `google.protobuf.FileDescriptorSet` that declares this service (with its
    /// dependencies), served by the provider's reflection service so that tools can call it
    /// without the `.proto` files. Empty when unknown.
    fn file_descriptor_set(&self) -> &'static [u8] {
        &[]
    }
}
