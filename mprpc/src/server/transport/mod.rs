//! What comes before mprpc's frames on a provider's connection: TLS or plaintext, told apart
//! by the first byte (a TLS record starts `0x16`, an mprpc frame `mp`), the TLS handshake,
//! the refusal of a plaintext client by a provider that requires TLS, an HTTP/1.1 request
//! line (with `[server.protocols] http`), HTTP/2's preface (with `[server.protocols] grpc`),
//! and (with
//! `[server.protocols] legacy`) a request of the original C++ mprpc, told apart by its first
//! four bytes (`protocol::legacy::may_be_legacy`).
//!
//! Inside TLS (`inner.rs`) the protocol is chosen again, among mprpc, HTTP/JSON and gRPC:
//! by ALPN when the client offered it (`http/1.1`, `h2`), else by the first four bytes read
//! through TLS, which are then read again by the protocol's own reader (`rewind.rs`). The
//! original's protocol has no TLS.
//!
//! A provider without `[server.tls]` and without another protocol reads nothing here: its
//! connections go straight to the wire protocol. One with either peeks at the first bytes,
//! waiting for them at most `idle_timeout` (as long as mprpc's own reader waits for a
//! request). Each connection is counted against `max_connections` before it gets here,
//! so a flood of half-open handshakes holds at most that many connections, each for at most
//! `handshake_timeout`.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::TlsMode;
use crate::protocol::{GoAwayHeader, OutFrame};
use crate::tls::{Acceptor, PeerIdentity, TLS_HANDSHAKE_BYTE};
use crate::{Code, Status};

mod inner;
mod rewind;

pub(crate) use inner::alpn_protocols;
pub(crate) use rewind::Rewind;

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// mprpc's own frames.
    Mprpc,
    /// The original C++ mprpc's protocol (plaintext only).
    Legacy,
    /// HTTP/1.1 with JSON bodies.
    Http,
    /// HTTP/2 carrying gRPC.
    Grpc,
}

/// A TLS connection, with the bytes read to detect its protocol put back.
pub(crate) type TlsConnection = Rewind<TlsStream<crate::tls::Wire>>;

/// A connection ready for its protocol.
pub(crate) enum Opened {
    /// Plaintext.
    Plain(Protocol, TcpStream),
    /// TLS, with the client's identity under mutual TLS.
    Tls(Protocol, Box<TlsConnection>, Option<PeerIdentity>),
}

/// Why a connection was not opened: its kind (for metrics and the rate-limited log) and what
/// happened.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) kind: &'static str,
    pub(crate) status: Status,
}

/// The provider's TLS: its acceptor and whether plaintext is served too.
#[derive(Clone, Debug)]
pub(crate) struct ServerTls {
    pub(crate) acceptor: Acceptor,
    pub(crate) mode: TlsMode,
    pub(crate) handshake_timeout: Duration,
}

/// How a provider tells its connections' protocols apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Detection<'a> {
    pub(crate) tls: Option<&'a ServerTls>,
    /// Whether the original C++ mprpc's requests are served.
    pub(crate) legacy: bool,
    /// Whether HTTP/1.1 requests with JSON bodies are served.
    pub(crate) http: bool,
    /// Whether gRPC (HTTP/2 with prior knowledge) is served.
    pub(crate) grpc: bool,
    /// How long to wait for a connection's first bytes when they have to be looked at.
    pub(crate) first_bytes_timeout: Duration,
}

