//! The write half of a plain TCP connection, shared by its writer task and those who write
//! to it directly ([`super::direct`]): a provider's reader, a consumer's call alone on its
//! connection, and the task that finishes a frame the socket took only part of.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// The writer task's handle on a socket's write half that calls share, to write their
/// requests themselves. The half shuts the write side down when the last handle goes, as
/// before it was shared.
#[derive(Debug, Clone)]
pub(crate) struct SharedWrite(pub(crate) Arc<OwnedWriteHalf>);

impl SharedWrite {
    fn socket(&self) -> &TcpStream {
        (*self.0).as_ref()
    }

    /// Polls `write` (a non-blocking write) until the socket takes something or fails.
    fn poll_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket().poll_write_ready(cx))?;
            match write(self.socket()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }
}

impl AsyncWrite for SharedWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |socket| socket.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, |socket| socket.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down (the provider reads the end of the stream), as tokio's
    /// `OwnedWriteHalf` does.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shut = socket2::SockRef::from(self.socket()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match shut {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_and_shuts_down_like_the_half_it_shares() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        let (mut rd, wr) = near.unwrap().into_split();
        let (mut far, _) = far.unwrap();
        let mut wr = SharedWrite(Arc::new(wr));
        let big = vec![7u8; 4 << 20];
        let echo = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            far.write_all(&got).await.unwrap();
            got.len()
        });
        let parts = [
            io::IoSlice::new(&big[..1000]),
            io::IoSlice::new(&big[1000..]),
        ];
        let n = wr.write_vectored(&parts).await.unwrap();
        wr.write_all(&big[n..]).await.unwrap();
        wr.shutdown().await.unwrap();
        let mut back = Vec::new();
        rd.read_to_end(&mut back).await.unwrap();
        assert_eq!(echo.await.unwrap(), big.len());
        assert_eq!(back, big);
    }
}
