//! A provider in the background on `127.0.0.1:0`, for tests and examples: [`spawn_local`],
//! [`spawn_local_registered`] and the [`LocalServer`] handle that stops it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{ServeError, Server};
use crate::registry::Registry;

/// Starts serving `server` on a new listener bound to `127.0.0.1:0` in the background and
/// returns the bound address and a handle that shuts it down. Used by tests and examples.
pub async fn spawn_local(server: Server) -> io::Result<(SocketAddr, LocalServer)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move { server.serve(listener, token.cancelled_owned()).await });
    Ok((addr, LocalServer { stop, task }))
}

/// Like [`spawn_local`], and registers the provider's services with `registry` first; the
/// returned handle deregisters them when it shuts the provider down.
pub async fn spawn_local_registered(
    server: Server,
    registry: Arc<dyn Registry>,
) -> Result<(SocketAddr, LocalServer), ServeError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let (registered_tx, registered) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = registered_tx.send(());
            token.cancelled_owned().await;
        };
        server
            .serve_with_registry(listener, registry, shutdown)
            .await
            .map_err(io::Error::other)
    });
    // The shutdown future is first polled once registration has succeeded.
    if registered.await.is_err() {
        let err = task.await.map_err(io::Error::other)?.err();
        return Err(ServeError::Io(
            err.unwrap_or_else(|| io::Error::other("provider stopped")),
        ));
    }
    Ok((addr, LocalServer { stop, task }))
}

/// A provider started by [`spawn_local`].
#[derive(Debug)]
pub struct LocalServer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl LocalServer {
    /// Shuts the provider down gracefully and waits until it has stopped.
    pub async fn shutdown(self) -> io::Result<()> {
        self.stop.cancel();
        self.task.await.map_err(io::Error::other)?
    }
}
