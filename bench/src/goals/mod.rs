//! The goals, as ratios of figures measured in the same run, with PASS or MISS.
//!
//! | goal | compares | needed |
//! | --- | --- | --- |
//! | throughput vs gRPC | mprpc calls/s ÷ tonic's, 64 B and 4 KiB, 128 and 1,024 in flight, 1 and 64 connections | ≥ 5 (issue 14) |
//! | latency vs the wire | mprpc p50 ÷ raw-pipelined p50, 1 in flight (a round trip on an open connection), every payload | ≤ 1.15 |
//! | tail vs gRPC | mprpc p99 ÷ tonic's, 16 and 128 in flight, 1 connection | ≤ 1 |
//! | tail vs the wire | the median of mprpc's repetitions' p99s ÷ the same of raw-pipelined's, 64 B and 4 KiB, 1,024 in flight, 1 connection | ≤ 2 (issue 14) |
//! | tail vs brpc | the same median p99 of mprpc ÷ 20 ms (brpc's figure), the same points | ≤ 1 (issue 14) |
//! | small calls vs the wire | mprpc calls/s ÷ raw-pipelined's, 64 B (≥ 0.4) and 4 KiB (≥ 0.7), 128 in flight, 1 connection | ≥ 0.4, ≥ 0.7 (issue 14) |
//! | CPU per small call | mprpc server CPU µs per call ÷ 0.6 µs, 64 B, 128 in flight, 1 connection | ≤ 1 (issue 14) |
//! | bulk vs the wire | mprpc calls/s ÷ raw-pipelined's, 1 MiB: 16 and 128 in flight (1 and 64 connections); 1 in flight | ≥ 0.70; ≥ 0.95 (issue 14) |
//! | memory vs gRPC | mprpc server peak RSS ÷ tonic's, 128 in flight, 1 connection | ≤ 1 |
//! | cost of layers | mprpc-layers calls/s ÷ mprpc's, 64 B, 128 in flight, 1 connection | ≥ 0.90 |
//! | TLS vs gRPC over TLS | mprpc-tls calls/s ÷ tonic-tls's, 64 B and 4 KiB, 128 in flight, 1 connection | ≥ 5 (issue 14: every tonic comparison) |
//! | cost of TLS | mprpc-tls calls/s ÷ mprpc's, 4 KiB, 128 in flight, 1 connection | ≥ 0.70 |
//! | bulk over TLS | mprpc-tls calls/s ÷ mprpc's, 1 MiB, 1 in flight, 1 connection | ≥ 0.60 |
//! | gRPC front end | tonic-on-mprpc calls/s ÷ tonic's (the same tonic client), 64 B and 4 KiB, 128 in flight, 1 connection | ≥ 1 |
//! | gRPC front end, tail | tonic-on-mprpc p99 ÷ tonic's, the same points | ≤ 1 |
//! | cost of detection | mprpc-detect calls/s ÷ mprpc's, 64 B, 128 in flight, 1 connection | ≥ 0.95 |
//!
//! A figure is divided either by the same figure of another target at the same setting in
//! the same run, or by a fixed bound in its unit ([`Reference`]); latencies are the median
//! repetition's (by calls/s), except the 1,024-in-flight tails, whose figure is the median of
//! every repetition's p99 on both sides (the raw echo's own tail varies 5-27 ms from run to
//! run). Issue 14's "calls/s not lower" at 1,024 in flight compares with an earlier build, not
//! with a figure of the same run, so it is not a line here.
//!
//! A goal is checked at every point of its kind that the run measured for both sides.

mod figure;
mod table;

use crate::matrix::{size, Point, PointResult};
use crate::report::thousands;
use crate::targets::TargetKind;

pub use self::figure::Needed;
use self::figure::{Figure, Reference};
pub use self::table::{table, Check};

struct Goal {
    name: &'static str,
    /// The target measured against the reference.
    subject: TargetKind,
    figure: Figure,
    /// What the subject's figure is divided by.
    reference: Reference,
    needed: Needed,
    /// Whether the goal is checked at a point (of the subject; a reference target is looked
    /// up at the same setting).
    applies: fn(&Point) -> bool,
}

/// brpc's p99 at 1,024 calls in flight, the bound issue 14 sets for mprpc's, µs.
const BRPC_P99_US: f64 = 20_000.0;

/// The server CPU per 64-byte call that 0.4× the raw echo's calls/s needs, µs (issue 14).
const CPU_PER_CALL_US: f64 = 0.6;

/// Whether a point is `payload` × `concurrency` on one connection.
fn one_connection(p: &Point, payload: usize, concurrency: usize) -> bool {
    p.payload == payload && p.concurrency == concurrency && p.connections == 1
}

