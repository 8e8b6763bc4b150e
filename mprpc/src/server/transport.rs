//! What comes before mprpc's frames on a provider's connection: TLS or plaintext, told apart
//! by the first byte (a TLS record starts `0x16`, an mprpc frame `mp`), the TLS handshake,
//! and the refusal of a plaintext client by a provider that requires TLS.
//!
//! A provider without `[server.tls]` reads nothing here: its connections go straight to the
//! wire protocol. Each connection is counted against `max_connections` before it gets here,
//! so a flood of half-open handshakes holds at most that many connections, each for at most
//! `handshake_timeout`.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::TlsMode;
use crate::protocol::{GoAwayHeader, OutFrame};
use crate::tls::{Acceptor, PeerIdentity, TLS_HANDSHAKE_BYTE};
use crate::{Code, Status};

/// A connection ready for the wire protocol.
pub(crate) enum Opened {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS, with the client's identity under mutual TLS.
    Tls(Box<TlsStream<crate::tls::Wire>>, Option<PeerIdentity>),
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

/// Opens `stream` for the wire protocol: as it is without TLS, else by its first byte.
pub(crate) async fn open(stream: TcpStream, tls: Option<&ServerTls>) -> Result<Opened, Refused> {
    let Some(tls) = tls else {
        return Ok(Opened::Plain(stream));
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(tls.handshake_timeout, stream.peek(&mut first)).await;
    match peeked {
        Err(_) => Err(refused(
            "tls_handshake",
            Status::deadline_exceeded(format!(
                "sent nothing within the handshake timeout of {:?}",
                tls.handshake_timeout
            )),
        )),
        Ok(Ok(0)) | Ok(Err(_)) => Err(refused(
            "tls_handshake",
            Status::unavailable("closed the connection before sending anything"),
        )),
        Ok(Ok(_)) if first[0] == TLS_HANDSHAKE_BYTE => match tls.acceptor.accept(stream).await {
            Ok((stream, identity)) => Ok(Opened::Tls(Box::new(stream), identity)),
            Err(e) => Err(refused(
                "tls_handshake",
                Status::unauthenticated(format!("TLS handshake failed: {e}")),
            )),
        },
        Ok(Ok(_)) if tls.mode == TlsMode::Optional => Ok(Opened::Plain(stream)),
        Ok(Ok(_)) => {
            let status = Status::unauthenticated(
                "this provider requires TLS; give the consumer a CA to trust ([client.tls] ca, \
                 or --tls-ca)",
            );
            refuse(stream, &status).await;
            Err(refused("tls_required", status))
        }
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
