//! [`BlockingChannel`]: a [`Channel`] with a runtime of its own, for synchronous callers.

use std::sync::Arc;

use futures_util::StreamExt;
use prost::Message;

use super::layer::Layer;
use super::Channel;
use crate::config::{ClientConfig, Config};
use crate::registry::{self, Registry, RegistryError, StaticRegistry};
use crate::stream::Streaming;
use crate::{Request, Response, Status};

/// A channel for synchronous callers, with a runtime of its own. Cheap to clone; usable from
/// many threads at once. Not for use inside an async runtime (calls there fail with
/// `Internal` rather than dead-locking); async code uses [`Channel`].
#[derive(Clone)]
pub struct BlockingChannel {
    runtime: Arc<tokio::runtime::Runtime>,
    channel: Channel,
}

impl std::fmt::Debug for BlockingChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingChannel").finish_non_exhaustive()
    }
}

impl BlockingChannel {
    /// Starts a runtime with `config.threads` workers and a channel on it.
    pub fn new(
        config: ClientConfig,
        registry: Arc<dyn Registry>,
    ) -> std::io::Result<BlockingChannel> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("mprpc-client")
            .enable_all()
            .build()?;
        Ok(BlockingChannel {
            runtime: Arc::new(runtime),
            channel: Channel::new(config, registry),
        })
    }

    /// A blocking channel with the client settings and registry of a config file.
    pub fn from_config(config: &Config) -> Result<BlockingChannel, RegistryError> {
        let registry = registry::from_config(&config.registry)?;
        BlockingChannel::new(config.client.clone(), registry)
            .map_err(|e| RegistryError::Config(format!("cannot start the client runtime: {e}")))
    }

    /// A blocking channel to one provider address, with default settings.
    pub fn to_address(address: impl Into<String>) -> std::io::Result<BlockingChannel> {
        BlockingChannel::new(
            ClientConfig::default(),
            Arc::new(StaticRegistry::any(vec![address.into()])),
        )
    }

    /// The same with `layer` wrapping every call; see [`Channel::layer`].
    pub fn layer(mut self, layer: impl Layer) -> BlockingChannel {
        self.channel = self.channel.layer(layer);
        self
    }

    /// The same with `layer` wrapping every attempt; see [`Channel::layer_inner`].
    pub fn layer_inner(mut self, layer: impl Layer) -> BlockingChannel {
        self.channel = self.channel.layer_inner(layer);
        self
    }

    /// The async channel underneath.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Calls `service`/`method` and waits for the reply.
    pub fn unary<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: Request<Req>,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let reply = self.unary_with_metadata(service, method, request)?;
        Ok(reply.into_inner())
    }

    /// [`unary`](BlockingChannel::unary), returning the response metadata too.
    pub fn unary_with_metadata<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        self.outside_runtime()?;
        self.runtime
            .block_on(self.channel.unary_with_metadata(service, method, request))
    }
}

/// A stream of replies for a synchronous caller: an iterator that blocks for each message.
/// Dropping it before its end cancels the call.
pub struct BlockingStreaming<T> {
    runtime: Arc<tokio::runtime::Runtime>,
    /// Taken only when dropped.
    stream: Option<Streaming<T>>,
}

impl<T> std::fmt::Debug for BlockingStreaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingStreaming").finish_non_exhaustive()
    }
}

impl<T> BlockingStreaming<T> {
    /// The trailing metadata of a stream that ended well.
    pub fn trailers(&self) -> Option<&crate::Metadata> {
        self.stream.as_ref()?.trailers()
    }
}

impl<T> Iterator for BlockingStreaming<T> {
    type Item = Result<T, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = self.stream.as_mut()?;
        self.runtime.block_on(stream.next())
    }
}

impl<T> Drop for BlockingStreaming<T> {
    fn drop(&mut self) {
        // The stream's drop sends a cancel, which needs the runtime.
        let _enter = self.runtime.enter();
        drop(self.stream.take());
    }
}

impl BlockingChannel {
    fn outside_runtime(&self) -> Result<(), Status> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Status::internal(
                "a blocking client was called inside an async runtime; use the async client there",
            ));
        }
        Ok(())
    }

    /// Calls a server-streaming method; the replies are read as an iterator.
    pub fn server_streaming<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: Request<Req>,
    ) -> Result<BlockingStreaming<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default + 'static,
    {
        self.outside_runtime()?;
        let open = self.channel.server_streaming(service, method, request);
        let stream = self.runtime.block_on(open)?;
        Ok(self.blocking(stream))
    }

    /// Calls a client-streaming method with the requests of an iterator (read on the
    /// channel's runtime, so it must be `Send`).
    pub fn client_streaming<Req, Resp, I>(
        &self,
        service: &str,
        method: &str,
        request: Request<I>,
    ) -> Result<Resp, Status>
    where
        Req: Message + 'static,
        Resp: Message + Default + 'static,
        I: IntoIterator<Item = Req>,
        I::IntoIter: Send + 'static,
    {
        self.outside_runtime()?;
        let request = request.map(|i| futures_util::stream::iter(i));
        let call = self.channel.client_streaming(service, method, request);
        self.runtime.block_on(call)
    }

    /// Calls a bidirectional-streaming method with the requests of an iterator; the replies
    /// are read as an iterator.
    pub fn streaming<Req, Resp, I>(
        &self,
        service: &str,
        method: &str,
        request: Request<I>,
    ) -> Result<BlockingStreaming<Resp>, Status>
    where
        Req: Message + 'static,
        Resp: Message + Default + 'static,
        I: IntoIterator<Item = Req>,
        I::IntoIter: Send + 'static,
    {
        self.outside_runtime()?;
        let request = request.map(|i| futures_util::stream::iter(i));
        let open = self.channel.streaming(service, method, request);
        let stream = self.runtime.block_on(open)?;
        Ok(self.blocking(stream))
    }

    fn blocking<T>(&self, stream: Streaming<T>) -> BlockingStreaming<T> {
        BlockingStreaming {
            runtime: self.runtime.clone(),
            stream: Some(stream),
        }
    }
}
