//! A read-ahead buffer under rustls. rustls reads the socket at most 4 KiB at a time
//! (`read_tls`), which costs four system calls for each full 16 KiB record and 256 for a
//! 1 MiB message; through [`ReadAhead`] one `read` takes whatever the socket holds, up to
//! [`READ_AHEAD`], and rustls's small reads are copies from it.
//!
//! The buffer exists only while it holds bytes: it is taken when a read needs it and given
//! back when it is empty and the socket has nothing more, so an idle TLS connection keeps
//! no read-ahead memory (10,000 idle connections would otherwise hold 640 MiB).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The read-ahead buffer's size: four full TLS records.
pub(crate) const READ_AHEAD: usize = 64 * 1024;

/// `io` with reads going through a buffer of [`READ_AHEAD`] bytes, writes straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    io: S,
    buf: BytesMut,
}

impl<S> ReadAhead<S> {
    /// `io` under a read-ahead buffer.
    pub(crate) fn new(io: S) -> ReadAhead<S> {
        ReadAhead {
            io,
            buf: BytesMut::new(),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.buf.is_empty() {
            if out.remaining() >= READ_AHEAD {
                // A read as large as the buffer: nothing to gain from it.
                return Pin::new(&mut this.io).poll_read(cx, out);
            }
            this.buf.reserve(READ_AHEAD);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                other => {
                    // Nothing read: give the memory back until the socket has bytes again.
                    this.buf = BytesMut::new();
                    return other.map_ok(|_| ());
                }
            }
        }
        let n = out.remaining().min(this.buf.len());
        out.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_come_from_one_large_read_and_the_buffer_is_given_back() {
        let (mut near, far) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        near.write_all(&data).await.unwrap();
        drop(near);
        let mut reader = ReadAhead::new(far);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = reader.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            assert!(reader.buf.capacity() <= READ_AHEAD);
        }
        assert_eq!(got, data);
        assert_eq!(reader.buf.capacity(), 0, "an empty buffer is kept");
    }

    #[tokio::test]
    async fn a_large_read_bypasses_the_buffer() {
        let (mut near, far) = tokio::io::duplex(1 << 20);
        near.write_all(&[7u8; 1000]).await.unwrap();
        let mut reader = ReadAhead::new(far);
        let mut big = vec![0u8; 2 * READ_AHEAD];
        let n = reader.read(&mut big).await.unwrap();
        assert_eq!(n, 1000);
        assert_eq!(reader.buf.capacity(), 0);
    }
}
