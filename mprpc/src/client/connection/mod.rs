//! One multiplexed connection from a consumer to a provider.
//!
//! Calls are matched to replies by request id: a call registers a one-shot waiter under a new
//! id, hands its frame to the writer task (or, alone on a plain TCP connection, writes it
//! itself: `protocol/direct/`), and waits. The reader task completes waiters as
//! replies arrive, in any order. When the connection dies (EOF, a read error, a protocol
//! error, or a ping that goes unanswered) every waiter gets `Unavailable` at once (`Internal`
//! when the provider broke the protocol), so no call hangs on a dead provider.
//!
//! Whatever a provider sends, a failed call never carries `Ok`, and a message from the
//! provider reaches the caller escaped and cut ([`Status::from_wire`]). The reader is in
//! `reader.rs`.

mod bridge;
mod names;
mod reader;
mod stream;
mod writing;

pub(crate) use self::stream::OpenStream;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use self::reader::{fail_all, read_loop};
use self::writing::count_timeout;

use crate::compression::{decompress, Accepted, Encoding};
use crate::config::ClientConfig;
use crate::hash::IdMap;
use crate::metrics::{Metrics, Side};
use crate::protocol::frame::compact::REQUEST_FIXED;
use crate::protocol::shared_write::SharedWrite;
use crate::protocol::writer::{write_loop, BusyHint};
use crate::protocol::{metadata_to_wire, CancelHeader, OutFrame, Outbox, RequestHeader};
use crate::stream::{StreamTable, Windows};
use crate::sync::lock;
use crate::tls::Connector;
use crate::{Body, Metadata, Response, Status};

/// A reply as the reader hands it to its call: the response, and how its body is compressed
/// (the call decompresses it, in its own task).
type Reply = (Response<Body>, Option<Encoding>);
type Waiter = oneshot::Sender<Result<Reply, CallError>>;

/// A request whose message leaves at least this much of `max_frame_size` for its header is
/// not measured: its frame fits.
const HEADER_ROOM: usize = 64 * 1024;

/// Refuses a request whose frame (header and message) would exceed `max`: the provider
/// would close the whole connection for it, failing every other call on it.
fn check_fits(header: &RequestHeader, body: usize, max: usize) -> Result<(), Status> {
    if body.saturating_add(HEADER_ROOM) <= max {
        return Ok(());
    }
    // Either form of the header: a compact one is at most its fixed part longer.
    let size = prost::Message::encoded_len(header) + REQUEST_FIXED + body;
    if size > max {
        return Err(Status::resource_exhausted(format!(
            "the request's frame of {size} bytes (its header and message) exceeds the maximum \
             frame size of {max} bytes"
        )));
    }
    Ok(())
}

/// Pings from the provider are answered while fewer bytes than this wait to be written.
const PONG_ROOM: usize = 1024 * 1024;

/// A live connection. Dropping the last handle closes it.
pub(crate) struct Connection {
    shared: Arc<ConnShared>,
    close: CancellationToken,
}

