//! A connection's open streams, on either side: what the reader does with `Message`,
//! `HalfClose` and `WindowUpdate` frames, and the connection-level flow-control windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::batch::Batch;
use super::inbound::{Chunk, End, Inbound};
use super::window::{charged, Closed, Overflow, RecvWindow, SendWindow};
use super::window::{INITIAL_CONNECTION_WINDOW, INITIAL_STREAM_WINDOW};
use crate::hash::IdMap;
use crate::protocol::batch::{check_batch, BadBatch};
use crate::protocol::{OutFrame, Outbox, StreamHeader, WindowUpdateHeader};
use crate::sync::lock;
use crate::{Body, Status};

/// Flow-control windows this side keeps its peer at, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Per stream: messages received and not yet consumed.
    pub stream: u64,
    /// Per connection: messages of all its streams received and not yet consumed.
    pub connection: u64,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            stream: 2 * 1024 * 1024,
            connection: 16 * 1024 * 1024,
        }
    }
}

/// What every stream of a connection shares: its write queue and its connection-level
/// windows.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) outbox: Outbox,
    /// Our view of the peer's credit on the whole connection.
    pub(crate) recv: RecvWindow,
    /// Our credit on the whole connection.
    pub(crate) send: SendWindow,
}

impl Link {
    /// Sends a `WindowUpdate`; one that does not fit in the queue now is sent by a task, as
    /// a lost grant would stall the stream.
    pub(crate) fn grant(&self, request_id: u64, increment: u64) {
        let frame = OutFrame::WindowUpdate(WindowUpdateHeader {
            request_id,
            increment,
        });
        if self.outbox.try_send(frame).is_err() {
            let outbox = self.outbox.clone();
            let frame = OutFrame::WindowUpdate(WindowUpdateHeader {
                request_id,
                increment,
            });
            // A stream dropped outside any runtime cannot wait: its connection is then
            // closing (its queue full of what it cannot write), or its credit is owed by a
            // stream nobody reads any more.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { outbox.send(frame).await });
            }
        }
    }

    /// `size` bytes of some stream's messages were consumed or discarded.
    pub(crate) fn returned(&self, size: usize) {
        if let Some(grant) = self.recv.consumed(size) {
            self.grant(0, grant);
        }
    }
}

/// One open stream's parts in the table.
#[derive(Debug, Clone)]
struct Entry {
    inbound: Option<Arc<Inbound>>,
    send: Option<Arc<SendWindow>>,
}

/// Why a frame of a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The peer sent past the connection's window: a protocol error, the connection closes.
    Connection(Overflow),
    /// The peer sent past one stream's window: that stream ends.
    Stream(u64, Overflow),
    /// The peer sent a `MessageBatch` frame that is not a run of messages: that stream ends.
    Malformed(u64, BadBatch),
}

/// A connection's open streams.
#[derive(Debug)]
pub(crate) struct StreamTable {
    link: Arc<Link>,
    windows: Windows,
    entries: Mutex<IdMap<Entry>>,
    /// The connection window was raised from the initial one (on the first stream).
    raised: AtomicBool,
}

impl StreamTable {
    pub(crate) fn new(outbox: Outbox, windows: Windows) -> StreamTable {
        StreamTable {
            link: Arc::new(Link {
                outbox,
                recv: RecvWindow::new(INITIAL_CONNECTION_WINDOW, windows.connection),
                send: SendWindow::new(INITIAL_CONNECTION_WINDOW),
            }),
            windows,
            entries: Mutex::default(),
            raised: AtomicBool::new(false),
        }
    }

    /// The windows this side keeps its peer at.
    pub(crate) fn windows(&self) -> Windows {
        self.windows
    }

    /// Opens stream `id`: with a queue for messages from the peer if `receives`
    /// (`announced`: the window the peer was told, else the initial one, raised at once), and
    /// with credit to send if `send_credit` is given. Returns the queue and the sender.
    pub(crate) fn open(
        &self,
        id: u64,
        receives: Option<Announced>,
        send_credit: Option<u64>,
    ) -> (Option<Arc<Inbound>>, Option<Outbound>) {
        if !self.raised.swap(true, Ordering::Relaxed) {
            if let Some(grant) = self.link.recv.initial_grant() {
                self.link.grant(0, grant);
            }
        }
        let inbound = receives.map(|announced| {
            let initial = match announced {
                Announced::Yes => self.windows.stream,
                Announced::No => INITIAL_STREAM_WINDOW,
            };
            let window = RecvWindow::new(initial, self.windows.stream);
            Arc::new(Inbound::new(id, self.link.clone(), window))
        });
        let send = send_credit.map(|credit| Arc::new(SendWindow::new(credit)));
        let entry = Entry {
            inbound: inbound.clone(),
            send: send.clone(),
        };
        lock(&self.entries).insert(id, entry);
        if let Some(inbound) = &inbound {
            inbound.initial_grant();
        }
        let outbound = send.map(|window| Outbound {
            id,
            link: self.link.clone(),
            window,
        });
        (inbound, outbound)
    }

