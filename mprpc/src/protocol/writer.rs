//! The task that owns a connection's write half.
//!
//! Callers and handlers hand it [`OutFrame`]s through a bounded channel; it encodes them into
//! one buffer and writes as many as are queued with one syscall, so that a burst of replies
//! costs one write rather than one per reply. Large bodies are written from their own buffer
//! rather than copied. The bounded channel is the backpressure: a peer that stops reading
//! eventually makes senders wait instead of growing memory without limit.
//!
//! **Batching.** On a busy runtime the writer is usually woken by the first frame of a burst
//! and would find nothing else queued yet: the tasks that produce the other frames have not
//! run. So when the connection has other calls in flight ([`BusyHint`]), the writer yields
//! once before writing, letting those tasks queue their frames, and writes them all at once.
//! With a single call in flight it writes at once, adding no latency.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Calls in flight on a connection, maintained by its owner; the writer waits for company
/// when there are several.
#[derive(Debug, Default)]
pub struct BusyHint(AtomicUsize);

impl BusyHint {
    /// One more call in flight.
    pub fn enter(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// One call fewer.
    pub fn leave(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 1
    }
}

/// Writes `head` then `body` with as few syscalls as the socket allows (one, usually).
async fn write_both<W>(io: &mut W, mut head: &[u8], mut body: &[u8]) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while !head.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n < head.len() {
            head = &head[n..];
        } else {
            body = &body[n - head.len()..];
            head = &[];
        }
    }
    io.write_all(body).await
}

/// Writes frames from `rx` to `io` until every sender is dropped (then flushes and shuts
/// the write half down) or a write fails (then returns the error).
pub async fn write_loop<W>(
    mut io: W,
    mut rx: mpsc::Receiver<OutFrame>,
    hint: &BusyHint,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut frames = 1usize;
        let mut yielded = false;
        let mut next = Some(first);
        loop {
            while let Some(frame) = next.take() {
                let body = frame.encode_head(&mut buf);
                if body.len() >= COPY_LIMIT {
                    write_both(&mut io, &buf, &body).await?;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&body);
                }
                if buf.len() < BATCH_BYTES {
                    next = rx.try_recv().ok();
                    frames += usize::from(next.is_some());
                }
            }
            if yielded || frames > 1 || buf.len() >= BATCH_BYTES || !hint.busy() {
                break;
            }
            // Alone in the queue but not alone on the connection: let the others catch up.
            yielded = true;
            tokio::task::yield_now().await;
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
            frames += 1;
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