struct ConnShared {
    address: String,
    tx: Outbox,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Set when the provider said `GoAway`: no new calls, existing ones still complete.
    going_away: AtomicBool,
    /// When the connection was opened; `last_read_ms` counts from here.
    opened: Instant,
    last_read_ms: AtomicU64,
    /// Calls in flight, for the writer's batching.
    busy: Arc<BusyHint>,
    /// Open streaming calls.
    streams: StreamTable,
    /// The most bytes of one stream's messages a consumer sends in a frame.
    max_frame_size: usize,
    /// The provider said it takes compressed requests (`ResponseHeader::accept_encoding`).
    decompresses: AtomicBool,
    /// The socket, on a plain TCP connection: a call alone on the connection writes its
    /// request itself ([`direct::write_alone`]).
    socket: Option<Arc<OwnedWriteHalf>>,
    /// How long a write may make no progress.
    write_timeout: Duration,
    /// Cancelled when the connection closes.
    close: CancellationToken,
    metrics: Metrics,
    /// The runtime the connection's tasks run on (a call may come from another).
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct Pending {
    waiters: IdMap<Waiter>,
    /// Why the connection is closed, once it is.
    closed: Option<Status>,
}

/// Why a call did not get a reply.
pub(crate) enum CallError {
    /// The request was not run by the provider (never sent, sent to a provider that said
    /// `GoAway` and closed without running it, or refused by one shutting down with a reply
    /// marked `not_run`): safe to try another provider.
    NotSent(Status),
    /// The request may have reached the provider.
    Failed(Status),
}

impl Connection {
    /// Opens a connection to `address` within `config.connect_timeout`.
    pub(crate) async fn connect(
        address: &str,
        config: &ClientConfig,
        metrics: &Metrics,
        tls: Option<&Connector>,
    ) -> Result<Connection, Status> {
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                Status::unavailable(format!(
                    "connecting to {address} timed out after {:?}",
                    config.connect_timeout
                ))
            })?
            .map_err(|e| Status::unavailable(format!("cannot connect to {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            let (rd, wr) = stream.into_split();
            let wr = Arc::new(wr);
            let metrics = metrics.clone();
            let shared = (rd, SharedWrite(wr.clone()), Some(wr));
            return Ok(Connection::start_on(shared, address, config, metrics));
        };
        let stream = tls.connect(stream, address).await.map_err(|e| {
            Status::unavailable(format!(
                "TLS handshake with {address} failed: {e} (does the provider serve TLS, with a \
                 certificate from the CA in [client.tls] ca?)"
            ))
        })?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(Connection::start(rd, wr, address, config, metrics.clone()))
    }

    /// A connection over `rd` and `wr` (a socket's halves, or an in-process pipe's), called
    /// `address` in errors and logs.
    pub(crate) fn start<R, W>(
        rd: R,
        wr: W,
        address: &str,
        config: &ClientConfig,
        metrics: Metrics,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Connection::start_on((rd, wr, None), address, config, metrics)
    }

    /// A connection over `rd` and `wr`, and the plain TCP socket they read and write if they
    /// do (calls alone on the connection then write their requests themselves).
    fn start_on<R, W>(
        (rd, wr, socket): (R, W, Option<Arc<OwnedWriteHalf>>),
        address: &str,
        config: &ClientConfig,
        metrics: Metrics,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let address = address.to_owned();
        let close = CancellationToken::new();
        let busy = Arc::<BusyHint>::default();
        let (tx, rx) = Outbox::new(busy.clone());
        let windows = Windows {
            stream: config.stream_window as u64,
            connection: config.connection_window as u64,
        };
        let shared = Arc::new(ConnShared {
            address,
            streams: StreamTable::new(tx.clone(), windows),
            max_frame_size: config.max_frame_size,
            tx,
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            going_away: AtomicBool::new(false),
            opened: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            busy,
            decompresses: AtomicBool::new(false),
            socket,
            write_timeout: config.write_timeout,
            close: close.clone(),
            metrics: metrics.clone(),
            runtime: tokio::runtime::Handle::current(),
        });
        let writer_shared = Arc::downgrade(&shared);
        let busy = shared.busy.clone();
        let write_timeout = config.write_timeout;
        let writer_close = close.clone();
        let writer_metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = write_loop(wr, rx, &busy, write_timeout).await {
                match writer_shared.upgrade() {
                    Some(shared) => shared.write_failed(&e),
                    None => {
                        count_timeout(&writer_metrics, &e);
                        writer_close.cancel();
                    }
                }
            }
        });
        metrics.connection(Side::Client, 1);
        let reader = read_loop(rd, shared.clone(), close.clone(), config.max_frame_size);
        tokio::spawn(async move {
            reader.await;
            metrics.connection(Side::Client, -1);
        });
        tokio::spawn(keepalive(
            Arc::downgrade(&shared),
            close.clone(),
            config.ping_interval,
            config.ping_timeout,
        ));
        Connection { shared, close }
    }

    /// The encodings the provider takes requests in: none until it has said so in a reply.
    pub(crate) fn provider_accepts(&self) -> Accepted {
        if self.shared.decompresses.load(Ordering::Relaxed) {
            Accepted::ALL
        } else {
            Accepted::NONE
        }
    }

    /// Whether new calls may use this connection.
    pub(crate) fn is_usable(&self) -> bool {
        !self.shared.going_away.load(Ordering::Relaxed)
            && lock(&self.shared.pending).closed.is_none()
    }

    /// Why the connection is not usable, if it is not.
    pub(crate) fn closed_reason(&self) -> Option<Status> {
        lock(&self.shared.pending).closed.clone()
    }

    /// Sends one call and waits for its reply. The caller bounds the wait; if it gives up
    /// (drops this future), the waiter is removed and the provider is told to cancel.
    // Not an `async fn`, whose arguments the future would hold twice (rust-lang/rust#62958):
    // on the call path, every byte of a call's future is copied each time it moves.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn call<'a>(
        &'a self,
        service: &'a str,
        method: &'a str,
        metadata: Metadata,
        timeout: Option<Duration>,
        (body, encoding, accepted): (Body, Option<Encoding>, Accepted),
    ) -> impl Future<Output = Result<Response<Body>, CallError>> + Send + 'a {
        async move {
            let shared = &self.shared;
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let (reply_tx, reply_rx) = oneshot::channel();
            {
                let mut pending = lock(&shared.pending);
                if let Some(reason) = &pending.closed {
                    return Err(CallError::NotSent(reason.clone()));
                }
                pending.waiters.insert(id, reply_tx);
            }
            shared.busy.enter();
            let mut guard = CallGuard {
                shared,
                id,
                armed: true,
            };
            let header = RequestHeader {
                encoding: encoding.map_or(0, Encoding::wire),
                accept_encoding: accepted.wire(),
                ..request_header(id, (service, method), metadata, timeout)
            };
            if let Err(status) = check_fits(&header, body.len(), shared.max_frame_size) {
                guard.armed = false;
                lock(&shared.pending).waiters.remove(&id);
                return Err(CallError::NotSent(status));
            }
            let request = OutFrame::Request(header, body);
            let queued = match &shared.socket {
                // Alone on the connection: nothing to batch the request with, so it goes out
                // now rather than after the writer task's wake-up.
                Some(socket) if shared.busy.count() == 1 => shared.write_alone(socket, request),
                _ => Some(request),
            };
            let sent = match queued {
                Some(request) => shared.tx.send(request).await,
                None => Ok(()),
            };
            if sent.is_err() {
                guard.armed = false;
                lock(&shared.pending).waiters.remove(&id);
                let reason = self.closed_reason().unwrap_or_else(|| {
                    Status::unavailable(format!("connection to {} closed", shared.address))
                });
                return Err(CallError::NotSent(reason));
            }
            let outcome = reply_rx.await;
            guard.armed = false;
            match outcome {
                Ok(Ok((response, None))) => Ok(response),
                Ok(Ok((response, Some(encoding)))) => {
                    let (metadata, body) = response.into_parts();
                    match decompress(encoding, &body.into_bytes(), shared.max_frame_size) {
                        Ok(body) => Ok(Response::from_parts(metadata, Body::from(body))),
                        Err(e) => Err(CallError::Failed(
                            e.into_status(&format!("the reply from {}", shared.address)),
                        )),
                    }
                }
                Ok(Err(e)) => Err(e),
                // The reader dropped the waiter without answering: only when closing.
                Err(_) => Err(CallError::Failed(self.closed_reason().unwrap_or_else(
                    || Status::unavailable(format!("connection to {} closed", shared.address)),
                ))),
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close.cancel();
    }
}

