//! A provider reader's replies of one batch, written by the reader at the batch's end.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::{finish_in_task, try_write, Failed, FRAME_LIMIT};
use crate::protocol::frame::OutFrame;
use crate::protocol::writer::BusyHint;

/// Bytes gathered in one batch; later replies of the batch go through the writer.
const BATCH_BYTES: usize = 256 * 1024;
/// A larger buffer is not kept between batches.
const KEEP_CAPACITY: usize = 64 * 1024;

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
                return Ok(give_back(&mut self.buf));
            }
            None => return Ok(give_back(&mut self.buf)),
        };
        let tcp: &TcpStream = (**socket).as_ref();
        match try_write(tcp, &self.buf) {
            Ok(n) if n == self.buf.len() => {
                guard.release();
                self.buf.clear();
                if self.buf.capacity() > KEEP_CAPACITY {
                    self.buf = BytesMut::new();
                }
                Ok(None)
            }
            Ok(0) => {
                // Nothing written, nothing cut: the writer writes it when the peer reads.
                guard.release();
                Ok(give_back(&mut self.buf))
            }
            Ok(n) => {
                let rest = self.buf.split_off(n).freeze();
                self.buf.clear();
                let guard = guard.into_owned(self.hint.clone());
                let runtime = tokio::runtime::Handle::current();
                let stall = (stall_limit, failed());
                finish_in_task(&runtime, socket.clone(), rest, guard, stall);
                Ok(None)
            }
            // The guard, dropped, fails the lock.
            Err(e) => Err(e),
        }
    }
}

/// What a batch gathered in `buf`, as one frame to queue.
fn give_back(buf: &mut BytesMut) -> Option<OutFrame> {
    Some(OutFrame::Encoded(buf.split().freeze()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{bodies, no_failure, pair, reply};
    use super::*;
    use tokio::io::AsyncReadExt;

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
        let bodies = bodies(&wire);
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
        let bodies = bodies(&wire);
        assert!(bodies.iter().all(|body| body[..] == [5u8; 8 * 1024][..]));
        assert_eq!(bodies.len(), frames);
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
}
