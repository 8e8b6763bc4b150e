//! One client connection on the provider side.
//!
//! The read loop takes in every frame already readable (a *batch*), then acts on it: cancels
//! first, then calls, so that a call whose caller cancelled it, or went away, in the same
//! read never starts ([`call`] admits and starts each call). On a plain TCP socket the small
//! replies of the calls answered while the batch was read are written by the loop itself at
//! the end of the batch, when the writer task is not writing ([`crate::protocol::direct`]).
//! Other replies, and those of call tasks, go to the connection's writer task
//! ([`crate::protocol::writer`]) through an [`Outbox`], which counts every byte queued
//! against the connection's budget (`max_unwritten_bytes`): past it the loop reads nothing
//! more until the client has read.
//!
//! A malformed stream, or a frame trickled in too slowly, gets a `GoAway` frame naming the
//! problem (logged within a rate limit, see [`super::complaints`]), after which the
//! connection is closed once the calls already running on it have answered. A client that
//! closes its connection has given up: its calls are dropped at their next await point.
//! Nothing a peer sends can take down anything but its own connection.

mod call;
mod grpc;
mod http;
mod legacy;
mod read_loop;
mod stream;
mod unary;

pub(crate) use self::http::Descriptors;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::transport::Protocol;
use super::Shared;
use crate::config::CallerClock;
use crate::hash::IdMap;
use crate::metrics::{QueuedBytes, Side};
use crate::protocol::shared_write::SharedWrite;
use crate::protocol::writer::{write_loop, BusyHint};
use crate::protocol::{FrameDecoder, FrameReader, GoAwayHeader, OutFrame, Outbox, ProtocolError};
use crate::stream::{StreamTable, Windows};
use crate::sync::lock;
use crate::tls::PeerIdentity;
use crate::{Code, Status};

/// What a connection runs on: TCP, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Read buffer size to start with; it grows for larger frames.
const READ_CAPACITY: usize = 16 * 1024;

/// Calls running on this connection, by request id, so a `Cancel` can stop one.
type InFlight = Arc<Mutex<IdMap<AbortHandle>>>;

pub(crate) struct Connection {
    peer: SocketAddr,
    /// Calls in flight and bytes queued on this connection.
    busy: Arc<BusyHint>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    force_close: CancellationToken,
    /// Whether the caller's clock may tell how long a request waited before it was read.
    trust_caller_clock: bool,
    /// The client's identity, under mutual TLS.
    identity: Option<PeerIdentity>,
}

/// What a batch of frames works with.
struct Turn<'a> {
    tx: &'a Outbox,
    /// The connection's open streaming calls.
    streams: &'a Arc<StreamTable>,
    calls: &'a TaskTracker,
    in_flight: &'a InFlight,
    draining: bool,
}

/// Why the read loop ended.
enum Ending {
    /// The peer closed its side: it has given up on its calls.
    PeerClosed,
    /// Shutdown: answer what is running, then close.
    Drained,
    /// A protocol error (its kind, for metrics and logs): tell the peer why, answer what is
    /// running, then close.
    Broken(&'static str, Status),
    /// Nothing happened for too long.
    Idle,
    /// The socket failed or the grace period ran out: stop everything.
    Abort,
}

impl QueuedBytes for BusyHint {
    fn queued_bytes(&self) -> usize {
        self.unwritten()
    }
}

impl Connection {
    pub(crate) fn new(
        peer: SocketAddr,
        local: Option<SocketAddr>,
        shared: Arc<Shared>,
        shutdown: watch::Receiver<bool>,
        force_close: CancellationToken,
    ) -> Connection {
        let same_host = peer.ip().is_loopback() || local.is_some_and(|l| l.ip() == peer.ip());
        let trust_caller_clock = match shared.config.caller_clock {
            CallerClock::SameHost => same_host,
            CallerClock::Synchronized => true,
            CallerClock::Ignore => false,
        };
        Connection {
            peer,
            busy: Arc::default(),
            shared,
            shutdown,
            force_close,
            trust_caller_clock,
            identity: None,
        }
    }

    /// Serves a plaintext connection until it ends.
    pub(crate) async fn run_tcp(self, stream: TcpStream) {
        // The write half is shared: the reader writes the replies it answered itself
        // (`crate::protocol::direct`).
        let (rd, wr) = stream.into_split();
        let wr = Arc::new(wr);
        self.run(rd, SharedWrite(wr.clone()), Some(wr)).await;
    }

    /// The connection of a client with this identity (under mutual TLS): every request
    /// carries it in its extensions.
    pub(crate) fn with_identity(mut self, identity: Option<PeerIdentity>) -> Connection {
        self.identity = identity;
        self
    }

    /// Serves a connection in `protocol` until it ends.
    pub(crate) async fn run_protocol<S: Io>(self, protocol: Protocol, stream: S) {
        match protocol {
            Protocol::Mprpc => {
                let (rd, wr) = tokio::io::split(stream);
                self.run(rd, wr, None).await;
            }
            Protocol::Legacy => self.run_legacy(stream).await,
            Protocol::Http => self.run_http(stream).await,
            Protocol::Grpc => self.run_grpc(stream).await,
        }
    }

