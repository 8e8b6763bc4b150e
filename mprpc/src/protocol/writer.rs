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
//!
//! **Stalls.** A peer that stops reading fills the socket buffer and then the queue. If the
//! socket accepts no byte for the stall limit, the write fails with `TimedOut` and the owner
//! closes the connection, so a peer that never reads cannot hold a connection's memory, and
//! the calls waiting on it, for ever.

use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_io_timeout::TimeoutWriter;

use super::direct::WriteLock;
use super::frame::OutFrame;
use crate::Body;

/// Frames queued per connection before senders wait.
pub const QUEUE_DEPTH: usize = 1024;
/// Bodies at least this large are written from their own buffer instead of being copied.
const COPY_LIMIT: usize = 16 * 1024;
/// Stop gathering more frames into one write past this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// The most buffers handed to one `writev` (Linux takes up to 1,024).
const MAX_SLICES: usize = 64;

/// What a connection's owner and its writer share: calls in flight, maintained by the
/// owner (the writer waits for company when there are several), and the bytes of frames
/// queued but not yet written (the [`Outbox`](super::outbox::Outbox) adds, the writer
/// subtracts), so that a provider can stop reading a client that does not read; and whether
/// the peer reads compact headers.
#[derive(Debug, Default)]
pub struct BusyHint {
    calls: AtomicUsize,
    unwritten: AtomicUsize,
    /// Set while the owner waits in [`BusyHint::drained_to`].
    waiting: AtomicBool,
    /// The peer reads compact requests or responses (`compact.rs`): the writer sends them.
    compact: AtomicBool,
    drained: Notify,
    /// Who writes to the socket now: the writer task, or the reader (`super::direct`).
    write_lock: WriteLock,
}

impl BusyHint {
    /// One more call in flight.
    pub fn enter(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// One call fewer.
    pub fn leave(&self) {
        self.calls.fetch_sub(1, Ordering::Relaxed);
    }

    /// Calls in flight now.
    pub fn count(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The peer has shown that it reads compact headers: requests and responses are
    /// written compactly from now on.
    pub fn speak_compact(&self) {
        if !self.compact.load(Ordering::Relaxed) {
            self.compact.store(true, Ordering::Relaxed);
        }
    }

    /// Whether requests and responses are written compactly.
    pub fn compact(&self) -> bool {
        self.compact.load(Ordering::Relaxed)
    }

    /// A frame of `bytes` ([`OutFrame::budget_len`]) is about to be queued.
    pub(super) fn queued(&self, bytes: usize) {
        self.unwritten.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of frames queued and not yet written.
    pub fn unwritten(&self) -> usize {
        self.unwritten.load(Ordering::Relaxed)
    }

    /// Waits until the unwritten bytes are at most `limit`.
    pub async fn drained_to(&self, limit: usize) {
        while self.unwritten.load(Ordering::SeqCst) > limit {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // With the writer's SeqCst subtract-then-load, either we see its progress here
            // or it sees `waiting` and wakes us.
            self.waiting.store(true, Ordering::SeqCst);
            if self.unwritten.load(Ordering::SeqCst) <= limit {
                break;
            }
            notified.await;
        }
        self.waiting.store(false, Ordering::SeqCst);
    }

    /// Frames of `bytes` in all were written (or will never be).
    pub(super) fn written(&self, bytes: usize) {
        if bytes > 0 {
            self.unwritten.fetch_sub(bytes, Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) {
                self.drained.notify_waiters();
            }
        }
    }

    /// Who writes to the socket now.
    pub(crate) fn write_lock(&self) -> &WriteLock {
        &self.write_lock
    }

    fn busy(&self) -> bool {
        self.count() > 1
    }
}

/// Writes `head` then the pieces of `body` with as few syscalls as the socket allows (one,
/// usually: a large message's pieces go out from their own buffers with one `writev`).
async fn write_all_parts<W>(io: &mut W, head: &[u8], body: &Body) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let parts = body.parts();
    // `head` is part 0, then the body's; `offset` is how much of part `at` is written.
    let part = |i: usize| -> &[u8] {
        if i == 0 {
            head
        } else {
            &parts[i - 1]
        }
    };
    let count = 1 + parts.len();
    let (mut at, mut offset) = (0, 0);
    while at < count {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut n = 0;
        for (i, slot) in (at..count).zip(0..MAX_SLICES) {
            let from = if i == at { offset } else { 0 };
            slices[slot] = IoSlice::new(&part(i)[from..]);
            n += 1;
        }
        let mut written = io.write_vectored(&slices[..n]).await?;
        if written == 0 && slices[..n].iter().any(|s| !s.is_empty()) {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Past every part fully written, and into the one written in part.
        loop {
            let rest = part(at).len() - offset;
            if written < rest {
                offset += written;
                break;
            }
            written -= rest;
            at += 1;
            offset = 0;
            if at == count {
                if written > 0 {
                    return Err(std::io::Error::other(
                        "the socket wrote more than it was given",
                    ));
                }
                break;
            }
        }
    }
    Ok(())
}

/// Writes frames from `rx` to `io` until every sender is dropped (then flushes and shuts
/// the write half down) or a write fails (then returns the error). A write that makes no
/// progress for `stall_limit` fails with [`std::io::ErrorKind::TimedOut`].
pub async fn write_loop<W>(
    io: W,
    rx: mpsc::Receiver<OutFrame>,
    hint: &BusyHint,
    stall_limit: Duration,
) -> std::io::Result<()>
where
    W: AsyncWrite,
{
    let mut io = TimeoutWriter::new(io);
    io.set_timeout(Some(stall_limit));
    write_frames(Box::pin(io), rx, hint)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer accepted no bytes for {stall_limit:?}"),
            ),
            _ => e,
        })
}

