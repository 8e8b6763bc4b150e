//! The goals checked on made-up results: ratios, PASS and MISS, which points count.

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
