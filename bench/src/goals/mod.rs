//! The goals, as ratios of figures measured in the same run, with PASS or MISS.
//!
//! | goal | compares | needed |
//! | --- | --- | --- |
//! | throughput vs gRPC | mprpc calls/s ÷ tonic's, 64 B and 4 KiB, 128 and 1,024 in flight, 1 connection | ≥ 2 |
//! | latency vs the wire | mprpc p50 ÷ raw-pipelined p50, 1 in flight (a round trip on an open connection) | ≤ 1.15 |
//! | tail vs gRPC | mprpc p99 ÷ tonic's, 16 and 128 in flight, 1 connection | ≤ 1 |
//! | bulk vs the wire | mprpc calls/s ÷ raw-pipelined's, 1 MiB | ≥ 0.70 |
//! | memory vs gRPC | mprpc server peak RSS ÷ tonic's, 128 in flight, 1 connection | ≤ 1 |
//! | cost of layers | mprpc-layers calls/s ÷ mprpc's, 64 B, 128 in flight, 1 connection | ≥ 0.90 |
//! | TLS vs gRPC over TLS | mprpc-tls calls/s ÷ tonic-tls's, 64 B and 4 KiB, 128 in flight, 1 connection | ≥ 2 |
//! | cost of TLS | mprpc-tls calls/s ÷ mprpc's, 4 KiB, 128 in flight, 1 connection | ≥ 0.70 |
//! | bulk over TLS | mprpc-tls calls/s ÷ mprpc's, 1 MiB, 1 in flight, 1 connection | ≥ 0.60 |
//! | gRPC front end | tonic-on-mprpc calls/s ÷ tonic's (the same tonic client), 64 B and 4 KiB, 128 in flight, 1 connection | ≥ 1 |
//! | gRPC front end, tail | tonic-on-mprpc p99 ÷ tonic's, the same points | ≤ 1 |
//! | cost of detection | mprpc-detect calls/s ÷ mprpc's, 64 B, 128 in flight, 1 connection | ≥ 0.95 |
//!
//! A goal is checked at every point of its kind that the run measured for both sides.

mod figure;
mod table;

use crate::matrix::{size, Point, PointResult};
use crate::report::thousands;
use crate::targets::TargetKind;

use self::figure::Figure;
pub use self::figure::Needed;
pub use self::table::{table, Check};

struct Goal {
    name: &'static str,
    /// The target measured against the reference.
    subject: TargetKind,
    figure: Figure,
    reference: TargetKind,
    needed: Needed,
    applies: fn(&Point) -> bool,
}

const GOALS: [Goal; 12] = [
    Goal {
        name: "calls/s ≥ 2× tonic",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Tonic,
        needed: Needed::AtLeast(2.0),
        applies: |p| {
            matches!(p.payload, 64 | 4096)
                && matches!(p.concurrency, 128 | 1024)
                && p.connections == 1
        },
    },
    Goal {
        name: "p50 ≤ 1.15× raw round trip",
        subject: TargetKind::Mprpc,
        figure: Figure::P50,
        reference: TargetKind::RawPipelined,
        needed: Needed::AtMost(1.15),
        applies: |p| p.concurrency == 1 && p.connections == 1,
    },
    Goal {
        name: "p99 ≤ tonic's",
        subject: TargetKind::Mprpc,
        figure: Figure::P99,
        reference: TargetKind::Tonic,
        needed: Needed::AtMost(1.0),
        applies: |p| matches!(p.concurrency, 16 | 128) && p.connections == 1,
    },
    Goal {
        name: "1 MiB calls/s ≥ 70% of raw",
        subject: TargetKind::Mprpc,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::RawPipelined,
        needed: Needed::AtLeast(0.7),
        applies: |p| p.payload == 1 << 20,
    },
    Goal {
        name: "server peak RSS ≤ tonic's",
        subject: TargetKind::Mprpc,
        figure: Figure::PeakMemory,
        reference: TargetKind::Tonic,
        needed: Needed::AtMost(1.0),
        applies: |p| p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "3 layers a side: calls/s ≥ 0.90× plain",
        subject: TargetKind::MprpcLayers,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Mprpc,
        needed: Needed::AtLeast(0.9),
        applies: |p| p.payload == 64 && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "TLS: calls/s ≥ 2× tonic over TLS",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::TonicTls,
        needed: Needed::AtLeast(2.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "TLS: calls/s ≥ 0.70× plain mprpc",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Mprpc,
        needed: Needed::AtLeast(0.7),
        applies: |p| p.payload == 4096 && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "TLS: 1 MiB calls/s ≥ 0.60× plain mprpc",
        subject: TargetKind::MprpcTls,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Mprpc,
        needed: Needed::AtLeast(0.6),
        applies: |p| p.payload == 1 << 20 && p.concurrency == 1 && p.connections == 1,
    },
    Goal {
        name: "tonic client: mprpc's gRPC calls/s ≥ 1× a tonic server's",
        subject: TargetKind::TonicOnMprpc,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Tonic,
        needed: Needed::AtLeast(1.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "tonic client: mprpc's gRPC p99 no worse than a tonic server's",
        subject: TargetKind::TonicOnMprpc,
        figure: Figure::P99,
        reference: TargetKind::Tonic,
        needed: Needed::AtMost(1.0),
        applies: |p| matches!(p.payload, 64 | 4096) && p.concurrency == 128 && p.connections == 1,
    },
    Goal {
        name: "detection: calls/s ≥ 0.95× mprpc with every protocol on",
        subject: TargetKind::MprpcDetect,
        figure: Figure::CallsPerSecond,
        reference: TargetKind::Mprpc,
        needed: Needed::AtLeast(0.95),
        applies: |p| p.payload == 64 && p.concurrency == 128 && p.connections == 1,
    },
];

/// Every goal at every point where the run measured both mprpc and the reference.
pub fn check(results: &[PointResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    for goal in &GOALS {
        for mine in results
            .iter()
            .filter(|r| r.point.target == goal.subject && (goal.applies)(&r.point))
        {
            let p = mine.point;
            let Some(theirs) = results.iter().find(|r| {
                r.point.target == goal.reference
                    && r.point
                        .same_setting(p.payload, p.concurrency, p.connections)
            }) else {
                continue;
            };
            let (Some(a), Some(b)) = (goal.figure.of(mine), goal.figure.of(theirs)) else {
                continue;
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
                reference: format!("{} {}", goal.reference, goal.figure.show(b)),
                ratio,
                needed,
                pass,
                margin,
            });
        }
    }
    checks
}

#[cfg(test)]
mod tests;
