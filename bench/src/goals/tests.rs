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
        result(TargetKind::Mprpc, 128, 600_000, 100),
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
    assert!((throughput.ratio - 6.0).abs() < 1e-9);
    assert_eq!(throughput.margin, "20% to spare");
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
    // A fixed bound needs no other target: 1 CPU s over 600,000 calls is 1.67 µs a call.
    let cpu = checks.iter().find(|c| c.goal.contains("CPU")).unwrap();
    assert!(!cpu.pass);
    assert!(table(&checks).contains("2 of 5 checks met."));
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

/// A point with one repetition per `(calls, p99 in µs)`: each repetition's 100 latencies are
/// 98 of 100 µs and 2 of its p99.
fn reps(
    target: TargetKind,
    payload: usize,
    concurrency: usize,
    runs: &[(u64, u64)],
) -> PointResult {
    let mut result = sized(target, payload, concurrency, 1, 1);
    result.runs = runs
        .iter()
        .map(|&(calls, p99_us)| {
            let mut run = result.runs[0].clone();
            run.measurement.calls = calls;
            run.measurement.latency.reset();
            run.measurement.latency.record_n(100_000, 98).unwrap();
            run.measurement.latency.record_n(p99_us * 1000, 2).unwrap();
            run
        })
        .collect();
    result
}

/// Whether a check's ratio is `want`, to the histograms' precision.
fn near(ratio: f64, want: f64) -> bool {
    (ratio / want - 1.0).abs() < 0.01
}

#[test]
fn tails_at_1024_compare_the_medians_of_the_repetitions_p99s() {
    let results = [
        // The median repetition by calls/s has a 30 ms tail; the median of the three p99s
        // is 9 ms. raw's are 5 ms (median) with one repetition at 27 ms.
        reps(
            TargetKind::Mprpc,
            64,
            1024,
            &[(200_000, 30_000), (190_000, 9_000), (210_000, 8_000)],
        ),
        reps(
            TargetKind::RawPipelined,
            64,
            1024,
            &[(1_000_000, 5_000), (1_100_000, 27_000), (900_000, 4_500)],
        ),
        // 4 KiB: 25 ms against raw's 10 ms.
        reps(
            TargetKind::Mprpc,
            4096,
            1024,
            &[(100_000, 25_000), (110_000, 22_000), (90_000, 40_000)],
        ),
        reps(
            TargetKind::RawPipelined,
            4096,
            1024,
            &[(300_000, 10_000), (310_000, 9_000), (290_000, 12_000)],
        ),
    ];
    let checks = check(&results);
    let tails: Vec<_> = checks
        .iter()
        .filter(|c| c.goal.starts_with("p99 (median"))
        .collect();
    assert_eq!(tails.len(), 4, "{tails:?}");
    let at = |payload: &str, bound: &str| {
        tails
            .iter()
            .find(|c| c.point.starts_with(payload) && c.goal.contains(bound))
            .unwrap()
    };
    let raw_64 = at("64 B", "raw");
    assert!(raw_64.pass, "{raw_64:?}");
    assert!(near(raw_64.ratio, 9.0 / 5.0), "{raw_64:?}");
    let brpc_64 = at("64 B", "20 ms");
    assert!(brpc_64.pass, "9 ms is under 20 ms: {brpc_64:?}");
    assert!(near(brpc_64.ratio, 0.45), "{brpc_64:?}");
    assert_eq!(brpc_64.reference, "brpc's 20,000 µs");
    let raw_4k = at("4 KiB", "raw");
    assert!(!raw_4k.pass, "25 ms against 10 ms: {raw_4k:?}");
    let brpc_4k = at("4 KiB", "20 ms");
    assert!(!brpc_4k.pass, "{brpc_4k:?}");
    assert!(brpc_4k.margin.starts_with("over by 2"), "{brpc_4k:?}");
}

#[test]
fn server_cpu_per_call_has_a_fixed_bound() {
    // One CPU second in the window, over 2,000,000 calls (0.5 µs each) or 1,000,000 (1 µs).
    let pass = check(&[sized(TargetKind::Mprpc, 64, 128, 2_000_000, 300)]);
    assert_eq!(pass.len(), 1, "no other target is needed: {pass:?}");
    let c = &pass[0];
    assert!(c.goal.contains("CPU per call"));
    assert!(c.pass);
    assert!(near(c.ratio, 0.5 / 0.6));
    assert_eq!(c.mprpc, "0.500 µs/call");
    assert_eq!(c.reference, "bound 0.600 µs/call");
    let miss = check(&[sized(TargetKind::Mprpc, 64, 128, 1_000_000, 300)]);
    assert!(!miss[0].pass);
    assert_eq!(miss[0].margin, "over by 67%");
    // Only at 64 B.
    assert!(check(&[sized(TargetKind::Mprpc, 4096, 128, 1_000_000, 300)]).is_empty());
}

#[test]
fn issue_14_throughput_lines() {
    let at_64 = |target, calls| {
        let mut r = sized(target, 64, 128, calls, 1000);
        r.point.connections = 64;
        r
    };
    let results = [
        sized(TargetKind::Mprpc, 64, 128, 5_000_000, 300),
        sized(TargetKind::RawPipelined, 64, 128, 15_000_000, 100),
        sized(TargetKind::Mprpc, 4096, 128, 400_000, 300),
        sized(TargetKind::RawPipelined, 4096, 128, 500_000, 100),
        sized(TargetKind::Mprpc, 1 << 20, 1, 1_300, 700),
        sized(TargetKind::RawPipelined, 1 << 20, 1, 1_360, 700),
        sized(TargetKind::Mprpc, 1 << 20, 16, 1_000, 9_000),
        sized(TargetKind::RawPipelined, 1 << 20, 16, 1_500, 9_000),
        // Every tonic comparison, 64 connections too.
        at_64(TargetKind::Mprpc, 136_000),
        at_64(TargetKind::Tonic, 32_000),
    ];
    let checks = check(&results);
    let find = |goal: &str, point: &str| {
        checks
            .iter()
            .find(|c| c.goal == goal && c.point.starts_with(point))
            .unwrap_or_else(|| panic!("no {goal} at {point}: {checks:?}"))
    };
    let small = find("64 B calls/s ≥ 0.4× raw", "64 B, 128");
    assert!(!small.pass, "a third of raw: {small:?}");
    assert!(find("4 KiB calls/s ≥ 0.7× raw", "4 KiB, 128").pass);
    let one = find("1 MiB × 1 calls/s ≥ 0.95× raw", "1 MiB, 1 in");
    assert!(one.pass, "0.956: {one:?}");
    assert!(!find("1 MiB calls/s ≥ 0.7× raw", "1 MiB, 16").pass);
    assert!(
        !checks
            .iter()
            .any(|c| c.goal == "1 MiB calls/s ≥ 0.7× raw" && c.point.starts_with("1 MiB, 1 in")),
        "1 in flight has its own line"
    );
    let tonic = find("calls/s ≥ 5× tonic", "64 B, 128 in flight, 64 conn");
    assert!(!tonic.pass, "4.25×: {tonic:?}");
}
