//! The requests of a client-streaming or bidirectional call, as JSON lines: one request per
//! non-empty line, from stdin (`-`), a file (`@FILE`) or the text of `--data` itself. Each
//! line is read, converted and sent when the call's sender asks for the next message (so
//! stdin is streamed, not read to its end first, and a reader that is ahead of the
//! provider's flow-control window waits); the end of the input ends the requests (a
//! `HalfClose`).
//!
//! A line that cannot be read or is not a valid request does not end the requests, which
//! would let the provider answer a call cut short: the stream of requests stops there
//! without ending, and the fault goes to [`LineRequests::failed`] so the caller can cancel
//! the call and report it.

use std::fmt;

use anyhow::Context as _;
use mprpc::stream::EncodedStream;
use prost_reflect::MessageDescriptor;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader, Lines};
use tokio::sync::oneshot;

use crate::dynamic;

/// A line that could not become a request.
#[derive(Debug)]
pub(crate) struct LineError {
    /// Where the lines come from: `stdin`, the file's path, or `--data`.
    origin: String,
    /// The line's number, from 1 (empty lines count).
    line: u64,
    /// Why: the input could not be read, or the line is not a valid request.
    cause: anyhow::Error,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.origin, self.line)
    }
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause.as_ref())
    }
}

/// The requests, and how a bad line is told.
pub(crate) struct LineRequests {
    /// The encoded requests, for `Channel::streaming_raw`.
    pub stream: EncodedStream,
    /// Resolves with the first bad line; closed without a value when the input ended well
    /// (or the stream was dropped).
    pub failed: oneshot::Receiver<LineError>,
}

/// Opens the lines `data` names (`-`, `@FILE`, or the JSON lines themselves), to be
/// converted to `desc` messages.
pub(crate) async fn open(data: &str, desc: MessageDescriptor) -> anyhow::Result<LineRequests> {
    type Input = Box<dyn AsyncBufRead + Send + Unpin>;
    let (input, origin): (Input, String) = if data == crate::commands::request::STDIN {
        (Box::new(BufReader::new(tokio::io::stdin())), "stdin".into())
    } else if let Some(path) = data.strip_prefix('@') {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        (Box::new(BufReader::new(file)), path.to_owned())
    } else {
        let text = std::io::Cursor::new(data.as_bytes().to_vec());
        (Box::new(text), "--data".into())
    };
    let (tell, failed) = oneshot::channel();
    let state = State {
        lines: input.lines(),
        number: 0,
        desc,
        origin,
        tell: Some(tell),
    };
    let stream = futures_util::stream::unfold(state, next);
    Ok(LineRequests {
        stream: Box::pin(stream),
        failed,
    })
}

/// What the stream of requests carries from one message to the next.
struct State {
    lines: Lines<Box<dyn AsyncBufRead + Send + Unpin>>,
    /// The number of the last line read.
    number: u64,
    desc: MessageDescriptor,
    origin: String,
    /// Where a bad line is told.
    tell: Option<oneshot::Sender<LineError>>,
}

/// The next request: the next non-empty line, converted. At the end of the input, the end
/// of the stream; at a bad line, a stream that never goes on (see the module's doc).
async fn next(mut state: State) -> Option<(mprpc::Body, State)> {
    loop {
        state.number += 1;
        let line = match state.lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(e) => {
                let cause = anyhow::Error::new(e).context("cannot read it");
                return state.fail(cause).await;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match dynamic::encode_json(&state.desc, &line) {
            Ok(body) => return Some((body.into(), state)),
            Err(cause) => return state.fail(cause).await,
        }
    }
}

impl State {
    /// Tells the fault, then holds the stream open until the call is dropped.
    async fn fail(mut self, cause: anyhow::Error) -> Option<(mprpc::Body, State)> {
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(LineError {
                origin: self.origin.clone(),
                line: self.number,
                cause,
            });
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use prost_reflect::DescriptorPool;

    /// `google.protobuf.SourceContext`, a message every pool has: `string file_name = 1`.
    fn desc() -> MessageDescriptor {
        DescriptorPool::global()
            .get_message_by_name("google.protobuf.SourceContext")
            .expect("the global pool has the well-known types")
    }

    #[tokio::test]
    async fn each_non_empty_line_is_a_request_and_the_end_ends_them() {
        let mut lines = open("{}\n\n  \n{\"fileName\": \"a\"}\n", desc())
            .await
            .unwrap();
        let first = lines.stream.next().await.unwrap();
        assert!(first.is_empty());
        let second = lines.stream.next().await.unwrap();
        assert_eq!(second, b"\x0a\x01a"[..]);
        assert!(lines.stream.next().await.is_none());
        assert!(lines.failed.await.is_err(), "no bad line");
    }

    #[tokio::test]
    async fn a_bad_line_is_told_with_its_number_and_the_stream_does_not_end() {
        let mut lines = open("{}\n\n{\"nope\": 1}\n{}\n", desc()).await.unwrap();
        assert!(lines.stream.next().await.is_some());
        let stalled =
            tokio::time::timeout(std::time::Duration::from_millis(50), lines.stream.next()).await;
        assert!(stalled.is_err(), "the stream must not end at a bad line");
        let fault = lines.failed.await.expect("the bad line is told");
        let text = mprpc::report::one_line(&fault);
        assert!(
            text.starts_with(
                "--data line 3: the request is not a valid google.protobuf.SourceContext"
            ),
            "{text}"
        );
    }
}