async fn write_frames<W>(
    mut io: W,
    mut rx: mpsc::Receiver<OutFrame>,
    hint: &BusyHint,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    // Grown on demand, so that an idle connection holds no write buffer to speak of.
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut frames = 1usize;
        let mut yielded = false;
        let mut next = Some(first);
        // Budget bytes of the frames in `buf`, subtracted from the hint once written.
        let mut pending = 0;
        loop {
            while let Some(frame) = next.take() {
                pending += frame.budget_len();
                let body = frame.encode_head(&mut buf, hint.compact());
                if body.len() >= COPY_LIMIT {
                    // A write that fails, or is dropped, fails the lock for good.
                    let writing = hint.write_lock().lock().await?;
                    write_all_parts(&mut io, &buf, &body).await?;
                    writing.release();
                    buf.clear();
                    hint.written(pending);
                    pending = 0;
                } else {
                    for part in body.parts() {
                        buf.extend_from_slice(part);
                    }
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
            let writing = hint.write_lock().lock().await?;
            io.write_all(&buf).await?;
            writing.release();
            buf.clear();
        }
        hint.written(pending);
        if buf.capacity() > 2 * BATCH_BYTES {
            // Do not keep a huge buffer around after one large burst.
            buf = BytesMut::new();
        }
    }
    let writing = hint.write_lock().lock().await?;
    io.flush().await?;
    io.shutdown().await?;
    writing.release();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ResponseHeader;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    fn reply(body: usize) -> OutFrame {
        OutFrame::Response(ResponseHeader::default(), vec![1u8; body].into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_makes_the_writer_fail_after_the_stall_limit() {
        let (near, _far) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::channel(8);
        let hint = BusyHint::default();
        tx.send(reply(4096)).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = write_loop(near, rx, &hint, Duration::from_secs(5))
            .await
            .expect_err("nothing reads the other end");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("accepted no bytes for 5s"),
            "{err}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_not_a_stall() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::channel(8);
        let hint = BusyHint::default();
        let writer =
            tokio::spawn(async move { write_loop(near, rx, &hint, Duration::from_secs(5)).await });
        let total = 10 * (4096 + 64);
        for _ in 0..10 {
            tx.send(reply(4096)).await.unwrap();
        }
        drop(tx);
        // 1 KiB every 2 s: far slower than the data, never idle for the stall limit.
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            match far.read(&mut chunk).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
        writer.await.unwrap().expect("a slow reader is served");
        assert!(
            got.len() >= 10 * 4096 && got.len() <= total,
            "{}",
            got.len()
        );
    }

    #[tokio::test]
    async fn every_frame_is_counted_until_written() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(8);
        let hint = std::sync::Arc::new(BusyHint::default());
        let mut expected = 0;
        for frame in [
            reply(10),
            reply(100_000),
            OutFrame::Ping(Bytes::from_static(b"12345678")),
            OutFrame::Pong(Bytes::from(vec![0u8; 50_000])),
        ] {
            expected += frame.budget_len();
            hint.queued(frame.budget_len());
            tx.send(frame).await.unwrap();
        }
        assert!(expected > 150_000);
        assert_eq!(hint.unwritten(), expected);
        drop(tx);
        let writer_hint = hint.clone();
        write_loop(near, rx, &writer_hint, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(hint.unwritten(), 0);
        let mut all = Vec::new();
        far.read_to_end(&mut all).await.unwrap();
        assert!(all.len() > 150_018);
    }

    #[tokio::test]
    async fn a_body_in_pieces_arrives_whole_through_partial_writes() {
        use crate::protocol::FrameDecoder;
        use tokio_util::codec::Decoder;
        // 100 pieces of 1,000 to 1,099 bytes (more than one `writev` takes), then a small
        // frame and one in pieces below the copy limit, through a pipe of 3,000 bytes: every
        // write stops somewhere inside a piece.
        let pieces: Vec<Bytes> = (0..100u32)
            .map(|i| Bytes::from(vec![i as u8; 1000 + i as usize]))
            .collect();
        let whole: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let small = Body::from_parts([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let (near, mut far) = tokio::io::duplex(3000);
        let (tx, rx) = mpsc::channel(8);
        for body in [Body::from_parts(pieces), Body::from_static(b"x"), small] {
            tx.send(OutFrame::Response(ResponseHeader::default(), body))
                .await
                .unwrap();
        }
        drop(tx);
        let writer = tokio::spawn(async move {
            write_loop(near, rx, &BusyHint::default(), Duration::from_secs(5)).await
        });
        let mut wire = Vec::new();
        far.read_to_end(&mut wire).await.unwrap();
        writer.await.unwrap().unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            bodies.push(frame.body);
        }
        assert!(buf.is_empty());
        assert_eq!(bodies.len(), 3);
        assert_eq!(&bodies[0][..], &whole[..]);
        assert_eq!(&bodies[1][..], b"x");
        assert_eq!(&bodies[2][..], b"abcd");
    }

    #[tokio::test]
    async fn the_writer_writes_nothing_while_another_holds_the_socket() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(8);
        let hint = std::sync::Arc::new(BusyHint::default());
        let held = hint.write_lock().try_lock().unwrap();
        // A small frame (gathered in the writer's buffer) and a large one (written from its
        // own buffer): neither may be written while the lock is held.
        tx.send(reply(10)).await.unwrap();
        tx.send(reply(COPY_LIMIT + 1)).await.unwrap();
        drop(tx);
        let writer_hint = hint.clone();
        let writer = tokio::spawn(async move {
            write_loop(near, rx, &writer_hint, Duration::from_secs(5)).await
        });
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(200), far.read(&mut byte)).await;
        assert!(early.is_err(), "the writer wrote while the lock was held");
        held.release();
        let mut wire = Vec::new();
        far.read_to_end(&mut wire).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(
            wire.len(),
            reply(10).encoded_len() + reply(COPY_LIMIT + 1).encoded_len()
        );
    }

    /// A socket that says it wrote twice what it was given.
    struct Overcounting;

    impl AsyncWrite for Overcounting {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len() * 2))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_socket_that_overcounts_is_an_error_not_a_panic() {
        let body = Body::from_parts([Bytes::from(vec![1u8; 20_000]), Bytes::from_static(b"x")]);
        let err = write_all_parts(&mut Overcounting, b"head", &body)
            .await
            .expect_err("more written than given");
        assert!(err.to_string().contains("more than it was given"), "{err}");
    }
}
