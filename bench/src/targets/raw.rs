//! The limit of the path: a hand-written echo of length-prefixed frames over TCP.
//!
//! A frame is a `u32` big-endian length and that many bytes; the server writes every frame
//! back unchanged, in order. It reads what the socket has, and writes the complete frames
//! straight from its read buffer in one `write` (no per-call task, no copy, no parsing beyond
//! the length), so what is left is the kernel's loopback TCP and tokio's I/O.
//!
//! Two clients of that one server:
//!
//! - [`RawPipelined`]: one connection per client, any number of calls in flight on it. Callers
//!   hand payloads to a writer task (which writes whatever has queued up in one go: small
//!   frames copied into one buffer, a large payload straight from the caller's `Bytes` behind
//!   its length, so that the client copies nothing in user space) and wait on
//!   a oneshot; a reader task completes the oneshots in order as replies arrive. This is the
//!   shape of any multiplexed client in tokio, with nothing else in it. Like mprpc's writer,
//!   it yields once before writing a lone frame while other calls are in flight, so that the
//!   frames of a burst go out in one `write` (without that, a 1-worker runtime runs the writer
//!   right after each sender, one `write` per call).
//! - [`RawPerCall`]: a new TCP connection for every call (connect, write, read, close), as
//!   the original C++ mprpc did. The client closes with `SO_LINGER` 0 (a reset) so that the
//!   tens of thousands of connections a second leave no `TIME_WAIT` sockets behind to use up
//!   the ephemeral ports.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::{check_len, first_call, Caller, Target};
use crate::certs::Certs;

/// The largest frame either side accepts (the benchmark's largest payload is 1 MiB).
const MAX_FRAME: usize = 64 << 20;
/// How much room a read asks for at least.
const READ_CHUNK: usize = 64 * 1024;
/// A frame at least this large is written on its own instead of being copied into a batch.
const WRITE_ALONE: usize = 256 * 1024;

/// The pipelined raw target.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawPipelined;

/// The connection-per-call raw target.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawPerCall;

/// Accepts connections and echoes on each, on a task per connection.
async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, then go on.
                eprintln!("raw echo: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = echo_connection(stream).await;
        });
    }
}

/// The length of the complete frames at the start of `buf`, and how many bytes the next
/// (incomplete) frame needs in all, if its length is known.
fn complete_prefix(buf: &[u8]) -> io::Result<(usize, Option<usize>)> {
    let mut at = 0;
    while buf.len() - at >= 4 {
        let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes"),
            ));
        }
        if buf.len() - at < 4 + len {
            return Ok((at, Some(4 + len)));
        }
        at += 4 + len;
    }
    Ok((at, None))
}

/// Echoes frames on one connection until the peer closes it.
async fn echo_connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        let (done, next) = complete_prefix(&input)?;
        if done > 0 {
            stream.write_all(&input[..done]).await?;
            input.advance(done);
        }
        if let Some(need) = next {
            input.reserve(need.saturating_sub(input.len()));
        }
    }
}

/// One payload to send (the writer puts its length in front), and where its reply's length
/// goes.
struct Outgoing {
    payload: bytes::Bytes,
    reply: oneshot::Sender<usize>,
}

/// A pipelined raw client: one connection, a writer task and a reader task.
#[derive(Clone, Debug)]
pub struct PipelinedCaller {
    requests: mpsc::UnboundedSender<Outgoing>,
    /// Calls in flight on the connection.
    in_flight: Arc<AtomicUsize>,
}

type Pending = Arc<Mutex<VecDeque<oneshot::Sender<usize>>>>;

/// Writes queued frames, as many as are waiting in one `write`, recording each frame's reply
/// slot before its bytes go out.
async fn write_loop(
    mut requests: mpsc::UnboundedReceiver<Outgoing>,
    mut socket: tokio::net::tcp::OwnedWriteHalf,
    pending: Pending,
    in_flight: Arc<AtomicUsize>,
) -> io::Result<()> {
    let mut batch = Vec::with_capacity(READ_CHUNK);
    let mut slots = Vec::new();
    while let Some(first) = requests.recv().await {
        let mut next = Some(first);
        let mut frames = 1;
        let mut yielded = false;
        loop {
            while let Some(out) = next.take() {
                let prefix = (out.payload.len() as u32).to_be_bytes();
                if out.payload.len() >= WRITE_ALONE {
                    // Straight from the caller's buffer: no copy in user space at all.
                    flush(&mut socket, &pending, &mut batch, &mut slots).await?;
                    pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_back(out.reply);
                    // tokio writes a chain with `writev`.
                    let mut frame = Buf::chain(&prefix[..], &out.payload[..]);
                    socket.write_all_buf(&mut frame).await?;
                } else {
                    batch.extend_from_slice(&prefix);
                    batch.extend_from_slice(&out.payload);
                    slots.push(out.reply);
                }
                if batch.len() < READ_CHUNK {
                    next = requests.try_recv().ok();
                    frames += usize::from(next.is_some());
                }
            }
            if yielded || frames > 1 || in_flight.load(Ordering::Relaxed) <= 1 {
                break;
            }
            // Alone in the queue but not on the connection: let the others catch up.
            yielded = true;
            tokio::task::yield_now().await;
            next = requests.try_recv().ok();
            if next.is_none() {
                break;
            }
            frames += 1;
        }
        flush(&mut socket, &pending, &mut batch, &mut slots).await?;
    }
    Ok(())
}