/// Opens `stream` for its protocol: as it is without TLS or the legacy protocol, else by
/// its first bytes.
pub(crate) async fn open(stream: TcpStream, detection: Detection<'_>) -> Result<Opened, Refused> {
    if detection.tls.is_none() && !detection.legacy && !detection.http && !detection.grpc {
        return Ok(Opened::Plain(Protocol::Mprpc, stream));
    }
    let (kind, timeout) = match detection.tls {
        Some(tls) => ("tls_handshake", tls.handshake_timeout),
        None => ("detection", detection.first_bytes_timeout),
    };
    let mut first = [0u8; 4];
    let wanted = if detection.legacy || detection.http || detection.grpc {
        4
    } else {
        1
    };
    let peeked = tokio::time::timeout(timeout, peek_at_least(&stream, &mut first, wanted)).await;
    let first = match peeked {
        Err(_) => {
            return Err(refused(
                kind,
                Status::deadline_exceeded(format!("sent nothing within {timeout:?}")),
            ))
        }
        Ok(Ok(0)) | Ok(Err(_)) => {
            return Err(refused(
                kind,
                Status::unavailable("closed the connection before sending anything"),
            ))
        }
        Ok(Ok(n)) => &first[..n],
    };
    // Four bytes tell a legacy request from a TLS record (whose first byte a legacy header
    // of 22 bytes shares).
    let legacy = detection.legacy && crate::protocol::legacy::may_be_legacy(first);
    if let Some(tls) = detection.tls {
        if first[0] == TLS_HANDSHAKE_BYTE && !legacy {
            let (stream, identity) = tls.acceptor.accept(stream).await.map_err(|e| {
                refused(
                    "tls_handshake",
                    Status::unauthenticated(format!("TLS handshake failed: {e}")),
                )
            })?;
            let (protocol, stream) = inner::detect(stream, detection).await?;
            return Ok(Opened::Tls(protocol, Box::new(stream), identity));
        }
        if tls.mode != TlsMode::Optional {
            let status = Status::unauthenticated(
                "this provider requires TLS; give the consumer a CA to trust ([client.tls] \
                 ca, or --tls-ca)",
            );
            refuse(stream, &status).await;
            return Err(refused("tls_required", status));
        }
    }
    if legacy {
        return Ok(Opened::Plain(Protocol::Legacy, stream));
    }
    Ok(Opened::Plain(by_first_bytes(first, detection), stream))
}

/// mprpc, HTTP/JSON or gRPC, by a connection's first four bytes (mprpc if they are neither
/// of the other two, or those are off: mprpc's reader then refuses what is not mprpc).
fn by_first_bytes(first: &[u8], detection: Detection<'_>) -> Protocol {
    if detection.http && is_http(first) {
        Protocol::Http
    } else if detection.grpc && first.starts_with(b"PRI ") {
        // HTTP/2's connection preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
        Protocol::Grpc
    } else {
        Protocol::Mprpc
    }
}

/// Whether a connection's first four bytes start an HTTP/1.1 request line.
fn is_http(first: &[u8]) -> bool {
    const METHODS: [&[u8; 4]; 7] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC",
    ];
    METHODS.iter().any(|m| first.starts_with(&m[..]))
}

/// Peeks at the connection's first bytes until there are `wanted` (or the peer closed):
/// their number. Clients send their first request whole, so the wait for more than the
/// first segment holds is rare; it backs off from 1 ms to 100 ms.
async fn peek_at_least(stream: &TcpStream, buf: &mut [u8], wanted: usize) -> io::Result<usize> {
    let mut pause = Duration::from_millis(1);
    loop {
        let n = stream.peek(buf).await?;
        if n == 0 || n >= wanted {
            return Ok(n);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn refused(kind: &'static str, status: Status) -> Refused {
    Refused { kind, status }
}

/// Tells the peer why its connection is closed, in a plaintext `GoAway`, then closes it
/// gently: what the peer already sent is read and dropped (for at most a second and 64 KiB),
/// so that the close does not reset the connection before the peer has read the reason.
pub(crate) async fn refuse(mut stream: TcpStream, status: &Status) {
    let mut buf = BytesMut::new();
    OutFrame::GoAway(GoAwayHeader {
        code: status.code().as_i32(),
        message: status.message().to_owned(),
    })
    .encode(&mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&buf).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The refusal of a connection over the `max_connections` limit.
pub(crate) async fn refuse_over_limit(stream: TcpStream, limit: usize) {
    let status = Status::new(
        Code::ResourceExhausted,
        format!("provider is at its limit of {limit} connections"),
    );
    refuse(stream, &status).await;
}
