//! The plan's points, sizes in words, and the figures over a point's repetitions.

use super::*;

fn profile() -> Profile {
    Profile {
        targets: TargetKind::ALL.map(|t| (t, Coverage::Every)).to_vec(),
        payloads: vec![64, 1 << 20],
        concurrency: vec![1, 16, 128, 1024],
        connections: vec![1, 64],
        reps: 3,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(2),
        server_threads: 1,
        client_threads: 1,
        pin: true,
        max_bytes_in_flight: 128 << 20,
    }
}

#[test]
fn the_plan_skips_what_makes_no_sense() {
    let (points, notes) = plan(&profile());
    // 64 B: 4 levels x 1 connection + 2 levels x 64 connections for the eight
    // multiplexed targets, 4 for raw-per-call; 1 MiB: 3 + 1 each, and 3.
    assert_eq!(points.len(), 8 * 6 + 4 + 8 * 4 + 3);
    assert!(!points
        .iter()
        .any(|p| p.payload == 1 << 20 && p.concurrency == 1024));
    assert!(!points
        .iter()
        .any(|p| p.connections == 64 && p.concurrency < 64));
    let per_call: Vec<_> = points
        .iter()
        .filter(|p| p.target == TargetKind::RawPerCall)
        .collect();
    assert!(per_call.iter().all(|p| p.connections == p.concurrency));
    assert_eq!(notes.len(), 3, "{notes:?}");
}

#[test]
fn goal_only_targets_run_at_their_goals_points() {
    let mut profile = profile();
    profile.targets = DEFAULT_TARGETS.to_vec();
    profile.payloads = vec![64, 4096, 1 << 20];
    let (points, _) = plan(&profile);
    let at = |target| -> Vec<(usize, usize, usize)> {
        points
            .iter()
            .filter(|p| p.target == target)
            .map(|p| (p.payload, p.concurrency, p.connections))
            .collect()
    };
    // mprpc, tonic and raw-pipelined everywhere (16 each), raw-per-call 11.
    assert_eq!(at(TargetKind::Mprpc).len(), 16);
    assert_eq!(at(TargetKind::RawPerCall).len(), 11);
    assert_eq!(at(TargetKind::MprpcLayers), [(64, 128, 1)]);
    assert_eq!(at(TargetKind::MprpcDetect), [(64, 128, 1)]);
    assert_eq!(at(TargetKind::TonicOnMprpc), [(64, 128, 1), (4096, 128, 1)]);
    assert_eq!(at(TargetKind::TonicTls), [(64, 128, 1), (4096, 128, 1)]);
    assert_eq!(
        at(TargetKind::MprpcTls),
        [(64, 128, 1), (4096, 128, 1), (1 << 20, 1, 1)]
    );
    assert_eq!(points.len(), 3 * 16 + 11 + 9);
    // Still in report order, setting by setting.
    let first: Vec<_> = points.iter().take(4).map(|p| p.target).collect();
    assert_eq!(
        first,
        [
            TargetKind::Mprpc,
            TargetKind::Tonic,
            TargetKind::RawPipelined,
            TargetKind::RawPerCall
        ]
    );
}

#[test]
fn sizes_read_well() {
    assert_eq!(size(64), "64 B");
    assert_eq!(size(4096), "4 KiB");
    assert_eq!(size(1 << 20), "1 MiB");
    assert_eq!(size(1000), "1000 B");
}

#[test]
fn medians_and_spreads() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.0));
    assert_eq!(median(&[]), None);
}

/// A repetition of `calls` calls in 1 s: 98 at 100 µs and 2 at `tail_us`, so its p99 is
/// `tail_us`.
fn run(calls: u64, tail_us: u64) -> Run {
    let mut latency = runner::new_histogram();
    latency.record_n(100_000, 98).unwrap();
    latency.record_n(tail_us * 1000, 2).unwrap();
    Run {
        measurement: Measurement {
            calls,
            window: Duration::from_secs(1),
            latency,
            errors: std::collections::BTreeMap::new(),
        },
        server_cpu_s: 1.0,
        client_cpu_s: 1.0,
        others_percent: 0.0,
        server_peak_kib: 1024,
    }
}

#[test]
fn a_tail_over_the_repetitions_is_the_median_of_theirs() {
    let result = PointResult {
        point: Point {
            target: TargetKind::Mprpc,
            payload: 64,
            concurrency: 1024,
            connections: 1,
        },
        // The median repetition by calls/s is the one with a 30 ms tail.
        runs: vec![run(100, 5_000), run(200, 30_000), run(300, 9_000)],
    };
    let near = |got: Option<f64>, want: f64| (got.unwrap() / want - 1.0).abs() < 0.01;
    assert!(near(result.latency_us(0.99), 30_000.0));
    assert!(near(result.median_latency_us(0.99), 9_000.0));
    let failed = Run {
        measurement: Measurement::failed(Duration::from_secs(1), "refused".to_owned()),
        ..run(0, 1)
    };
    let with_failure = PointResult {
        runs: vec![failed, run(100, 7_000)],
        ..result
    };
    assert!(near(with_failure.median_latency_us(0.99), 7_000.0));
}