async fn flush(
    socket: &mut tokio::net::tcp::OwnedWriteHalf,
    pending: &Pending,
    batch: &mut Vec<u8>,
    slots: &mut Vec<oneshot::Sender<usize>>,
) -> io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(slots.drain(..));
    socket.write_all(batch).await?;
    batch.clear();
    Ok(())
}

/// Reads replies and hands each one's length to the oldest waiting call.
async fn read_loop(mut socket: tokio::net::tcp::OwnedReadHalf, pending: Pending) -> io::Result<()> {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        if socket.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        loop {
            if input.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([input[0], input[1], input[2], input[3]]) as usize;
            if len > MAX_FRAME {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "huge frame"));
            }
            if input.len() < 4 + len {
                input.reserve(4 + len - input.len());
                break;
            }
            input.advance(4 + len);
            let slot = pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            match slot {
                Some(slot) => {
                    let _ = slot.send(len);
                }
                None => return Err(io::Error::new(io::ErrorKind::InvalidData, "stray reply")),
            }
        }
    }
}

/// `payload` as a frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

impl Caller for PipelinedCaller {
    async fn call<'a>(&'a self, payload: &'a bytes::Bytes) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = self.requests.send(Outgoing {
            payload: payload.clone(),
            reply,
        });
        let outcome = match sent {
            Ok(()) => answer.await.map_err(|_| "connection closed".to_owned()),
            Err(_) => Err("connection closed".to_owned()),
        };
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        check_len(outcome?, payload.len())
    }
}

impl Target for RawPipelined {
    type Caller = PipelinedCaller;

    fn serve(
        listener: TcpListener,
        _: Option<&Certs>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        serve(listener)
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<PipelinedCaller> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let pending = Pending::default();
        let (requests, queue) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_loop(queue, write, pending.clone(), in_flight.clone()));
        tokio::spawn(read_loop(read, pending));
        let caller = PipelinedCaller {
            requests,
            in_flight,
        };
        first_call(caller, "the raw echo").await
    }
}

/// A connection-per-call raw client: only the address.
#[derive(Clone, Copy, Debug)]
pub struct PerCallCaller {
    address: SocketAddr,
}

impl PerCallCaller {
    async fn round_trip(&self, payload: &[u8]) -> io::Result<usize> {
        let socket = if self.address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Close with a reset: no TIME_WAIT left behind (see the module docs).
        socket.set_zero_linger()?;
        socket.set_nodelay(true)?;
        let mut stream = socket.connect(self.address).await?;
        stream.write_all(&frame(payload)).await?;
        let mut len = [0; 4];
        stream.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "huge frame"));
        }
        let mut reply = vec![0; len];
        stream.read_exact(&mut reply).await?;
        Ok(len)
    }
}

impl Caller for PerCallCaller {
    async fn call<'a>(&'a self, payload: &'a bytes::Bytes) -> Result<(), String> {
        match self.round_trip(payload).await {
            Ok(len) => check_len(len, payload.len()),
            Err(e) => Err(format!("{:?}", e.kind())),
        }
    }
}

impl Target for RawPerCall {
    type Caller = PerCallCaller;

    fn serve(
        listener: TcpListener,
        _: Option<&Certs>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
        serve(listener)
    }

    async fn connect(address: SocketAddr, _: Option<&Certs>) -> anyhow::Result<PerCallCaller> {
        let caller = PerCallCaller { address };
        first_call(caller, "the raw echo").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_prefix_finds_whole_frames() {
        let mut buf = frame(b"abc");
        buf.extend(frame(b""));
        assert_eq!(complete_prefix(&buf).unwrap(), (11, None));
        buf.extend(&frame(b"hello")[..6]);
        assert_eq!(complete_prefix(&buf).unwrap(), (11, Some(9)));
        buf.truncate(13);
        assert_eq!(complete_prefix(&buf).unwrap(), (11, None));
        assert!(complete_prefix(&u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn both_clients_echo_through_the_server() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(serve(listener));
            let pipelined = RawPipelined::connect(address, None).await.unwrap();
            let big = bytes::Bytes::from(vec![7u8; 300_000]);
            let calls: Vec<_> = (0..50)
                .map(|i| {
                    let c = pipelined.clone();
                    let payload = if i % 10 == 0 {
                        big.clone()
                    } else {
                        bytes::Bytes::from(vec![1; i])
                    };
                    tokio::spawn(async move { c.call(&payload).await })
                })
                .collect();
            for call in calls {
                call.await.unwrap().unwrap();
            }
            let per_call = RawPerCall::connect(address, None).await.unwrap();
            per_call.call(&big).await.unwrap();
        });
    }
}
