//! The limit of the path for streams: length-prefixed frames on a bare TCP connection
//! (`bench serve-raw-stream`), with no flow control but TCP's.
//!
//! A connection carries commands, one after the other; a frame is a `u32` big-endian length
//! and that many bytes.
//!
//! - `S`, then `count` (`u64`) and `size` (`u32`): the server writes `count` frames of `size`
//!   bytes as fast as the socket takes them. It builds one batch of frames (about 64 KiB, at
//!   least one frame) once and writes it again and again: no allocation, copy or encoding per
//!   message. The client ([`read_stream`]) reads into one buffer and steps over each whole
//!   frame after checking its length (it does not copy or decode the payload).
//! - `U`, then frames, then a frame of length 0: an upload. The server reads each frame whole
//!   into one reusable buffer (two or more `read`s per frame: its length, then its bytes),
//!   counts it, and at the end answers with the frames and bytes received (two `u64`s). The
//!   client ([`RawUploader`]) writes one prebuilt frame (length and payload in one buffer)
//!   with one `write_all` per chunk, as fast as the socket takes it. Its figure runs from the
//!   first byte written to the server's answer, so it includes draining what TCP still held.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many bytes of frames the server writes at once when they are small.
const BATCH: usize = 64 * 1024;
/// The largest frame the server accepts (the largest chunk is a few MiB).
const MAX_FRAME: usize = 64 << 20;

/// Serves raw streams on `listener`, a task per connection, until the process exits.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("raw stream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = connection(stream).await;
        });
    }
}

/// One connection's commands, until the client closes it.
async fn connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut chunk = Vec::new();
    loop {
        let mut command = [0u8; 1];
        match stream.read_exact(&mut command).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        match command[0] {
            b'S' => {
                let mut head = [0u8; 12];
                stream.read_exact(&mut head).await?;
                let count = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
                let size = u32::from_be_bytes(head[8..].try_into().expect("4 bytes"));
                send_frames(&mut stream, count, size as usize).await?;
            }
            b'U' => {
                let (frames, bytes) = receive_frames(&mut stream, &mut chunk).await?;
                let mut answer = [0u8; 16];
                answer[..8].copy_from_slice(&frames.to_be_bytes());
                answer[8..].copy_from_slice(&bytes.to_be_bytes());
                stream.write_all(&answer).await?;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown command {other:#x}"),
                ))
            }
        }
    }
}

/// One frame of `size` bytes, its length first.
pub fn frame(size: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + size);
    frame.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    frame.resize(4 + size, 0x5A);
    frame
}

/// Writes `count` frames of `size` bytes, in batches of about [`BATCH`] bytes.
async fn send_frames(stream: &mut TcpStream, count: u64, size: usize) -> io::Result<()> {
    let one = frame(size);
    let per_batch = (BATCH / one.len()).max(1);
    let batch = one.repeat(per_batch);
    let mut left = count;
    while left > 0 {
        let n = left.min(per_batch as u64);
        stream.write_all(&batch[..n as usize * one.len()]).await?;
        left -= n;
    }
    Ok(())
}

/// Reads frames until one of length 0; returns how many came before it, and their bytes.
async fn receive_frames(stream: &mut TcpStream, chunk: &mut Vec<u8>) -> io::Result<(u64, u64)> {
    let (mut frames, mut bytes) = (0u64, 0u64);
    loop {
        let len = stream.read_u32().await? as usize;
        if len == 0 {
            return Ok((frames, bytes));
        }
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes"),
            ));
        }
        chunk.resize(len, 0);
        stream.read_exact(chunk).await?;
        frames += 1;
        bytes += len as u64;
    }
}

/// Opens an endless stream of `size`-byte frames from the server at `address` and reads it,
/// storing the frames read so far in `counter`, until `stop` is set.
pub async fn read_stream(
    address: SocketAddr,
    size: usize,
    counter: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut command = vec![b'S'];
    command.extend_from_slice(&u64::MAX.to_be_bytes());
    command.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    stream
        .write_all(&command)
        .await
        .map_err(|e| e.to_string())?;
    let room = (4 + size).max(BATCH);
    let mut buf = BytesMut::with_capacity(2 * room);
    let mut read = 0u64;
    while !stop.load(Ordering::Relaxed) {
        buf.reserve(room);
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err("the server closed the stream".to_owned()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len != size {
                return Err(format!("a frame of {len} bytes, not {size}"));
            }
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4 + len);
            read += 1;
        }
        counter.store(read, Ordering::Relaxed);
    }
    Ok(())
}

/// A client that uploads frames on one connection.
#[derive(Debug)]
pub struct RawUploader {
    stream: TcpStream,
}

impl RawUploader {
    /// Connects to the server at `address`.
    pub async fn connect(address: SocketAddr) -> io::Result<RawUploader> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(RawUploader { stream })
    }

    /// Uploads `frame` (from [`frame`]) again and again until `until`, then ends the upload;
    /// returns what the server says it received: (frames, bytes).
    pub async fn upload(&mut self, frame: &[u8], until: Instant) -> io::Result<(u64, u64)> {
        self.stream.write_all(b"U").await?;
        while Instant::now() < until {
            self.stream.write_all(frame).await?;
        }
        self.stream.write_all(&0u32.to_be_bytes()).await?;
        let frames = self.stream.read_u64().await?;
        let bytes = self.stream.read_u64().await?;
        Ok((frames, bytes))
    }
}
