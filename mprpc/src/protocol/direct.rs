//! Frames written by a connection's reader itself, without its writer task, when the socket
//! is free: the replies of the calls a provider answered while reading a batch of requests.
//!
//! A connection's frames normally go through its [`Outbox`](super::Outbox) to its writer
//! task. For a reply ready as soon as its request is read (most are: the provider polls each
//! call once on its reader), that costs a queue's send and receive and a wake-up and turn of
//! the writer task, which at one call in flight is a task switch on the reply's way out.
//! Instead the reader gathers the batch's ready replies into a [`Direct`] buffer and writes
//! them itself with one non-blocking `write` once the batch is done, as brpc's
//! `Socket::Write` does for the thread that finds the socket idle.
//!
//! Who writes is decided by a [`WriteLock`] that the writer task takes around each of its
//! writes as well: a frame is never split by another's bytes, whoever wrote its first byte
//! writes its last. The reader only *tries* the lock, and only when nothing is queued: if the
//! writer holds it (it is writing, or waiting for a slow peer) or has frames to write, the
//! batch's frames are queued behind them, as one frame of bytes already encoded. If the
//! socket takes only part of the batch, the reader writes the rest as the peer makes room,
//! reading nothing meanwhile (the peer is behind on its replies; the stall limit ends a peer
//! that reads nothing at all). A writer that fails or is dropped part-way through a frame
//! fails the lock for good: nobody writes after a cut frame.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::OutFrame;
use super::writer::BusyHint;

/// Frames this large or larger go through the writer, which writes large bodies from their
/// own buffers instead of copying them (and counts them against the connection's budget).
const FRAME_LIMIT: usize = 16 * 1024;
/// Bytes gathered in one batch; later replies of the batch go through the writer.
const BATCH_BYTES: usize = 256 * 1024;
/// A larger buffer is not kept between batches.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Who may write to a connection's socket: one writer at a time, from its first byte of a
/// batch of frames to its last.
#[derive(Debug, Default)]
pub(crate) struct WriteLock {
    held: AtomicBool,
    /// A writer failed or stopped part-way through a frame: nobody writes any more.
    failed: AtomicBool,
    free: Notify,
}

/// The right to write. [`WriteGuard::release`] lets it go; dropped without that (a write
/// that failed, or whose future was dropped, perhaps part-way through a frame) it fails the
/// lock for good.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a>(&'a WriteLock);

impl WriteLock {
    /// The lock, if nobody holds it now and no writer failed.
    pub(crate) fn try_lock(&self) -> Option<WriteGuard<'_>> {
        let free = !self.held.load(Ordering::Relaxed)
            && self
                .held
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        if !free {
            return None;
        }
        if self.failed.load(Ordering::Acquire) {
            self.held.store(false, Ordering::Release);
            return None;
        }
        Some(WriteGuard(self))
    }

    /// The lock, once its holder lets it go; an error if a writer failed for good.
    pub(crate) async fn lock(&self) -> io::Result<WriteGuard<'_>> {
        loop {
            self.check()?;
            if let Some(guard) = self.try_lock() {
                return Ok(guard);
            }
            let released = self.free.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // Looked at again once the wait is registered: a release or a failure from now
            // on wakes it.
            self.check()?;
            if let Some(guard) = self.try_lock() {
                return Ok(guard);
            }
            released.await;
        }
    }

    /// Nobody writes any more.
    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.free.notify_waiters();
    }

    fn check(&self) -> io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "another write to the connection failed part-way through a frame",
            ));
        }
        Ok(())
    }
}

impl WriteGuard<'_> {
    /// Lets the lock go: everything written was written whole.
    pub(crate) fn release(self) {
        let lock = self.0;
        std::mem::forget(self);
        lock.held.store(false, Ordering::Release);
        // One waiter at most (the writer task); with none, the permit stored makes its next
        // wait return at once and try again.
        lock.free.notify_one();
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.fail();
    }
}

/// A batch's ready frames, written by the reader once the batch is done.
#[derive(Debug)]
pub(crate) struct Direct {
    hint: Arc<BusyHint>,
    buf: BytesMut,
}

impl Direct {
    /// The direct writes of the connection whose writer shares `hint`.
    pub(crate) fn new(hint: Arc<BusyHint>) -> Direct {
        Direct {
            hint,
            buf: BytesMut::new(),
        }
    }

    /// Takes `frame` into the batch's buffer, or gives it back to go through the queue: it
    /// is large, or the batch is full.
    // The frame given back is the caller's own, moved back: boxing it would cost an allocation.
    #[allow(clippy::result_large_err)]
    pub(crate) fn put(&mut self, frame: OutFrame) -> Result<(), OutFrame> {
        if self.buf.len() >= BATCH_BYTES || frame.budget_len() >= FRAME_LIMIT {
            return Err(frame);
        }
        let body = frame.encode_head(&mut self.buf, self.hint.compact());
        for part in body.parts() {
            self.buf.extend_from_slice(part);
        }
        Ok(())
    }

