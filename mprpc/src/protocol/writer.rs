//! The task that owns a connection's write half.
//!
//! Callers and handlers hand it [`OutFrame`]s through a bounded channel; it encodes them into
//! one buffer and writes as many as are queued with one syscall, so that a burst of replies
//! costs one write rather than one per reply. Large bodies are written from their own buffer
//! rather than copied. The bounded channel is the backpressure: a peer that stops reading
//! eventually makes senders wait instead of growing memory without limit.

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::OutFrame;

/// Frames queued per connection before senders wait.
pub const QUEUE_DEPTH: usize = 1024;
/// Bodies at least this large are written from their own buffer instead of being copied.
const COPY_LIMIT: usize = 16 * 1024;
/// Stop gathering more frames into one write past this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// Writes frames from `rx` to `io` until every sender is dropped (then flushes and shuts
/// the write half down) or a write fails (then returns the error).
pub async fn write_loop<W>(mut io: W, mut rx: mpsc::Receiver<OutFrame>) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            let body = frame.encode_head(&mut buf);
            if body.len() >= COPY_LIMIT {
                io.write_all(&buf).await?;
                buf.clear();
                io.write_all(&body).await?;
            } else {
                buf.extend_from_slice(&body);
            }
            if buf.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            io.write_all(&buf).await?;
            buf.clear();
        }
        if buf.capacity() > 4 * BATCH_BYTES {
            // Do not keep a huge buffer around after one large burst.
            buf = BytesMut::with_capacity(64 * 1024);
        }
    }
    io.flush().await?;
    io.shutdown().await
}
