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

//!
//! - [`batch`]: a provider reader's batch of replies ([`Direct`]);
//! - [`alone`]: a consumer's lone request ([`write_alone`]);
//! - here: the lock, and the task that finishes a partial write ([`finish_in_task`]).

mod alone;
mod batch;

pub(crate) use self::alone::{write_alone, Alone, Broken};
pub(crate) use self::batch::Direct;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::writer::BusyHint;

/// Frames this large or larger go through the writer, which writes large bodies from their
/// own buffers instead of copying them (and counts them against the connection's budget).
const FRAME_LIMIT: usize = 16 * 1024;

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

/// A non-blocking write of `bytes`: how many the socket took (none if it has no room).
fn try_write(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    match socket.try_write(bytes) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        written => written,
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
pub(super) mod test_support {
    use super::*;
    use crate::protocol::frame::OutFrame;
    use crate::protocol::ResponseHeader;

    /// The bodies of the whole frames in `wire`.
    pub(crate) fn bodies(wire: &[u8]) -> Vec<bytes::Bytes> {
        use tokio_util::codec::Decoder;
        let mut decoder = crate::protocol::FrameDecoder::new(1 << 20);
        let mut buf = bytes::BytesMut::from(wire);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            bodies.push(frame.body);
        }
        bodies
    }

    pub(crate) fn reply(id: u64, body: usize) -> OutFrame {
        let header = ResponseHeader {
            request_id: id,
            ..ResponseHeader::default()
        };
        OutFrame::Response(header, vec![id as u8; body].into())
    }

    /// A connection: its write half as a provider's or consumer's connection shares it, and
    /// the far end. With `small`, both ends' buffers are small: a large write goes in part.
    pub(crate) async fn pair(small: bool) -> (Arc<OwnedWriteHalf>, TcpStream) {
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

    pub(crate) fn no_failure() -> Failed {
        Box::new(|e| panic!("no write fails here: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