    /// Writes what the batch gathered to `socket`, if nobody else writes and nothing is
    /// queued, waiting for room as long as the peer makes some within `stall_limit` (`waited`
    /// is called once if it has to). Otherwise gives it back as one frame, to queue.
    pub(crate) async fn finish(
        &mut self,
        socket: &TcpStream,
        stall_limit: Duration,
        waited: impl FnOnce(),
    ) -> io::Result<Option<OutFrame>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let guard = match self.hint.write_lock().try_lock() {
            // Frames queued go first: the writer would otherwise wait behind every batch.
            Some(guard) if self.hint.unwritten() == 0 => guard,
            Some(guard) => {
                guard.release();
                return Ok(Some(OutFrame::Encoded(self.buf.split().freeze())));
            }
            None => return Ok(Some(OutFrame::Encoded(self.buf.split().freeze()))),
        };
        // On an error (or if this future is dropped) the guard fails the lock.
        write_all(socket, &self.buf, stall_limit, waited).await?;
        guard.release();
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        Ok(None)
    }
}

/// Writes all of `bytes`, waiting for room while the peer makes progress within `stall_limit`.
async fn write_all(
    socket: &TcpStream,
    mut bytes: &[u8],
    stall_limit: Duration,
    waited: impl FnOnce(),
) -> io::Result<()> {
    let mut waited = Some(waited);
    loop {
        match socket.try_write(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if let Some(waited) = waited.take() {
            waited();
        }
        match tokio::time::timeout(stall_limit, socket.writable()).await {
            Ok(ready) => ready?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer accepted no bytes for {stall_limit:?}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FrameDecoder, ResponseHeader};
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Decoder;

    fn reply(id: u64, body: usize) -> OutFrame {
        let header = ResponseHeader {
            request_id: id,
            ..ResponseHeader::default()
        };
        OutFrame::Response(header, vec![id as u8; body].into())
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    #[tokio::test]
    async fn one_writer_at_a_time_and_a_waiter_gets_the_lock_when_it_is_let_go() {
        let lock = Arc::new(WriteLock::default());
        let held = lock.try_lock().expect("free");
        assert!(lock.try_lock().is_none());
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move { lock.lock().await.map(WriteGuard::release) }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        held.release();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter gets the lock")
            .unwrap()
            .unwrap();
        lock.try_lock().expect("and lets it go").release();
    }

    #[tokio::test]
    async fn a_writer_dropped_part_way_stops_every_other() {
        let lock = Arc::new(WriteLock::default());
        let held = lock.try_lock().unwrap();
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move { lock.lock().await.map(WriteGuard::release) }
        });
        tokio::task::yield_now().await;
        drop(held);
        let err = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter is told")
            .unwrap()
            .expect_err("failed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(lock.try_lock().is_none(), "nobody writes after a cut frame");
    }

    #[tokio::test]
    async fn a_batch_is_written_whole_and_large_frames_are_given_back() {
        let (near, mut far) = pair().await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        direct.put(reply(1, 10)).unwrap();
        direct.put(reply(2, 100)).unwrap();
        let large = direct.put(reply(3, FRAME_LIMIT));
        assert!(matches!(large, Err(OutFrame::Response(h, _)) if h.request_id == 3));
        let mut waited = false;
        let queued = direct
            .finish(&near, Duration::from_secs(5), || waited = true)
            .await
            .unwrap();
        assert!(queued.is_none() && !waited);
        hint.write_lock().try_lock().expect("let go").release();
        drop(near);
        let mut wire = Vec::new();
        far.read_to_end(&mut wire).await.unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            bodies.push(frame.body);
        }
        assert_eq!(bodies.len(), 2);
        assert_eq!(&bodies[1][..], &[2u8; 100][..]);
    }

    #[tokio::test]
    async fn while_the_writer_writes_or_has_frames_queued_the_batch_is_queued_behind_them() {
        let (near, _far) = pair().await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        let writer = hint.write_lock().try_lock().unwrap();
        direct.put(reply(1, 10)).unwrap();
        direct.put(reply(2, 10)).unwrap();
        let stall = Duration::from_secs(5);
        let queued = direct.finish(&near, stall, || panic!("not written")).await;
        let Ok(Some(OutFrame::Encoded(bytes))) = queued else {
            panic!("given back whole: {queued:?}");
        };
        assert_eq!(bytes.len(), 2 * reply(1, 10).encoded_len());
        writer.release();
        // Frames queued (by the writer's count) go first, too.
        hint.queued(100);
        direct.put(reply(3, 10)).unwrap();
        let queued = direct.finish(&near, stall, || {}).await.unwrap();
        assert!(matches!(queued, Some(OutFrame::Encoded(_))));
        hint.written(100);
        direct.put(reply(4, 10)).unwrap();
        assert!(direct.finish(&near, stall, || {}).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_batch_after_the_stall_limit() {
        let (near, far) = pair().await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        let mut waited = 0;
        let mut result = Ok(None);
        // Batches of 256 KiB until the sockets' buffers are full.
        for round in 0..400u64 {
            while direct.put(reply(round, 8 * 1024)).is_ok() {}
            result = direct
                .finish(&near, Duration::from_millis(200), || waited += 1)
                .await;
            if result.is_err() {
                break;
            }
        }
        let err = result.expect_err("nothing reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("accepted no bytes"), "{err}");
        assert_eq!(waited, 1);
        let err = hint.write_lock().lock().await.expect_err("failed for good");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        drop(far);
    }
}
