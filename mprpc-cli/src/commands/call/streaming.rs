//! `mprpc call` on a streaming method. A server-streaming call sends the one request of
//! `--data`; a client-streaming or bidirectional one sends JSON lines ([`super::lines`]).
//! Streamed replies are printed as they arrive, one compact JSON object a line, flushed
//! each; a client-streaming call's one reply is printed as a unary call's.

use std::io::Write;

use bytes::Bytes;
use mprpc::stream::Streaming;
use prost_reflect::MessageDescriptor;
use tokio::sync::oneshot;

use super::lines::{self, LineError};
use super::Args;
use crate::commands::request::Resolved;
use crate::dynamic::{self, Layout};
use crate::target::{self, Target};

/// Runs a streaming call of the resolved method.
pub(super) async fn run(target: &Target, args: &Args, resolved: Resolved) -> anyhow::Result<()> {
    let kind = resolved.kind();
    let data = args.request.data_for_call(kind);
    let timeout = target.stream_timeout();
    let (request, requests, failed) = if kind.client_streams() {
        let lines = lines::open(data, resolved.method.input()).await?;
        let request = args.request.request(Bytes::new(), timeout);
        (request, Some(lines.stream), Some(lines.failed))
    } else {
        let json = target::read_data(data)?;
        let body = dynamic::encode_json(&resolved.method.input(), &json)?;
        (args.request.request(body, timeout), None, None)
    };
    let replies = resolved
        .calls
        .streaming_raw(
            args.request.service(),
            args.request.method(),
            kind,
            request,
            requests,
        )
        .await?;
    let mut call = Call {
        replies,
        failed,
        output: resolved.method.output(),
        emit_defaults: args.emit_defaults,
    };
    if kind.server_streams() {
        call.print_each().await
    } else {
        call.print_one().await
    }
}

/// An open streaming call, read to its end.
struct Call {
    replies: Streaming<Bytes>,
    /// Told of a bad request line, until the lines have ended well.
    failed: Option<oneshot::Receiver<LineError>>,
    output: MessageDescriptor,
    emit_defaults: bool,
}

/// What came first while waiting for a reply.
enum Event {
    Reply(Result<Option<Bytes>, mprpc::Status>),
    BadLine(LineError),
    LinesEnded,
}

impl Call {
    /// The next reply (`None` at the end of the stream), or the fault of a request line
    /// (which ends the call: it is cancelled when `self` is dropped).
    async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            let event = match &mut self.failed {
                None => Event::Reply(self.replies.message().await),
                Some(failed) => tokio::select! {
                    fault = failed => match fault {
                        Ok(fault) => Event::BadLine(fault),
                        Err(_) => Event::LinesEnded,
                    },
                    reply = self.replies.message() => Event::Reply(reply),
                },
            };
            match event {
                Event::Reply(reply) => return Ok(reply?),
                Event::BadLine(fault) => return Err(fault.into()),
                Event::LinesEnded => self.failed = None,
            }
        }
    }

    /// Prints each reply as one line of JSON, as it arrives. A reader of stdout that goes
    /// away (`| head`) ends the call quietly.
    async fn print_each(&mut self) -> anyhow::Result<()> {
        while let Some(body) = self.next().await? {
            let line = dynamic::render(&self.output, body, self.emit_defaults, Layout::Line)?;
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
            }
        }
        Ok(())
    }

    /// Prints the one reply of a client-streaming call, as a unary reply.
    async fn print_one(&mut self) -> anyhow::Result<()> {
        // An empty reply is encoded as no bytes at all, which may come as no message.
        let body = self.next().await?.unwrap_or_default();
        let json = dynamic::render(&self.output, body, self.emit_defaults, Layout::Pretty)?;
        println!("{json}");
        Ok(())
    }
}
