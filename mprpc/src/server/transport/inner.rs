//! Protocol detection inside TLS: ALPN first (a gRPC client offers `h2`, curl and browsers
//! `http/1.1` too; the provider offers only the protocols it serves, HTTP/1.1 before h2, so
//! a client offering both gets HTTP/1.1), else the first four bytes read through TLS (an
//! mprpc consumer offers no ALPN), waited for at most `idle_timeout` like plaintext's.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio_rustls::server::TlsStream;

use super::{by_first_bytes, refused, Detection, Protocol, Refused, Rewind, TlsConnection};
use crate::Status;

/// ALPN's name for HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN's name for HTTP/1.1.
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The ALPN protocols a provider offers: those it serves besides mprpc, in its order of
/// preference.
pub(crate) fn alpn_protocols(http: bool, grpc: bool) -> Vec<Vec<u8>> {
    let mut offered = Vec::new();
    if http {
        offered.push(ALPN_HTTP1.to_vec());
    }
    if grpc {
        offered.push(ALPN_H2.to_vec());
    }
    offered
}

/// The protocol of a TLS connection just accepted, and the connection with what was read
/// to tell it put back.
pub(super) async fn detect(
    stream: TlsStream<crate::tls::Wire>,
    detection: Detection<'_>,
) -> Result<(Protocol, TlsConnection), Refused> {
    if !detection.http && !detection.grpc {
        return Ok((Protocol::Mprpc, Rewind::new(Bytes::new(), stream)));
    }
    match stream.get_ref().1.alpn_protocol() {
        Some(ALPN_H2) if detection.grpc => {
            return Ok((Protocol::Grpc, Rewind::new(Bytes::new(), stream)));
        }
        Some(ALPN_HTTP1) if detection.http => {
            return Ok((Protocol::Http, Rewind::new(Bytes::new(), stream)));
        }
        _ => {}
    }
    let (first, stream) = first_bytes(stream, detection.first_bytes_timeout).await?;
    let protocol = by_first_bytes(&first, detection);
    Ok((protocol, Rewind::new(first, stream)))
}

/// Reads until four bytes have come through TLS, the peer closed, or `timeout` passed.
async fn first_bytes(
    mut stream: TlsStream<crate::tls::Wire>,
    timeout: Duration,
) -> Result<(Bytes, TlsStream<crate::tls::Wire>), Refused> {
    let mut first = [0u8; 4];
    let mut got = 0;
    let read = tokio::time::timeout(timeout, async {
        while got < first.len() {
            match stream.read(&mut first[got..]).await? {
                0 => break,
                n => got += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    match read {
        Err(_) if got == 0 => Err(refused(
            "detection",
            Status::deadline_exceeded(format!("sent nothing through TLS within {timeout:?}")),
        )),
        Ok(Err(e)) => Err(refused(
            "detection",
            Status::unavailable(format!("the TLS connection failed: {e}")),
        )),
        _ if got == 0 => Err(refused(
            "detection",
            Status::unavailable("closed the TLS connection before sending anything"),
        )),
        // Fewer than four bytes (a peer that closed, or paused): mprpc's reader, or HTTP's,
        // reads on from them.
        _ => Ok((Bytes::copy_from_slice(&first[..got]), stream)),
    }
}
