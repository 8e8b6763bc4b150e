//! A stream with the bytes already read from it put back in front: what protocol detection
//! inside TLS read to choose the protocol is read again by the protocol's own reader.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `io`, whose reads first return `prefix`. Writes go straight through.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    prefix: Bytes,
    io: S,
}

impl<S> Rewind<S> {
    /// `io` with `prefix` to be read before anything else.
    pub(crate) fn new(prefix: Bytes, io: S) -> Rewind<S> {
        Rewind { prefix, io }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_prefix_is_read_first_then_the_stream() {
        let (mut far, near) = tokio::io::duplex(64);
        let mut rewound = Rewind::new(Bytes::from_static(b"PRI "), near);
        far.write_all(b"* HTTP/2.0").await.unwrap();
        drop(far);
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"PRI * HTTP/2.0");
    }

    #[tokio::test]
    async fn a_small_read_takes_the_prefix_in_pieces() {
        let (_far, near) = tokio::io::duplex(64);
        let mut rewound = Rewind::new(Bytes::from_static(b"abcd"), near);
        let mut two = [0u8; 3];
        assert_eq!(rewound.read(&mut two).await.unwrap(), 3);
        assert_eq!(&two, b"abc");
        assert_eq!(rewound.read(&mut two).await.unwrap(), 1);
        assert_eq!(two[0], b'd');
    }
}
