//! What a bench run of a streaming method counted ([`Counts`], shared by its streams, and
//! each driver's failures) and the summary printed from it ([`StreamSummary`]): `key: value`
//! lines, or one JSON object.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use mprpc::stream::MethodKind;
use mprpc::Code;
use serde::Serialize;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Counters of the measured part of a run, shared by every stream (a client stream's
/// requests are counted where the channel's sender takes them).
#[derive(Default)]
pub(super) struct Counts {
    /// Streams opened (warm-up included).
    pub streams: AtomicU64,
    /// Streams the provider ended well (warm-up included).
    pub ended: AtomicU64,
    /// Request messages sent, and their bytes.
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    /// Reply messages received, and their bytes.
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
}

impl Counts {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Streams that failed, by status code (one map per driver, merged at the end).
pub(super) type Failures = BTreeMap<Code, u64>;

/// The result of a run, printed as `key: value` lines or as JSON.
#[derive(Debug, Serialize)]
pub(super) struct StreamSummary {
    /// `SERVICE/METHOD`.
    method: String,
    /// `server-streaming`, `client-streaming` or `bidirectional-streaming`.
    mode: &'static str,
    /// Streams open at once.
    concurrency: u32,
    /// Seconds measured: `--duration`.
    duration_s: f64,
    /// Streams opened, warm-up included.
    streams: u64,
    /// Streams the provider ended well, warm-up included.
    streams_ended: u64,
    /// Which messages `messages` counts: `received` (replies of a server-streaming or
    /// bidirectional method) or `sent` (requests of a client-streaming one).
    counted: &'static str,
    /// Messages counted.
    messages: u64,
    /// `messages / duration_s`.
    messages_per_s: f64,
    /// Bytes of the counted messages' bodies.
    bytes: u64,
    /// `bytes / duration_s`, in MiB (2^20 bytes).
    mib_per_s: f64,
    /// Requests sent, for a bidirectional method (whose `messages` are the replies).
    requests_sent: Option<u64>,
    /// Streams that failed.
    errors: u64,
    /// Streams that failed, by status code name.
    errors_by_code: BTreeMap<String, u64>,
}

impl StreamSummary {
    pub(super) fn new(
        method: String,
        kind: MethodKind,
        concurrency: u32,
        duration_s: f64,
        counts: &Counts,
        failures: &Failures,
    ) -> StreamSummary {
        let per_s = |n: f64| {
            if duration_s > 0.0 {
                n / duration_s
            } else {
                0.0
            }
        };
        let sent = Counts::get(&counts.sent);
        let (counted, messages, bytes) = if kind.server_streams() {
            let received = Counts::get(&counts.received);
            ("received", received, Counts::get(&counts.received_bytes))
        } else {
            ("sent", sent, Counts::get(&counts.sent_bytes))
        };
        StreamSummary {
            method,
            mode: kind.as_str(),
            concurrency,
            duration_s,
            streams: Counts::get(&counts.streams),
            streams_ended: Counts::get(&counts.ended),
            counted,
            messages,
            messages_per_s: per_s(messages as f64),
            bytes,
            mib_per_s: per_s(bytes as f64 / MIB),
            requests_sent: (kind == MethodKind::Bidirectional).then_some(sent),
            errors: failures.values().sum(),
            errors_by_code: failures
                .iter()
                .map(|(code, n)| (code.as_str().to_owned(), *n))
                .collect(),
        }
    }

    /// One `key: value` per line.
    pub(super) fn text(&self) -> String {
        let mut out = format!("method: {}\n", self.method);
        out.push_str(&format!(
            "mode: {}, concurrency {}\n",
            self.mode, self.concurrency
        ));
        out.push_str(&format!("duration: {:.3} s\n", self.duration_s));
        out.push_str(&format!("streams: {}\n", self.streams));
        out.push_str(&format!("streams ended: {}\n", self.streams_ended));
        let what = if self.counted == "sent" {
            "requests sent"
        } else {
            "replies received"
        };
        out.push_str(&format!("counted: {what}\n"));
        out.push_str(&format!("messages: {}\n", self.messages));
        out.push_str(&format!("messages/s: {:.1}\n", self.messages_per_s));
        out.push_str(&format!("bytes: {}\n", self.bytes));
        out.push_str(&format!("MiB/s: {:.3}\n", self.mib_per_s));
        if let Some(sent) = self.requests_sent {
            out.push_str(&format!("requests sent: {sent}\n"));
        }
        out.push_str(&format!("errors: {}\n", self.errors));
        for (code, n) in &self.errors_by_code {
            out.push_str(&format!("error {code}: {n}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_stream_counts_replies_and_a_client_stream_requests() {
        let counts = Counts::default();
        Counts::add(&counts.streams, 2);
        Counts::add(&counts.sent, 10);
        Counts::add(&counts.sent_bytes, 1024 * 1024);
        Counts::add(&counts.received, 40);
        Counts::add(&counts.received_bytes, 4 * 1024 * 1024);
        let failures = Failures::from([(Code::Unavailable, 3)]);
        let method = || "s.S/M".to_owned();
        let server = StreamSummary::new(
            method(),
            MethodKind::ServerStreaming,
            2,
            2.0,
            &counts,
            &failures,
        );
        let text = server.text();
        for line in [
            "messages: 40\n",
            "messages/s: 20.0\n",
            "MiB/s: 2.000\n",
            "errors: 3\n",
            "error Unavailable: 3\n",
            "counted: replies received\n",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("requests sent: "), "{text}");
        let client = StreamSummary::new(
            method(),
            MethodKind::ClientStreaming,
            2,
            2.0,
            &counts,
            &failures,
        );
        assert!(
            client
                .text()
                .contains("messages/s: 5.0\nbytes: 1048576\nMiB/s: 0.500\n"),
            "{}",
            client.text()
        );
        let bidi = StreamSummary::new(
            method(),
            MethodKind::Bidirectional,
            2,
            2.0,
            &counts,
            &failures,
        );
        assert!(
            bidi.text().contains("requests sent: 10\n"),
            "{}",
            bidi.text()
        );
        let json = serde_json::to_value(&bidi).unwrap();
        assert_eq!(json["messages_per_s"], 20.0);
        assert_eq!(json["requests_sent"], 10);
        assert_eq!(json["errors_by_code"]["Unavailable"], 3);
    }
}
