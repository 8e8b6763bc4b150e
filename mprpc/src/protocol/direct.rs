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
//! batch's frames are queued behind them, as one frame of bytes already encoded, as they are
//! if the socket takes none of them. If it takes only part, the rest is written by a task of
//! its own that holds the lock until it is done ([`finish_in_task`]), its bytes counted
//! against the connection's budget like queued ones: the reader reads on, and stops at the
//! budget as before. A writer that fails or is dropped part-way through a frame fails the
//! lock for good: nobody writes after a cut frame.
//!
//! A consumer does the same with the request of a call alone on its connection
//! ([`write_alone`]): nothing to batch it with, so the caller writes it at once, and the rest,
//! if any, in a task of its own, so that a caller who gives up cannot cut a frame.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
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

    /// The same right to write, for a task of its own: `hint` is the connection's, whose
    /// lock this is.
    pub(crate) fn into_owned(self, hint: Arc<BusyHint>) -> OwnedWriteGuard {
        debug_assert!(std::ptr::eq(self.0, hint.write_lock()));
        std::mem::forget(self);
        OwnedWriteGuard(Some(hint))
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.fail();
    }
}

/// A [`WriteGuard`] that owns its connection's hint, to move to a task.
#[derive(Debug)]
pub(crate) struct OwnedWriteGuard(Option<Arc<BusyHint>>);

impl OwnedWriteGuard {
    fn hint(&self) -> &Arc<BusyHint> {
        self.0.as_ref().expect("held until released")
    }

    /// Lets the lock go: everything written was written whole.
    pub(crate) fn release(mut self) {
        if let Some(hint) = self.0.take() {
            WriteGuard(hint.write_lock()).release();
        }
    }
}

impl Drop for OwnedWriteGuard {
    fn drop(&mut self) {
        if let Some(hint) = &self.0 {
            hint.write_lock().fail();
        }
    }
}

/// Told why the task finishing a frame failed ([`finish_in_task`]).
pub(crate) type Failed = Box<dyn FnOnce(io::Error) + Send>;

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

    /// Writes what the batch gathered to `socket` if nobody else writes and nothing is
    /// queued, or gives it back as one frame, to queue. If the socket takes only part of it,
    /// the rest is written by a task of its own ([`finish_in_task`], told by `failed()` if
    /// that fails). An error is the socket's, at once.
    pub(crate) fn finish(
        &mut self,
        socket: &Arc<OwnedWriteHalf>,
        stall_limit: Duration,
        failed: impl FnOnce() -> Failed,
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
        let tcp: &TcpStream = (**socket).as_ref();
        match tcp.try_write(&self.buf) {
            Ok(n) if n == self.buf.len() => {
                guard.release();
                self.buf.clear();
                if self.buf.capacity() > KEEP_CAPACITY {
                    self.buf = BytesMut::new();
                }
                Ok(None)
            }
            Ok(0) => {
                guard.release();
                Ok(Some(OutFrame::Encoded(self.buf.split().freeze())))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Nothing written, nothing cut: the writer writes it when the peer reads.
                guard.release();
                Ok(Some(OutFrame::Encoded(self.buf.split().freeze())))
            }
            Ok(n) => {
                let rest = self.buf.split_off(n).freeze();
                self.buf.clear();
                let guard = guard.into_owned(self.hint.clone());
                let runtime = tokio::runtime::Handle::current();
                finish_in_task(
                    &runtime,
                    socket.clone(),
                    rest,
                    guard,
                    (stall_limit, failed()),
                );
                Ok(None)
            }
            // The guard, dropped, fails the lock.
            Err(e) => Err(e),
        }
    }
}

