//! [`BoxFuture`]: the boxed future type-erased handlers and registries return.
//!
//! It lives at the bottom of the module graph so that both the provider ([`crate::server`])
//! and the registries ([`crate::registry`]) can name it without importing each other. The
//! public path is `mprpc::server::BoxFuture`.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what a type-erased handler returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