/// Removes the waiter and cancels the call on the provider if the call is abandoned.
struct CallGuard<'a> {
    shared: &'a ConnShared,
    id: u64,
    armed: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.shared.busy.leave();
        if self.armed
            && lock(&self.shared.pending)
                .waiters
                .remove(&self.id)
                .is_some()
        {
            let cancel = OutFrame::Cancel(CancelHeader {
                request_id: self.id,
            });
            // Best effort: if the queue is full the provider's deadline stops the work.
            let _ = self.shared.tx.try_send(cancel);
        }
    }
}

/// Pings an idle connection and closes it if nothing at all comes back in time.
async fn keepalive(
    shared: std::sync::Weak<ConnShared>,
    close: CancellationToken,
    interval: Duration,
    timeout: Duration,
) {
    loop {
        tokio::select! {
            () = close.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(conn) = shared.upgrade() else { return };
        let idle_ms =
            conn.opened.elapsed().as_millis() as u64 - conn.last_read_ms.load(Ordering::Relaxed);
        if idle_ms < interval.as_millis() as u64 {
            continue;
        }
        let sent_at = conn.opened.elapsed().as_millis() as u64;
        if conn.tx.try_send(OutFrame::Ping(Bytes::new())).is_err() {
            continue;
        }
        drop(conn);
        tokio::select! {
            () = close.cancelled() => return,
            () = tokio::time::sleep(timeout) => {}
        }
        let Some(conn) = shared.upgrade() else { return };
        if conn.last_read_ms.load(Ordering::Relaxed) < sent_at {
            tracing::warn!(address = %conn.address, "no answer to a ping within {timeout:?}; closing the connection");
            fail_all(
                &conn,
                Status::unavailable(format!(
                    "provider {} stopped answering (ping timeout {timeout:?})",
                    conn.address
                )),
            );
            close.cancel();
            return;
        }
    }
}

/// The header of a request `id` to `service.method` (a unary call's; a stream's sets its
/// kind and window after): the metadata's entries, and its trace ids in their own fields.
fn request_header(
    id: u64,
    (service, method): (&str, &str),
    metadata: Metadata,
    timeout: Option<Duration>,
) -> RequestHeader {
    let trace = metadata.trace_ids();
    let mut header = RequestHeader {
        request_id: id,
        service: names::wire_name(service),
        method: names::wire_name(method),
        timeout_us: timeout.map_or(0, |t| t.as_micros().max(1) as u64),
        metadata: metadata_to_wire(metadata),
        sent_unix_us: unix_now_us(),
        compact: true,
        ..RequestHeader::default()
    };
    header.set_trace(trace);
    header
}

/// This host's wall clock in microseconds since the Unix epoch (0 if it is set before 1970).
fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