    /// A request of this connection's: its peer, and its client's identity under mutual TLS.
    fn request(
        &self,
        body: bytes::Bytes,
        metadata: crate::Metadata,
        deadline: Option<Instant>,
    ) -> crate::Request<crate::Body> {
        let mut request =
            crate::Request::from_parts(body.into(), metadata, deadline, Some(self.peer));
        if let Some(identity) = &self.identity {
            request.extensions_mut().insert(identity.clone());
        }
        request
    }

    async fn run<R, W>(mut self, rd: R, wr: W, socket: Option<Arc<OwnedWriteHalf>>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        tracing::debug!(%peer, "connection opened");
        let metrics = self.shared.metrics.clone();
        metrics.connection(Side::Server, 1);
        let _queue = metrics.track_server_queue(self.busy.clone());
        let (tx, rx) = Outbox::new(self.busy.clone());
        // Cancelled when the writer fails (the peer stopped reading, or the socket broke): the
        // reader then stops too, and the calls are dropped.
        let writer_failed = CancellationToken::new();
        let writer = self.spawn_writer(wr, rx, writer_failed.clone());
        let decoder = FrameDecoder::new(self.shared.config.max_frame_size);
        let mut frames = FrameReader::with_capacity(rd, decoder, READ_CAPACITY);
        let calls = TaskTracker::new();
        let in_flight: InFlight = Arc::default();
        let windows = Windows {
            stream: self.shared.config.stream_window as u64,
            connection: self.shared.config.connection_window as u64,
        };
        let streams = Arc::new(StreamTable::new(tx.clone(), windows));
        let turn = Turn {
            tx: &tx,
            streams: &streams,
            calls: &calls,
            in_flight: &in_flight,
            draining: false,
        };
        let ending = self
            .read_loop(&mut frames, turn, (&writer_failed, socket.as_ref()))
            .await;
        self.end(ending, &tx, &calls, &in_flight, &streams).await;
        // The writer ends once the last sender (ours, the stream table's and the call
        // tasks') is gone.
        drop(tx);
        drop(streams);
        calls.close();
        calls.wait().await;
        self.join_writer(writer).await;
        metrics.connection(Side::Server, -1);
        tracing::debug!(%peer, "connection closed");
    }

    /// Starts the connection's writer task; `failed` is cancelled if writing fails.
    fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
        &self,
        wr: W,
        rx: mpsc::Receiver<OutFrame>,
        failed: CancellationToken,
    ) -> JoinHandle<std::io::Result<()>> {
        let busy = self.busy.clone();
        let write_timeout = self.shared.config.write_timeout;
        tokio::spawn(async move {
            let written = write_loop(wr, rx, &busy, write_timeout).await;
            if written.is_err() {
                failed.cancel();
            }
            written
        })
    }

    /// Acts on why the read loop ended: aborts the calls, or tells the peer why it closes.
    async fn end(
        &self,
        ending: Ending,
        tx: &Outbox,
        calls: &TaskTracker,
        in_flight: &InFlight,
        streams: &StreamTable,
    ) {
        match ending {
            Ending::Abort if self.force_close.is_cancelled() => {
                stream::cut_off(tx, streams, in_flight, self.shared.config.shutdown_grace);
                abort_all(in_flight);
            }
            Ending::Abort | Ending::PeerClosed => abort_all(in_flight),
            Ending::Drained => {}
            Ending::Idle => {
                let _ = tx
                    .send(go_away(Code::Unavailable, "idle connection closed"))
                    .await;
            }
            Ending::Broken(kind, status) => {
                self.shared.metrics.protocol_error(kind);
                self.shared.complaints.warn(kind, self.peer, &status);
                let _ = tx.send(go_away(status.code(), status.message())).await;
                let closed = Status::unavailable(format!(
                    "the connection was closed for a protocol error: {}",
                    status.message()
                ));
                stream::end_all(tx, streams, in_flight, &closed);
                calls.close();
                tokio::select! {
                    () = calls.wait() => {}
                    () = self.force_close.cancelled() => {
                        stream::cut_off(tx, streams, in_flight, self.shared.config.shutdown_grace);
                        abort_all(in_flight);
                    }
                }
            }
        }
    }

    /// Waits for the writer to finish and reports how it ended.
    async fn join_writer(&self, writer: JoinHandle<std::io::Result<()>>) {
        let peer = self.peer;
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => write_failed(&self.shared, peer, &e),
            Err(e) => tracing::error!(%peer, "writer task failed: {e}"),
        }
    }
}

/// Reports a failed write (by the writer task, the reader, or the task finishing a partial
/// write of the reader's).
fn write_failed(shared: &Shared, peer: SocketAddr, e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::TimedOut {
        shared.metrics.write_timed_out(Side::Server);
        shared.complaints.warn("write_timeout", peer, e);
    } else {
        tracing::debug!(%peer, "write failed: {e}");
    }
}

fn broken(e: ProtocolError) -> Ending {
    Ending::Broken(e.kind(), e.to_status())
}

fn go_away(code: Code, message: &str) -> OutFrame {
    OutFrame::GoAway(GoAwayHeader {
        code: code.as_i32(),
        message: message.to_owned(),
    })
}

fn abort_all(in_flight: &InFlight) {
    for (_, handle) in lock(in_flight).drain() {
        handle.abort();
    }
}