/// Writes `rest`, the end of what a socket took only part of, in a task of its own that
/// holds the lock until it is written (nobody else's bytes may come between), so that whoever
/// wrote the first part (a provider's reader, a consumer's call) goes on at once. Its bytes
/// count as unwritten meanwhile (a provider reads no further past its budget). If the peer
/// makes no room for `stall_limit`, or the write fails, the lock fails for good and `failed`
/// is told.
pub(crate) fn finish_in_task(
    runtime: &tokio::runtime::Handle,
    socket: Arc<OwnedWriteHalf>,
    rest: Bytes,
    guard: OwnedWriteGuard,
    (stall_limit, failed): (Duration, Failed),
) {
    let hint = guard.hint().clone();
    hint.queued(rest.len());
    let mut finishing = Finishing {
        hint,
        bytes: rest.len(),
        guard: Some(guard),
        failed: Some(failed),
    };
    runtime.spawn(async move {
        let tcp: &TcpStream = (*socket).as_ref();
        match write_all(tcp, &rest, stall_limit).await {
            Ok(()) => finishing.done(),
            Err(e) => finishing.fail(e),
        }
    });
}

/// The task of [`finish_in_task`]: however it ends (also if it is dropped unfinished, with its
/// runtime), its bytes are counted as written, and the failure is told before the lock is
/// failed (the writer task, woken by that, would otherwise report a vaguer error first).
struct Finishing {
    hint: Arc<BusyHint>,
    bytes: usize,
    guard: Option<OwnedWriteGuard>,
    failed: Option<Failed>,
}

impl Finishing {
    fn done(&mut self) {
        self.failed = None;
        if let Some(guard) = self.guard.take() {
            guard.release();
        }
    }

    fn fail(&mut self, e: io::Error) {
        if let Some(failed) = self.failed.take() {
            failed(e);
        }
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.fail(io::Error::other(
            "the task writing the rest of a frame was dropped unfinished",
        ));
        drop(self.guard.take());
        self.hint.written(self.bytes);
    }
}

/// What became of a frame a caller tried to write itself ([`write_alone`]).
#[derive(Debug)]
pub(crate) enum Alone<'a> {
    /// It is on the wire.
    Written,
    /// The socket took only part of it: the rest, and the lock, held until it is written.
    Rest(Bytes, WriteGuard<'a>),
    /// The writer task holds the socket or has frames queued, the frame is large, or the
    /// socket took none of it: it is to be queued (encoded already, in the last case).
    Queue(OutFrame),
}

thread_local! {
    /// Where [`write_alone`] encodes a frame, kept between calls (one per thread).
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Writes `frame` to `socket` at once, without the writer task, if nobody writes and nothing
/// is queued: what a consumer with one call in flight does with its request, saving the
/// writer task's wake-up. An error is the socket's (the lock is then failed).
pub(crate) fn write_alone<'a>(
    socket: &TcpStream,
    hint: &'a BusyHint,
    frame: OutFrame,
) -> Result<Alone<'a>, Broken<'a>> {
    if frame.budget_len() >= FRAME_LIMIT || hint.unwritten() > 0 {
        return Ok(Alone::Queue(frame));
    }
    let Some(guard) = hint.write_lock().try_lock() else {
        return Ok(Alone::Queue(frame));
    };
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        let body = frame.encode_head(&mut buf, hint.compact());
        for part in body.parts() {
            buf.extend_from_slice(part);
        }
        let written = match socket.try_write(&buf) {
            Ok(n) if n == buf.len() => {
                guard.release();
                Ok(Alone::Written)
            }
            Ok(n) if n > 0 => Ok(Alone::Rest(Bytes::copy_from_slice(&buf[n..]), guard)),
            // Nothing written, nothing cut: the writer writes it when the peer reads.
            Ok(_) => {
                guard.release();
                Ok(Alone::Queue(OutFrame::Encoded(Bytes::copy_from_slice(
                    &buf,
                ))))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                guard.release();
                Ok(Alone::Queue(OutFrame::Encoded(Bytes::copy_from_slice(
                    &buf,
                ))))
            }
            Err(e) => Err(Broken(e, guard)),
        };
        if buf.capacity() > FRAME_LIMIT {
            *buf = BytesMut::new();
        }
        written
    })
}

/// The socket failed a write: the error, to report before the lock is failed (by dropping
/// the guard), so that the report is the first anyone reads.
#[derive(Debug)]
pub(crate) struct Broken<'a>(pub(crate) io::Error, pub(crate) WriteGuard<'a>);

