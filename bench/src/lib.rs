//! Benchmarks of mprpc side by side with gRPC (tonic) and a raw TCP echo, and scale figures.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`targets`] | the systems under test: mprpc, tonic (each also over TLS), raw pipelined and raw connection-per-call echo ([`targets::Target`]) |
//! | [`certs`] | the TLS targets' certificates, made once per run in a private temporary directory |
//! | [`process`] | a server in a process of its own (`bench serve`), pinned with `taskset` |
//! | [`runner`] | the closed-loop load that measures one setting |
//! | [`matrix`] | which points to measure, and measuring each in a fresh server process |
//! | [`report`] | the markdown table of the results |
//! | [`goals`] | the goals as ratios, PASS or MISS |
//! | [`handshakes`] | new connections per second, with and without TLS (`bench handshakes`) |
//! | [`scale`] | idle connections, providers behind the registry, ZooKeeper registration |
//! | [`streaming`] | server and client streams side by side with tonic and raw TCP, and a stalled reader (`bench streaming`) |
//! | [`machine`] | what machine the figures came from; CPU time and memory of a process |
//!
//! The binary `bench` ties them together; run it with
//! `cargo run --release -p mprpc-bench -- --help`, and see `docs/BENCHMARKS.md`.

pub mod certs;
pub mod goals;
pub mod handshakes;
pub mod machine;
pub mod matrix;
pub mod process;
pub mod report;
pub mod runner;
pub mod scale;
pub mod streaming;
pub mod targets;

use std::time::Duration;

/// The benchmark service as mprpc generates it (`proto/bench.proto`).
#[allow(missing_docs)]
pub mod proto {
    mprpc::include_proto!("mprpc.bench");
}

/// The benchmark service as tonic generates it (same `proto/bench.proto`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod grpc {
    include!(concat!(env!("OUT_DIR"), "/tonic/mprpc.bench.rs"));
}

/// `250ms`, `1s`, `1.5s`, `2m` (or a bare number of seconds) as a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 500ms or 3s"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "" | "s" => number,
        "m" => number * 60.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use us, ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// `64`, `4096`, `4k`, `4KiB`, `1MiB`, `1m` as bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 64, 4KiB or 1MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` in `{text}`")),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
