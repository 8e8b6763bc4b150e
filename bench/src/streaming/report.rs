//! `bench streaming`'s results as markdown: the throughput table, the stall table, and the
//! issue's goals as ratios of figures from the same run (in the side-by-side run's goal
//! table, [`crate::goals::table`]).
//!
//! | goal | compares | needed |
//! | --- | --- | --- |
//! | server streaming vs gRPC | mprpc messages/s ÷ tonic's, one stream of `--message-size` replies | ≥ 2 |
//! | client streaming vs the wire | mprpc MiB/s ÷ raw's, one upload of `--chunk-size` chunks | ≥ 0.70 |
//! | a stalled reader | mprpc server RSS growth (the worst repetition) ÷ the reader's stream window | ≤ 1.25 (the window and a quarter of it) |

use std::fmt::Write;

use super::stall::StallFigure;
use super::{Part, RateFigure, Results, StreamTarget};
use crate::goals::{Check, Needed};
use crate::matrix::size;
use crate::report::{sig3, thousands};

/// The stall goal's allowance over the window, as a share of it.
pub const STALL_SLACK: f64 = 0.25;

/// The throughput table: one row per part and target.
pub fn rates(figures: &[RateFigure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| part | message | target | messages/s | spread (min–max) | MiB/s | srv CPU µs/msg | cli CPU µs/msg | srv peak MiB | others % | failed |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for f in figures {
        let dash = || "-".to_owned();
        let cpu = f.cpu_us_per_message();
        let (failed, first) = f.errors();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            match f.part {
                Part::Server => "server streaming",
                _ => "client streaming",
            },
            size(f.size),
            f.target,
            f.per_second().map_or_else(dash, thousands),
            f.spread()
                .map_or_else(dash, |(a, b)| format!("{}–{}", thousands(a), thousands(b))),
            f.mib_per_second().map_or_else(dash, sig3),
            cpu.map_or_else(dash, |c| sig3(c.0)),
            cpu.map_or_else(dash, |c| sig3(c.1)),
            f.server_peak_kib()
                .map_or_else(dash, |k| format!("{:.1}", k / 1024.0)),
            f.others_percent(),
            match first {
                None => "0".to_owned(),
                Some(e) => format!("{failed} ({e})"),
            }
        );
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.2}", kib as f64 / 1024.0)
}

/// The stall table: one row per target, the median repetition's figures (by growth) and
/// the worst growth.
pub fn stalls(figures: &[StallFigure], stall: std::time::Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | message | reader's window | RSS before MiB | peak MiB | growth MiB | worst growth MiB | at end MiB | after cancel MiB | client unread MiB | srv CPU s over {stall:?} | failed |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for f in figures {
        let (failed, first) = f.errors();
        let failed = match first {
            None => "0".to_owned(),
            Some(e) => format!("{failed} ({e})"),
        };
        let Some(r) = f.median_run() else {
            let _ = writeln!(
                out,
                "| {} | {} | {} | - | - | - | - | - | - | - | - | {failed} |",
                f.target,
                size(f.size),
                size(f.window as usize)
            );
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {failed} |",
            f.target,
            size(f.size),
            size(f.window as usize),
            mib(r.baseline_kib),
            mib(r.peak_kib),
            mib(r.growth_kib()),
            f.max_growth_kib().map_or_else(|| "-".to_owned(), mib),
            mib(r.end_kib),
            mib(r.after_kib),
            r.client_buffered
                .map_or_else(|| "-".to_owned(), |b| mib(b / 1024)),
            f.server_cpu_s()
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}")),
        );
    }
    out
}

fn rate_of(results: &Results, part: Part, target: StreamTarget) -> Option<&RateFigure> {
    results
        .rates
        .iter()
        .find(|f| f.part == part && f.target == target)
}

/// The goals the run measured both sides of.
pub fn checks(results: &Results) -> Vec<Check> {
    let mut checks = Vec::new();
    let server = (
        rate_of(results, Part::Server, StreamTarget::Mprpc),
        rate_of(results, Part::Server, StreamTarget::Tonic),
    );
    if let (Some(mine), Some(theirs)) = server {
        if let (Some(a), Some(b)) = (mine.per_second(), theirs.per_second()) {
            let (pass, needed, margin) = Needed::AtLeast(2.0).judge(a / b);
            checks.push(Check {
                goal: "server streaming: messages/s ≥ 2× tonic",
                point: format!("{} replies, one stream", size(mine.size)),
                mprpc: format!("{} msg/s", thousands(a)),
                reference: format!("tonic {} msg/s", thousands(b)),
                ratio: a / b,
                needed,
                pass,
                margin,
            });
        }
    }
    let client = (
        rate_of(results, Part::Client, StreamTarget::Mprpc),
        rate_of(results, Part::Client, StreamTarget::Raw),
    );
    if let (Some(mine), Some(theirs)) = client {
        if let (Some(a), Some(b)) = (mine.mib_per_second(), theirs.mib_per_second()) {
            let (pass, needed, margin) = Needed::AtLeast(0.7).judge(a / b);
            checks.push(Check {
                goal: "client streaming: MiB/s ≥ 0.7× raw TCP",
                point: format!("{} chunks, one upload", size(mine.size)),
                mprpc: format!("{} MiB/s", sig3(a)),
                reference: format!("raw {} MiB/s", sig3(b)),
                ratio: a / b,
                needed,
                pass,
                margin,
            });
        }
    }
    let stalled = results
        .stalls
        .iter()
        .find(|f| f.target == StreamTarget::Mprpc);
    if let Some(f) = stalled {
        if let Some(worst) = f.max_growth_kib() {
            let ratio = worst as f64 * 1024.0 / f.window as f64;
            let (pass, needed, margin) = Needed::AtMost(1.0 + STALL_SLACK).judge(ratio);
            checks.push(Check {
                goal: "stalled reader: server RSS growth ≤ window + ¼ window",
                point: format!("{} replies, reader stalled", size(f.size)),
                mprpc: format!("{} MiB (worst rep)", mib(worst)),
                reference: format!("stream_window {}", size(f.window as usize)),
                ratio,
                needed,
                pass,
                margin,
            });
        }
    }
    checks
}
