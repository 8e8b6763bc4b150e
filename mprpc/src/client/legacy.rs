//! Calls to providers of the original C++ mprpc (found in its ZooKeeper layout): one TCP
//! connection per call, as the original requires, its request format
//! (`protocol::legacy`), and the reply read to the provider's half-close.
//!
//! The original's replies carry no status: whatever message arrives is the reply (a
//! provider that fails answers its response's `ResultCode`, or nothing, which reads as the
//! empty message). What this side can tell is said: no connection (`Unavailable`, never
//! sent), a connection lost mid-call (`Unavailable`), the call's budget run out
//! (`DeadlineExceeded`: the original's providers never answer an unknown method), a reply
//! over `max_frame_size` (`ResourceExhausted`).

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::CallError;
use crate::config::ClientConfig;
use crate::protocol::legacy::encode_request;
use crate::{Body, Response, Status};

/// One call of `service`/`method` to the original's provider at `address`.
pub(crate) async fn call(
    address: &str,
    (service, method): (&str, &str),
    body: Body,
    remaining: Duration,
    config: &ClientConfig,
) -> Result<Response<Body>, CallError> {
    let deadline = tokio::time::Instant::now() + remaining;
    let connect = tokio::time::timeout(
        config.connect_timeout.min(remaining),
        TcpStream::connect(address),
    );
    let mut stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(CallError::NotSent(Status::unavailable(format!(
                "cannot connect to {address} (the original mprpc's protocol): {e}"
            ))))
        }
        Err(_) => {
            return Err(CallError::NotSent(Status::unavailable(format!(
                "cannot connect to {address} within {:?}",
                config.connect_timeout.min(remaining)
            ))))
        }
    };
    let _ = stream.set_nodelay(true);
    // The original's service names are unqualified.
    let short = service.rsplit('.').next().unwrap_or(service);
    let request = encode_request(short, method, &body.into_bytes());
    let limit = config.max_frame_size;
    let exchange = async {
        stream.write_all(&request).await?;
        let mut reply = BytesMut::with_capacity(1024);
        loop {
            if stream.read_buf(&mut reply).await? == 0 {
                return Ok::<_, std::io::Error>(Some(reply.freeze()));
            }
            if reply.len() > limit {
                return Ok(None);
            }
        }
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(Some(reply))) => Ok(Response::new(reply.into())),
        Ok(Ok(None)) => Err(CallError::Failed(Status::resource_exhausted(format!(
            "the reply of {address} to {service}/{method} exceeds the maximum frame size of {limit} bytes"
        )))),
        Ok(Err(e)) => Err(CallError::Failed(Status::unavailable(format!(
            "connection to {address} failed during {service}/{method}: {e}"
        )))),
        Err(_) => Err(CallError::Failed(Status::deadline_exceeded(format!(
            "{service}/{method} on {address} (the original mprpc's protocol) did not answer within {remaining:?}"
        )))),
    }
}
