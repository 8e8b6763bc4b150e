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

use std::fmt::Write;

use crate::matrix::{size, Point, PointResult};
use crate::report::{micros, thousands};
use crate::targets::TargetKind;

/// Which way a ratio has to go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needed {
    /// The ratio must be at least the value.
    AtLeast(f64),
    /// The ratio must be at most the value.
    AtMost(f64),
}

/// A figure of a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Figure {
    CallsPerSecond,
    P50,
    P99,
    PeakMemory,
}

impl Figure {
    fn of(self, r: &PointResult) -> Option<f64> {
        match self {
            Figure::CallsPerSecond => Some(r.calls_per_second()).filter(|x| *x > 0.0),
            Figure::P50 => r.latency_us(0.5),
            Figure::P99 => r.latency_us(0.99),
            Figure::PeakMemory => r.server_peak_kib().map(|k| k as f64),
        }
    }

    fn show(self, x: f64) -> String {
        match self {
            Figure::CallsPerSecond => format!("{} calls/s", thousands(x)),
            Figure::P50 | Figure::P99 => format!("{} µs", micros(Some(x))),
            Figure::PeakMemory => format!("{:.1} MiB", x / 1024.0),
        }
    }
}

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

/// One goal checked at one point.
#[derive(Clone, Debug)]
pub struct Check {
    /// The goal, in words.
    pub goal: &'static str,
    /// The point, in words.
    pub point: String,
    /// The subject's figure, shown (named when the subject is not plain mprpc).
    pub mprpc: String,
    /// The reference's figure, shown.
    pub reference: String,
    /// mprpc's figure divided by the reference's.
    pub ratio: f64,
    /// What the ratio must be, shown (`≥ 2`, `≤ 1.15`).
    pub needed: String,
    /// Whether the goal is met.
    pub pass: bool,
    /// How far from the line: the share to spare, or by how much it is missed.
    pub margin: String,
}

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
            let (pass, needed, margin) = match goal.needed {
                Needed::AtLeast(x) => (
                    ratio >= x,
                    format!("≥ {x}"),
                    if ratio >= x {
                        format!("{:.0}% to spare", (ratio / x - 1.0) * 100.0)
                    } else {
                        format!(
                            "short by {:.0}% (needs {:.2}× more)",
                            (1.0 - ratio / x) * 100.0,
                            x / ratio
                        )
                    },
                ),
                Needed::AtMost(x) => (
                    ratio <= x,
                    format!("≤ {x}"),
                    if ratio <= x {
                        format!("{:.0}% to spare", (1.0 - ratio / x) * 100.0)
                    } else {
                        format!("over by {:.0}%", (ratio / x - 1.0) * 100.0)
                    },
                ),
            };
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