const GOALS: [Goal; 18] = [
    Goal {
        name: "calls/s ≥ 5× tonic",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Tonic),
        needed: Needed::AtLeast(5.0),
        // Every comparison: one connection and 64.
        applies: |p| matches!(p.payload, 64 | 4096) && matches!(p.concurrency, 128 | 1024),
    },
    Goal {
        name: "p50 ≤ 1.15× raw round trip",
        subject: TargetKind::Mprpc,
        figure: Figure::P50,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtMost(1.15),
        applies: |p| p.concurrency == 1 && p.connections == 1,
    },
    Goal {
        name: "p99 ≤ tonic's",
        subject: TargetKind::Mprpc,
        figure: Figure::P99,
        reference: Reference::Target(TargetKind::Tonic),
        needed: Needed::AtMost(1.0),
        applies: |p| matches!(p.concurrency, 16 | 128) && p.connections == 1,
    },
    Goal {
        name: "p99 (median of the reps') ≤ 2× raw's",
        subject: TargetKind::Mprpc,
        figure: Figure::P99OverReps,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtMost(2.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 1024 && p.connections == 1,
    },
    Goal {
        name: "p99 (median of the reps') under 20 ms",
        subject: TargetKind::Mprpc,
        figure: Figure::P99OverReps,
        reference: Reference::Fixed(BRPC_P99_US, "brpc's"),
        needed: Needed::AtMost(1.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 1024 && p.connections == 1,
    },
    Goal {
        name: "64 B calls/s ≥ 0.4× raw",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtLeast(0.4),
        applies: |p| one_connection(p, 64, 128),
    },
    Goal {
        name: "64 B server CPU per call ≤ 0.6 µs",
        subject: TargetKind::Mprpc,
        figure: Figure::ServerCpuPerCall,
        reference: Reference::Fixed(CPU_PER_CALL_US, "bound"),
        needed: Needed::AtMost(1.0),
        applies: |p| one_connection(p, 64, 128),
    },
    Goal {
        name: "4 KiB calls/s ≥ 0.7× raw",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtLeast(0.7),
        applies: |p| one_connection(p, 4096, 128),
    },
    Goal {
        name: "1 MiB calls/s ≥ 0.7× raw",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtLeast(0.7),
        // One connection and 64.
        applies: |p| p.payload == 1 << 20 && matches!(p.concurrency, 16 | 128),
    },
    Goal {
        name: "1 MiB × 1 calls/s ≥ 0.95× raw",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::RawPipelined),
        needed: Needed::AtLeast(0.95),
        applies: |p| one_connection(p, 1 << 20, 1),
    },
    Goal {
        name: "server peak RSS ≤ tonic's",
        subject: TargetKind::Mprpc,
        figure: Figure::PeakMemory,
        reference: Reference::Target(TargetKind::Tonic),
        needed: Needed::AtMost(1.0),
        applies: |p| p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "3 layers a side: calls/s ≥ 0.90× plain",
        subject: TargetKind::MprpcLayers,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Mprpc),
        needed: Needed::AtLeast(0.9),
        applies: |p| one_connection(p, 64, 128),
    },
    Goal {
        name: "TLS: calls/s ≥ 5× tonic over TLS",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::TonicTls),
        needed: Needed::AtLeast(5.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "TLS: calls/s ≥ 0.70× plain mprpc",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Mprpc),
        needed: Needed::AtLeast(0.7),
        applies: |p| one_connection(p, 4096, 128),
    },
    Goal {
        name: "TLS: 1 MiB calls/s ≥ 0.60× plain mprpc",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Mprpc),
        needed: Needed::AtLeast(0.6),
        applies: |p| one_connection(p, 1 << 20, 1),
    },
    Goal {
        name: "tonic client: mprpc's gRPC calls/s ≥ 1× a tonic server's",
        subject: TargetKind::TonicOnMprpc,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Tonic),
        needed: Needed::AtLeast(1.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "tonic client: mprpc's gRPC p99 no worse than a tonic server's",
        subject: TargetKind::TonicOnMprpc,
        figure: Figure::P99,
        reference: Reference::Target(TargetKind::Tonic),
        needed: Needed::AtMost(1.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "detection: calls/s ≥ 0.95× mprpc with every protocol on",
        subject: TargetKind::MprpcDetect,
        figure: Figure::CallsPerSecond,
        reference: Reference::Target(TargetKind::Mprpc),
        needed: Needed::AtLeast(0.95),
        applies: |p| one_connection(p, 64, 128),
    },
];

/// Every goal at every point where the run measured the subject and the reference (a fixed
/// reference is always there).
pub fn check(results: &[PointResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    for goal in &GOALS {
        for mine in results
            .iter()
            .filter(|r| r.point.target == goal.subject && (goal.applies)(&r.point))
        {
            let p = mine.point;
            let Some(a) = goal.figure.of(mine) else {
                continue;
            };
            let (b, reference) = match goal.reference {
                Reference::Target(target) => {
                    let Some(b) = results
                        .iter()
                        .find(|r| {
                            r.point.target == target
                                && r.point
                                    .same_setting(p.payload, p.concurrency, p.connections)
                        })
                        .and_then(|theirs| goal.figure.of(theirs))
                    else {
                        continue;
                    };
                    (b, format!("{target} {}", goal.figure.show(b)))
                }
                Reference::Fixed(b, source) => (b, format!("{source} {}", goal.figure.show(b))),
            };
            let ratio = a / b;
            let (pass, needed, margin) = goal.needed.judge(ratio);
            checks.push(Check {
                goal: goal.name,
                point: format!(
                    "{}, {} in flight, {} conn",
                    size(p.payload),
                    thousands(p.concurrency as f64),
                    p.connections
                ),
                mprpc: if goal.subject == TargetKind::Mprpc {
                    goal.figure.show(a)
                } else {
                    format!("{} {}", goal.subject, goal.figure.show(a))
                },
                reference,
                ratio,
                needed,
                pass,
                margin,
            });
        }
    }
    checks
}

/// Whether some goal compares `point`'s target at its setting, as the subject or as the
/// reference: where a target that is in the run for its goals alone is measured
/// ([`crate::matrix::Coverage::Goals`]).
pub fn needs(point: &Point) -> bool {
    GOALS.iter().any(|goal| {
        (goal.applies)(point)
            && (goal.subject == point.target || goal.reference == Reference::Target(point.target))
    })
}

#[cfg(test)]
mod tests;
