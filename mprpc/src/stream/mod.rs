//! Streaming calls: a client stream of requests, a server stream of replies, or both.
//!
//! On the wire (`docs/PROTOCOL.md`) a streaming call opens with a `Request` frame naming its
//! kind; its messages follow as `Message` frames (or runs of them in `MessageBatch` frames),
//! the consumer ends its requests with a `HalfClose`, and the provider ends the call with its
//! `Response` frame: the final status with trailing metadata (and for a client-streaming
//! call, the one reply). Each stream has credit-based flow control, and so does each
//! connection ([`window`]): a sender with no credit waits, so a slow receiver never buffers
//! more than its windows.
//!
//! - [`Streaming`]: the stream of messages a handler or a caller reads;
//! - `window.rs`: credit, on the sending and the receiving side;
//! - `inbound.rs`: one stream's queue of received messages;
//! - `in_place.rs`: one message of a run, decoded where it lies;
//! - `table.rs`: a connection's open streams, fed by its reader;
//! - `streaming.rs`: [`Streaming`], what reads a stream on either side;
//! - `handler.rs`: what a provider hands a streaming handler, and how its replies are sent;
//! - `batch.rs`: the replies a handler has ready, encoded together (one `MessageBatch` frame
//!   for a caller that reads them).

mod batch;
mod handler;
mod in_place;
mod inbound;
mod streaming;
mod table;
pub mod window;

use std::fmt;
use std::pin::Pin;

use futures_util::Stream;

pub(crate) use self::handler::StreamIo;
pub use self::handler::{send_stream, ReplySink};
pub(crate) use self::handler::{server_streaming_request, streaming_request};
pub(crate) use self::inbound::{End, Inbound};
pub use self::streaming::Streaming;
pub(crate) use self::streaming::{encoded, Decode};
pub use self::table::Windows;
pub(crate) use self::table::{Announced, Outbound, Refused, StreamTable};
use crate::{Body, Status};

/// A stream of encoded request messages: what [`Channel::streaming_raw`](crate::client::Channel::streaming_raw) sends.
pub type EncodedStream = Pin<Box<dyn Stream<Item = Body> + Send>>;

/// A boxed stream of messages or failures: what a streaming handler may return.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The kind of a method: which of its sides stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MethodKind {
    /// One request, one reply.
    #[default]
    Unary,
    /// A stream of requests, one reply.
    ClientStreaming,
    /// One request, a stream of replies.
    ServerStreaming,
    /// Streams both ways.
    Bidirectional,
}

impl MethodKind {
    /// The kind's value in a request header.
    pub fn wire(self) -> u32 {
        match self {
            MethodKind::Unary => 0,
            MethodKind::ClientStreaming => 1,
            MethodKind::ServerStreaming => 2,
            MethodKind::Bidirectional => 3,
        }
    }

    /// The kind a request header names, if it is one.
    pub fn from_wire(value: u32) -> Option<MethodKind> {
        Some(match value {
            0 => MethodKind::Unary,
            1 => MethodKind::ClientStreaming,
            2 => MethodKind::ServerStreaming,
            3 => MethodKind::Bidirectional,
            _ => return None,
        })
    }

    /// Whether the caller sends a stream of requests.
    pub fn client_streams(self) -> bool {
        matches!(
            self,
            MethodKind::ClientStreaming | MethodKind::Bidirectional
        )
    }

    /// Whether the provider sends a stream of replies.
    pub fn server_streams(self) -> bool {
        matches!(
            self,
            MethodKind::ServerStreaming | MethodKind::Bidirectional
        )
    }

    /// How people name it.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Unary => "unary",
            MethodKind::ClientStreaming => "client-streaming",
            MethodKind::ServerStreaming => "server-streaming",
            MethodKind::Bidirectional => "bidirectional-streaming",
        }
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client-streaming or bidirectional call sends: a stream of request messages, with
/// the call's metadata and timeout. Implemented for any `Stream` of messages, and for a
/// [`crate::Request`] of one.
pub trait IntoStreamingRequest<T> {
    /// The stream and its call context.
    fn into_streaming_request(self) -> crate::Request<Pin<Box<dyn Stream<Item = T> + Send>>>;
}

impl<T, S> IntoStreamingRequest<T> for S
where
    S: Stream<Item = T> + Send + 'static,
{
    fn into_streaming_request(self) -> crate::Request<Pin<Box<dyn Stream<Item = T> + Send>>> {
        crate::Request::new(Box::pin(self))
    }
}

impl<T, S> IntoStreamingRequest<T> for crate::Request<S>
where
    S: Stream<Item = T> + Send + 'static,
{
    fn into_streaming_request(self) -> crate::Request<Pin<Box<dyn Stream<Item = T> + Send>>> {
        self.map(|s| Box::pin(s) as Pin<Box<dyn Stream<Item = T> + Send>>)
    }
}
