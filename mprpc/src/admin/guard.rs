//! The admin port's protection: a bearer token for every page but `/health`, and TLS with
//! the provider's own certificate (`admin_token`, `admin_tls` in `[server]`).
//!
//! `/health` stays open so that load balancers and orchestrators, which seldom send tokens,
//! can probe it; it tells whether the provider serves and the registry's state in a word.

use std::io;
use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::auth::{same_hash, sha256};
use crate::tls::Acceptor;

/// How the admin port is protected.
#[derive(Clone, Debug, Default)]
pub struct AdminGuard {
    /// The SHA-256 of the token every page but `/health` asks for.
    pub token_hash: Option<[u8; 32]>,
    /// TLS, with the provider's certificate.
    pub tls: Option<Acceptor>,
}

/// Refuses a request without the admin token (`401`), unless it is for `/health`.
pub(super) async fn check_token(
    State(hash): State<Option<[u8; 32]>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(hash) = hash else {
        return next.run(request).await;
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| sha256(token.as_bytes()));
    if presented.is_some_and(|p| same_hash(&p, &hash)) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this admin page needs the admin token: Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

/// A listener whose connections are TLS: handshakes run on tasks of their own (bounded by
/// the acceptor's timeout), so a slow one holds up no other.
pub(super) struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<crate::tls::Wire>, SocketAddr)>,
}

impl TlsListener {
    pub(super) fn new(listener: TcpListener, acceptor: Acceptor) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // Ends, and closes the port, when the server drops the listener.
                let accepted = tokio::select! {
                    () = tx.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("admin accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok((stream, _)) => {
                            let _ = ready.send((stream, peer)).await;
                        }
                        Err(e) => tracing::debug!(%peer, "admin TLS handshake failed: {e}"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<crate::tls::Wire>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
