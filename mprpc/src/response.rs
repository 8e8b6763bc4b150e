//! What a call returns besides its message: the response metadata.
//!
//! [`Response`] is the same type on both sides. On the provider, server layers return it
//! (a handler that returns a bare message sets metadata with
//! [`server::reply_metadata`](crate::server::reply_metadata)); on the consumer, the
//! `*_with_metadata` methods of the generated clients and
//! [`Channel::unary_with_metadata`](crate::client::Channel::unary_with_metadata) return it. A
//! failure carries its metadata in the [`Status`](crate::Status) instead.

use crate::Metadata;

/// A message with the response metadata that came with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response<T> {
    message: T,
    metadata: Metadata,
}

impl<T> Response<T> {
    /// A response carrying `message` and no metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            message,
            metadata: Metadata::new(),
        }
    }

    /// A response carrying `message` and `metadata`.
    pub fn from_parts(metadata: Metadata, message: T) -> Response<T> {
        Response { message, metadata }
    }

    /// The metadata and the message.
    pub fn into_parts(self) -> (Metadata, T) {
        (self.metadata, self.message)
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The response metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The response metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Swaps the message for another, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            message: f(self.message),
            metadata: self.metadata,
        }
    }
}
