//! The admin endpoint: an optional HTTP port on a provider serving `/metrics` (Prometheus
//! text), `/status` (a page for people, and JSON), and `/health`.
//!
//! It is a small [`axum`] router over HTTP/1.1, fed by [`Metrics::snapshot`] at each request:
//! nothing is cached and nothing on the call path knows the admin port exists.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | Prometheus text format 0.0.4 ([`prometheus`]) |
//! | `GET /status` | an HTML page for a browser ([`status`]) |
//! | `GET /status?format=json`, `GET /status.json` | the same as JSON |
//! | `GET /health` | `200 ok registry=STATE` while the provider serves |
//! | anything else | `404` with a short text body |
//!
//! With `admin_token` every page but `/health` needs `Authorization: Bearer <token>`, and
//! with `admin_tls` the port speaks HTTPS with the provider's certificate ([`AdminGuard`]).
//!
//! `/health` answers 200 whatever the registry's state: a provider cut off from ZooKeeper
//! still serves the consumers that know it, and a load balancer that took it out of rotation
//! for that would turn a registry outage into a service outage. The state is in the body for
//! people and scripts that want it.

mod guard;
pub mod prometheus;
pub mod status;
mod text;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("metrics", &self.metrics)
            .field("services", &self.services)
            .field("registry", &self.registry_state())
            .field("rpc_address", &self.rpc_address)
            .finish()
    }
}

impl AdminState {
    /// The registry's state in a word (`connected`, `static`, ...), or `none` without one.
    pub fn registry_state(&self) -> &'static str {
        self.registry.as_ref().map_or("none", |r| r.state())
    }
}

pub use guard::AdminGuard;

/// Serves the admin pages on `listener` until `shutdown` resolves, unprotected.
///
/// When it does, the listener is closed at once; requests already being answered finish,
/// and idle keep-alive connections are closed.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_guarded(listener, state, AdminGuard::default(), shutdown).await
}

/// The same, with a token and TLS as `guard` says.
pub async fn serve_guarded(
    listener: TcpListener,
    state: Arc<AdminState>,
    guard: AdminGuard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = router(state).layer(axum::middleware::from_fn_with_state(
        guard.token_hash,
        guard::check_token,
    ));
    match guard.tls {
        Some(acceptor) => {
            let listener = guard::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// The routes, on `state`.
fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status_page))
        .route("/status.json", get(status_json))
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let text = prometheus::render(&state.metrics.snapshot(), state.registry_state());
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}

/// The query string of `/status`.
#[derive(serde::Deserialize)]
struct StatusQuery {
    /// `json` for JSON; anything else (or nothing) for HTML.
    format: Option<String>,
}

async fn status_page(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let view = status::StatusView::new(&state);
    if query.format.as_deref() == Some("json") {
        Json(view).into_response()
    } else {
        Html(status::render_html(&view)).into_response()
    }
}

async fn status_json(State(state): State<Arc<AdminState>>) -> Json<status::StatusView> {
    Json(status::StatusView::new(&state))
}

async fn health(State(state): State<Arc<AdminState>>) -> String {
    format!("ok registry={}\n", state.registry_state())
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found: try /metrics, /status or /health\n",
    )
}
