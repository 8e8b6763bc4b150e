//! Reading frames off a socket: [`FrameReader`], a [`Stream`] of [`Frame`]s.
//!
//! It is tokio-util's `FramedRead` with [`FrameDecoder`], plus one thing `FramedRead` cannot
//! do: once the decoder has begun to gather a large frame's body into its pooled buffer,
//! the rest of that body is read from the socket straight into that buffer, not into the
//! read buffer first and copied over. A 1 MiB message then costs no user-space copy on
//! its way in (the kernel's copy into the buffer is the only one), as in a raw TCP echo.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use futures_util::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use super::{FrameDecoder, ProtocolError};
use crate::protocol::Frame;

/// A stream of frames read from `R`.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    decoder: FrameDecoder,
    buffer: BytesMut,
    /// The peer closed its side: what is left in the buffer is decoded, then the stream ends.
    eof: bool,
    /// An error was returned: the stream has ended.
    errored: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader whose read buffer starts with room for `capacity` bytes.
    pub fn with_capacity(io: R, decoder: FrameDecoder, capacity: usize) -> FrameReader<R> {
        FrameReader {
            io,
            decoder,
            buffer: BytesMut::with_capacity(capacity),
            eof: false,
            errored: false,
        }
    }

    /// The decoder.
    pub fn decoder(&self) -> &FrameDecoder {
        &self.decoder
    }

    /// The decoder, to change.
    pub fn decoder_mut(&mut self) -> &mut FrameDecoder {
        &mut self.decoder
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame, ProtocolError>>> {
        loop {
            if self.eof {
                return Poll::Ready(self.decoder.decode_eof(&mut self.buffer).transpose());
            }
            if let Some(frame) = self.decoder.decode(&mut self.buffer)? {
                return Poll::Ready(Some(Ok(frame)));
            }
            let read = match self.decoder.body_room() {
                // What the decoder gathers is in its buffer: read the rest straight there.
                Some(mut body) => ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut body)),
                None => {
                    // Room for at least one byte, so that a read of 0 means the end.
                    self.buffer.reserve(1);
                    ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buffer))
                }
            };
            if read? == 0 {
                self.eof = true;
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameReader<R> {
    type Item = Result<Frame, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.errored {
            return Poll::Ready(None);
        }
        let next = this.poll_frame(cx);
        if matches!(next, Poll::Ready(Some(Err(_)))) {
            this.errored = true;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::{Bytes, BytesMut};
    use futures_util::StreamExt;
    use tokio::io::ReadBuf;

    use super::*;
    use crate::protocol::frame::{OutFrame, ResponseHeader};
    use crate::protocol::pool::LARGE;

    /// A socket that hands out its bytes in the pieces given, whatever room a read offers.
    struct Pieces(VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn reply(id: u64, body: Bytes) -> Vec<u8> {
        let header = ResponseHeader {
            request_id: id,
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        OutFrame::Response(header, body.into()).encode(&mut buf);
        buf.to_vec()
    }

    fn stream_of(large: usize) -> (Vec<u8>, Bytes) {
        let big = Bytes::from((0..large).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let mut bytes = reply(1, Bytes::from_static(b"small"));
        bytes.extend(reply(2, big.clone()));
        bytes.extend(reply(3, Bytes::from_static(b"after")));
        (bytes, big)
    }

    fn in_pieces(bytes: &[u8], size: usize) -> Pieces {
        Pieces(bytes.chunks(size).map(<[u8]>::to_vec).collect())
    }

    async fn read_all(pieces: Pieces) -> Vec<Result<Frame, ProtocolError>> {
        let reader = FrameReader::with_capacity(pieces, FrameDecoder::new(64 << 20), 1024);
        reader.collect().await
    }

    #[tokio::test]
    async fn a_large_body_is_read_into_its_own_buffer_and_the_next_frame_follows() {
        let (bytes, big) = stream_of(LARGE * 3 + 17);
        // Pieces that end inside headers, inside the body and across frame boundaries.
        for size in [7, 1000, 65_536, 300_001, bytes.len()] {
            let frames = read_all(in_pieces(&bytes, size)).await;
            let frames: Vec<Frame> = frames.into_iter().map(Result::unwrap).collect();
            assert_eq!(frames.len(), 3, "pieces of {size}");
            assert_eq!(&frames[0].body[..], b"small");
            assert_eq!(frames[1].body, big, "pieces of {size}");
            assert_eq!(&frames[2].body[..], b"after");
        }
    }

    #[tokio::test]
    async fn the_end_in_the_middle_of_a_large_body_is_an_error_then_the_end() {
        let (bytes, _) = stream_of(LARGE * 2);
        let cut = bytes.len() / 2;
        let frames = read_all(in_pieces(&bytes[..cut], 4096)).await;
        assert_eq!(frames.len(), 2, "the first frame, then the error");
        assert!(frames[0].is_ok());
        match &frames[1] {
            Err(ProtocolError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
            other => panic!("expected an unexpected end, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_is_an_error_and_nothing_after_it() {
        let mut bytes = reply(1, Bytes::from_static(b"ok"));
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        bytes.extend(reply(2, Bytes::from_static(b"never")));
        let frames = read_all(in_pieces(&bytes, 5)).await;
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[1], Err(ProtocolError::BadMagic(_))));
    }
}