    /// A `Message` frame (`batched`: a `MessageBatch` frame, checked here) arrived for
    /// stream `id`. One for a stream that is not open (it ended while the message was on its
    /// way) is discarded, its credit returned.
    pub(crate) fn on_message(&self, id: u64, body: Bytes, batched: bool) -> Result<(), Refused> {
        let size = charged(body.len());
        self.link.recv.received(size).map_err(Refused::Connection)?;
        if batched {
            if let Err(e) = check_batch(&body) {
                self.link.returned(size);
                return Err(Refused::Malformed(id, e));
            }
        }
        let inbound = lock(&self.entries).get(&id).and_then(|e| e.inbound.clone());
        match inbound {
            Some(inbound) => inbound
                .push(Chunk { body, batched })
                .map_err(|o| Refused::Stream(id, o)),
            None => {
                self.link.returned(size);
                Ok(())
            }
        }
    }

    /// A `HalfClose` frame arrived for stream `id`: the peer sends no more messages.
    pub(crate) fn on_half_close(&self, id: u64) {
        let inbound = lock(&self.entries).get(&id).and_then(|e| e.inbound.clone());
        if let Some(inbound) = inbound {
            inbound.finish(End::Finished {
                trailers: Default::default(),
                body: None,
            });
        }
    }

    /// A `WindowUpdate` frame arrived.
    pub(crate) fn on_window_update(&self, id: u64, increment: u64) {
        if id == 0 {
            self.link.send.grant(increment);
            return;
        }
        let send = lock(&self.entries).get(&id).and_then(|e| e.send.clone());
        if let Some(send) = send {
            send.grant(increment);
        }
    }

    /// Whether stream `id` is open.
    pub(crate) fn contains(&self, id: u64) -> bool {
        lock(&self.entries).contains_key(&id)
    }

    /// Ends stream `id`: its queue gets `end` (if it still has a consumer) and its sender
    /// stops. Returns whether it was open.
    pub(crate) fn finish(&self, id: u64, end: End) -> bool {
        let entry = lock(&self.entries).remove(&id);
        let Some(entry) = entry else { return false };
        if let Some(send) = &entry.send {
            send.close();
        }
        if let Some(inbound) = &entry.inbound {
            inbound.finish(end);
        }
        true
    }

    /// Removes stream `id` whose call is over on this side: later messages for it are
    /// discarded.
    pub(crate) fn remove(&self, id: u64) {
        let entry = lock(&self.entries).remove(&id);
        if let Some(entry) = entry {
            if let Some(send) = &entry.send {
                send.close();
            }
            if let Some(inbound) = &entry.inbound {
                inbound.detach();
            }
        }
    }

    /// Ends every stream with `status`, and the connection's sending: the connection is
    /// gone.
    pub(crate) fn fail_all(&self, status: &Status) {
        let entries: Vec<Entry> = lock(&self.entries).drain().map(|(_, e)| e).collect();
        self.link.send.close();
        for entry in entries {
            if let Some(send) = &entry.send {
                send.close();
            }
            if let Some(inbound) = &entry.inbound {
                inbound.finish(End::Failed(status.clone()));
            }
        }
    }

    /// The ids of the open streams.
    pub(crate) fn ids(&self) -> Vec<u64> {
        lock(&self.entries).keys().copied().collect()
    }
}

/// Whether the peer was told this side's stream window when the stream opened (a consumer
/// announces it in its request; a provider grants it once the call is admitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announced {
    Yes,
    No,
}

/// The sending end of one stream: it waits for credit, then queues each message.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    id: u64,
    link: Arc<Link>,
    window: Arc<SendWindow>,
}

impl Outbound {
    /// Sends one message once the stream and the connection have credit for it.
    pub(crate) async fn send(&self, body: Body) -> Result<(), Closed> {
        let size = charged(body.len());
        self.window.take(size).await?;
        self.link.send.take(size).await?;
        let header = StreamHeader {
            request_id: self.id,
        };
        self.link
            .outbox
            .send(OutFrame::Message(header, body))
            .await
            .map_err(|_| Closed)
    }

    /// Sends the messages of `batch` as flow control allows, waiting for credit as needed;
    /// returns how many. A `MessageBatch` frame goes whole once both windows have credit
    /// above zero, its body taken from both. `Message` frames go each with credit above zero
    /// before it in both windows.
    pub(crate) async fn send_batch(&self, batch: &mut Batch) -> Result<usize, Closed> {
        if batch.is_empty() {
            return Ok(0);
        }
        if batch.batched() {
            let (frame, credit, count) = batch.take_frame();
            let credit = charged(credit);
            self.window.take(credit).await?;
            self.link.send.take(credit).await?;
            self.link
                .outbox
                .send(OutFrame::Encoded(frame))
                .await
                .map_err(|_| Closed)?;
            return Ok(count);
        }
        let mut sent = 0;
        while !batch.is_empty() {
            let sizes: Vec<usize> = batch.message_sizes().into_iter().map(charged).collect();
            let stream = self.window.take_leading(&sizes).await?;
            let connection = self.link.send.take_leading(&sizes[..stream]).await?;
            if connection < stream {
                // Taken from the stream's credit but not going now: given back.
                let back: usize = sizes[connection..stream].iter().sum();
                self.window.grant(back as u64);
            }
            let frames = batch.split(connection);
            self.link
                .outbox
                .send(OutFrame::Encoded(frames))
                .await
                .map_err(|_| Closed)?;
            sent += connection;
        }
        Ok(sent)
    }

    /// The stream's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Tells the peer no more messages follow.
    pub(crate) async fn half_close(&self) -> Result<(), Closed> {
        let header = StreamHeader {
            request_id: self.id,
        };
        self.link
            .outbox
            .send(OutFrame::HalfClose(header))
            .await
            .map_err(|_| Closed)
    }
}
