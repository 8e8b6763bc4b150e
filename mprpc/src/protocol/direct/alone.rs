//! A consumer's request, written by its caller when the call is alone on its connection.

use std::cell::RefCell;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use super::{try_write, WriteGuard, FRAME_LIMIT};
use crate::protocol::frame::OutFrame;
use crate::protocol::writer::BusyHint;

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
        let written = match try_write(socket, &buf) {
            Ok(n) if n == buf.len() => {
                guard.release();
                Ok(Alone::Written)
            }
            // Nothing written, nothing cut: the writer writes it when the peer reads.
            Ok(0) => {
                guard.release();
                let frame = OutFrame::Encoded(Bytes::copy_from_slice(&buf));
                Ok(Alone::Queue(frame))
            }
            Ok(n) => Ok(Alone::Rest(Bytes::copy_from_slice(&buf[n..]), guard)),
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

#[cfg(test)]
mod tests {
    use super::super::finish_in_task;
    use super::super::test_support::{bodies, no_failure, pair, reply};
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

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
        let bodies = bodies(&wire);
        assert_eq!(bodies.len(), 1, "one whole frame");
        assert_eq!(&bodies[0][..], &[1u8; 10][..]);
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
        let bodies = bodies(&wire);
        assert!(bodies.iter().all(|body| body[..] == [9u8; 8 * 1024][..]));
        assert_eq!(bodies.len(), sent + 1);
        let lock = hint.write_lock();
        tokio::time::timeout(Duration::from_secs(10), lock.lock())
            .await
            .expect("the task lets the lock go")
            .unwrap()
            .release();
    }
}