/// The checks as a markdown table, and a line counting the goals met.
pub fn table(checks: &[Check]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| goal | point | mprpc | reference | ratio | needed | result | margin |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- | --- | --- |");
    for c in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            c.goal,
            c.point,
            c.mprpc,
            c.reference,
            c.ratio,
            c.needed,
            if c.pass { "PASS" } else { "**MISS**" },
            c.margin
        );
    }
    let met = checks.iter().filter(|c| c.pass).count();
    let _ = writeln!(out);
    let _ = writeln!(out, "{met} of {} checks met.", checks.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Run;
    use crate::runner::{new_histogram, Measurement};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn result(target: TargetKind, concurrency: usize, calls: u64, p50_us: u64) -> PointResult {
        sized(target, 64, concurrency, calls, p50_us)
    }

    fn sized(
        target: TargetKind,
        payload: usize,
        concurrency: usize,
        calls: u64,
        p50_us: u64,
    ) -> PointResult {
        let mut latency = new_histogram();
        latency.record(p50_us * 1000).unwrap();
        PointResult {
            point: Point {
                target,
                payload,
                concurrency,
                connections: 1,
            },
            runs: vec![Run {
                measurement: Measurement {
                    calls,
                    window: Duration::from_secs(1),
                    latency,
                    errors: BTreeMap::new(),
                },
                server_cpu_s: 1.0,
                client_cpu_s: 1.0,
                others_percent: 0.0,
                server_peak_kib: 1024,
            }],
        }
    }

    #[test]
    fn ratios_pass_and_miss() {
        let results = [
            result(TargetKind::Mprpc, 128, 300_000, 100),
            result(TargetKind::Tonic, 128, 100_000, 50),
            result(TargetKind::Mprpc, 1, 10_000, 30),
            result(TargetKind::RawPipelined, 1, 20_000, 20),
        ];
        let checks = check(&results);
        let throughput = checks
            .iter()
            .find(|c| c.goal.starts_with("calls/s"))
            .unwrap();
        assert!(throughput.pass);
        assert!((throughput.ratio - 3.0).abs() < 1e-9);
        assert_eq!(throughput.margin, "50% to spare");
        let p50 = checks.iter().find(|c| c.goal.starts_with("p50")).unwrap();
        assert!(!p50.pass);
        assert_eq!(p50.margin, "over by 30%");
        let tail = checks.iter().find(|c| c.goal.starts_with("p99")).unwrap();
        assert!(!tail.pass, "100 µs against 50 µs");
        let memory = checks
            .iter()
            .find(|c| c.goal.starts_with("server"))
            .unwrap();
        assert!(memory.pass, "equal memory passes");
        assert!(table(&checks).contains("2 of 4 checks met."));
    }

    #[test]
    fn tls_goals_compare_with_tonic_over_tls_and_plain_mprpc() {
        let results = [
            sized(TargetKind::MprpcTls, 4096, 128, 150_000, 500),
            sized(TargetKind::TonicTls, 4096, 128, 30_000, 3000),
            sized(TargetKind::Mprpc, 4096, 128, 200_000, 400),
            sized(TargetKind::MprpcTls, 1 << 20, 1, 500, 2000),
            sized(TargetKind::Mprpc, 1 << 20, 1, 1000, 1000),
            // Not a TLS goal's point: plain tonic is no reference for mprpc-tls.
            sized(TargetKind::Tonic, 1 << 20, 1, 400, 2500),
        ];
        let checks = check(&results);
        let tls: Vec<_> = checks
            .iter()
            .filter(|c| c.goal.starts_with("TLS"))
            .collect();
        assert_eq!(tls.len(), 3, "{tls:?}");
        let vs_tonic = tls.iter().find(|c| c.goal.contains("tonic")).unwrap();
        assert!(vs_tonic.pass);
        assert!((vs_tonic.ratio - 5.0).abs() < 1e-9);
        assert!(
            vs_tonic.mprpc.starts_with("mprpc-tls "),
            "{}",
            vs_tonic.mprpc
        );
        assert!(vs_tonic.reference.starts_with("tonic-tls "));
        let cost = tls.iter().find(|c| c.goal.contains("0.70")).unwrap();
        assert!(cost.pass, "0.75 of plain");
        let bulk = tls.iter().find(|c| c.goal.contains("1 MiB")).unwrap();
        assert!(!bulk.pass, "0.5 of plain");
    }

    #[test]
    fn grpc_front_end_goals_need_both_tonic_targets() {
        let alone = [sized(TargetKind::TonicOnMprpc, 64, 128, 60_000, 2000)];
        assert!(check(&alone).is_empty());
        let results = [
            sized(TargetKind::TonicOnMprpc, 64, 128, 60_000, 2000),
            sized(TargetKind::Tonic, 64, 128, 50_000, 1000),
            // Not a goal's point: 16 in flight.
            sized(TargetKind::TonicOnMprpc, 64, 16, 40_000, 300),
            sized(TargetKind::Tonic, 64, 16, 45_000, 350),
        ];
        let checks = check(&results);
        assert_eq!(checks.len(), 2, "{checks:?}");
        let rate = checks.iter().find(|c| c.goal.contains("calls/s")).unwrap();
        assert!(rate.pass);
        assert!((rate.ratio - 1.2).abs() < 1e-9);
        assert!(rate.mprpc.starts_with("tonic-on-mprpc "), "{}", rate.mprpc);
        let tail = checks.iter().find(|c| c.goal.contains("p99")).unwrap();
        assert!(!tail.pass, "2 ms against 1 ms");
    }
}