/// Writes all of `bytes`, waiting for room while the peer makes progress within `stall_limit`.
async fn write_all(socket: &TcpStream, mut bytes: &[u8], stall_limit: Duration) -> io::Result<()> {
    loop {
        match socket.try_write(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
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

    /// A connection: its write half as a provider's or consumer's connection shares it, and
    /// the far end. With `small`, both ends' buffers are small: a large write goes in part.
    async fn pair(small: bool) -> (Arc<OwnedWriteHalf>, TcpStream) {
        let server = tokio::net::TcpSocket::new_v4().unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        if small {
            // Set before connecting, as tcp(7) asks, so that the window is small from the start.
            server.set_recv_buffer_size(4096).unwrap();
            client.set_send_buffer_size(4096).unwrap();
        }
        server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = server.listen(1).unwrap();
        let near = client.connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (Arc::new(near.unwrap().into_split().1), far.unwrap().0)
    }

    fn no_failure() -> Failed {
        Box::new(|e| panic!("no write fails here: {e}"))
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
        let (near, mut far) = pair(false).await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        direct.put(reply(1, 10)).unwrap();
        direct.put(reply(2, 100)).unwrap();
        let large = direct.put(reply(3, FRAME_LIMIT));
        assert!(matches!(large, Err(OutFrame::Response(h, _)) if h.request_id == 3));
        let stall = Duration::from_secs(5);
        assert!(direct.finish(&near, stall, no_failure).unwrap().is_none());
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
        let (near, _far) = pair(false).await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        let writer = hint.write_lock().try_lock().unwrap();
        direct.put(reply(1, 10)).unwrap();
        direct.put(reply(2, 10)).unwrap();
        let stall = Duration::from_secs(5);
        let queued = direct.finish(&near, stall, no_failure).unwrap();
        let Some(OutFrame::Encoded(bytes)) = queued else {
            panic!("given back whole: {queued:?}");
        };
        assert_eq!(bytes.len(), 2 * reply(1, 10).encoded_len());
        writer.release();
        // Frames queued (by the writer's count) go first, too.
        hint.queued(100);
        direct.put(reply(3, 10)).unwrap();
        let queued = direct.finish(&near, stall, no_failure).unwrap();
        assert!(matches!(queued, Some(OutFrame::Encoded(_))));
        hint.written(100);
        direct.put(reply(4, 10)).unwrap();
        assert!(direct.finish(&near, stall, no_failure).unwrap().is_none());
    }

    #[tokio::test]
    async fn the_rest_of_a_batch_the_socket_took_in_part_is_written_by_a_task_holding_the_lock() {
        let (near, mut far) = pair(true).await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        let mut frames = 0;
        while direct.put(reply(5, 8 * 1024)).is_ok() {
            frames += 1;
        }
        let mut spawned = false;
        let stall = Duration::from_secs(10);
        let queued = direct.finish(&near, stall, || {
            spawned = true;
            no_failure()
        });
        assert!(queued.unwrap().is_none());
        assert!(
            spawned,
            "{frames} frames of 8 KiB went into 8 KiB of buffers at once"
        );
        assert!(hint.unwritten() > 0, "the rest counts as unwritten");
        assert!(hint.write_lock().try_lock().is_none(), "held by the task");
        // The next batch goes behind it, through the queue.
        direct.put(reply(6, 10)).unwrap();
        let queued = direct.finish(&near, stall, no_failure).unwrap();
        assert!(matches!(queued, Some(OutFrame::Encoded(_))));
        let mut wire = vec![0u8; frames * reply(5, 8 * 1024).encoded_len()];
        far.read_exact(&mut wire).await.unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        let mut read = 0;
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            assert_eq!(&frame.body[..], &[5u8; 8 * 1024][..]);
            read += 1;
        }
        assert_eq!(read, frames);
        let lock = hint.write_lock();
        tokio::time::timeout(Duration::from_secs(10), lock.lock())
            .await
            .expect("the task lets the lock go")
            .unwrap()
            .release();
        assert_eq!(hint.unwritten(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_rest_after_the_stall_limit() {
        let (near, far) = pair(true).await;
        let hint = Arc::new(BusyHint::default());
        let mut direct = Direct::new(hint.clone());
        while direct.put(reply(5, 8 * 1024)).is_ok() {}
        let (tx, rx) = tokio::sync::oneshot::channel();
        let failed = move || -> Failed {
            Box::new(move |e| {
                let _ = tx.send(e);
            })
        };
        let queued = direct.finish(&near, Duration::from_millis(200), failed);
        assert!(queued.unwrap().is_none());
        let err = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("told in time")
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("accepted no bytes"), "{err}");
        let err = hint.write_lock().lock().await.expect_err("failed for good");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(hint.unwritten(), 0);
        drop(far);
    }

    #[tokio::test]
    async fn a_frame_alone_is_written_at_once_unless_the_writer_has_the_socket() {
        let (half, mut far) = pair(false).await;
        let near: &TcpStream = (*half).as_ref();
        let hint = Arc::new(BusyHint::default());
        assert!(matches!(
            write_alone(near, &hint, reply(1, 10)).unwrap(),
            Alone::Written
        ));
        hint.write_lock().try_lock().expect("let go").release();
        let writer = hint.write_lock().try_lock().unwrap();
        assert!(matches!(
            write_alone(near, &hint, reply(2, 10)).unwrap(),
            Alone::Queue(_)
        ));
        writer.release();
        hint.queued(10);
        assert!(matches!(
            write_alone(near, &hint, reply(3, 10)).unwrap(),
            Alone::Queue(_)
        ));
        hint.written(10);
        let large = write_alone(near, &hint, reply(4, FRAME_LIMIT)).unwrap();
        assert!(matches!(large, Alone::Queue(_)));
        let mut wire = vec![0u8; reply(1, 10).encoded_len()];
        far.read_exact(&mut wire).await.unwrap();
        let frame = FrameDecoder::new(1 << 20)
            .decode(&mut BytesMut::from(&wire[..]))
            .unwrap()
            .expect("one whole frame");
        assert_eq!(&frame.body[..], &[1u8; 10][..]);
    }

    #[tokio::test]
    async fn a_frame_the_socket_takes_in_part_keeps_the_lock_until_its_rest_is_written() {
        let (half, mut far) = pair(true).await;
        let near: &TcpStream = (*half).as_ref();
        let hint = Arc::new(BusyHint::default());
        // Fill the sockets' buffers.
        let mut sent = 0usize;
        let (rest, guard) = loop {
            match write_alone(near, &hint, reply(9, 8 * 1024)).unwrap() {
                Alone::Written => sent += 1,
                Alone::Rest(rest, guard) => break (rest, guard),
                Alone::Queue(_) => panic!("nothing else writes"),
            }
            assert!(sent < 100_000, "the socket never filled");
        };
        assert!(!rest.is_empty());
        let guard = guard.into_owned(hint.clone());
        assert!(matches!(
            write_alone(near, &hint, reply(10, 10)).unwrap(),
            Alone::Queue(_)
        ));
        let runtime = tokio::runtime::Handle::current();
        let stall = (Duration::from_secs(10), no_failure());
        finish_in_task(&runtime, half.clone(), rest, guard, stall);
        // Every frame arrives whole, the last one too.
        let frame_len = reply(9, 8 * 1024).encoded_len();
        let mut wire = vec![0u8; (sent + 1) * frame_len];
        far.read_exact(&mut wire).await.unwrap();
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        let mut frames = 0;
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            assert_eq!(&frame.body[..], &[9u8; 8 * 1024][..]);
            frames += 1;
        }
        assert_eq!(frames, sent + 1);
        let lock = hint.write_lock();
        tokio::time::timeout(Duration::from_secs(10), lock.lock())
            .await
            .expect("the task lets the lock go")
            .unwrap()
            .release();
    }
}
