//! The results as markdown: one table of every point, latencies in microseconds.

use std::fmt::Write;

use crate::matrix::{size, PointResult};

/// The table of results, one row per point, rows of one setting together:
///
/// `| payload | conns | in flight | target | calls/s | spread | MiB/s | p50 | p99 | p999 |
/// srv CPU s/1k | cli CPU s/1k | srv peak MiB | others % | errors |`
pub fn table(results: &[PointResult]) -> String {
    let mut sorted: Vec<&PointResult> = results.iter().collect();
    // Connection-per-call rows go with the single-connection rows of their setting.
    sorted.sort_by_key(|r| {
        let p = r.point;
        let group = if p.target.multiplexed() {
            p.connections
        } else {
            1
        };
        (p.payload, group, p.concurrency, p.target)
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| payload | conns | in flight | target | calls/s | spread (min–max) | MiB/s | p50 | p99 | p999 | srv CPU s/1k | cli CPU s/1k | srv peak MiB | others % | errors |"
    );
    let _ = writeln!(
        out,
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in sorted {
        let p = r.point;
        let rate = r.calls_per_second();
        let (min, max) = r.spread();
        let cpu = r.cpu_per_1k();
        let conns = if p.target.multiplexed() {
            p.connections.to_string()
        } else {
            "per call".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {conns} | {} | {} | {} | {}–{} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            size(p.payload),
            thousands(p.concurrency as f64),
            p.target,
            thousands(rate),
            thousands(min),
            thousands(max),
            mib_per_second(rate, p.payload),
            micros(r.latency_us(0.5)),
            micros(r.latency_us(0.99)),
            micros(r.latency_us(0.999)),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.0)),
            cpu.map_or_else(|| "-".to_owned(), |c| sig3(c.1)),
            r.server_peak_kib()
                .map_or_else(|| "-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
            r.others_percent(),
            errors(r),
        );
    }
    out
}

/// Payload MiB/s each way.
fn mib_per_second(rate: f64, payload: usize) -> String {
    let mib = rate * payload as f64 / (1024.0 * 1024.0);
    if mib >= 100.0 {
        thousands(mib)
    } else {
        format!("{mib:.1}")
    }
}

/// Microseconds with one decimal below 1,000, whole above; a dash when nothing was recorded.
pub fn micros(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us >= 1000.0 => thousands(us),
        Some(us) => format!("{us:.1}"),
    }
}

/// A number with three significant digits (CPU seconds per 1,000 calls).
pub fn sig3(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// `12345678.4` as `12,345,678`.
pub fn thousands(x: f64) -> String {
    let digits = (x.round().max(0.0) as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn errors(r: &PointResult) -> String {
    let all = r.errors();
    if all.is_empty() {
        return "0".to_owned();
    }
    let total: u64 = all.values().sum();
    let kinds: Vec<String> = all.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!("{total} ({})", kinds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Point, Run};
    use crate::runner::{new_histogram, Measurement};
    use crate::targets::TargetKind;
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub(crate) fn result(target: TargetKind, rates: &[u64]) -> PointResult {
        let runs = rates
            .iter()
            .map(|&calls| {
                let mut latency = new_histogram();
                for us in [10u64, 20, 30, 1000] {
                    latency.record(us * 1000).unwrap();
                }
                Run {
                    measurement: Measurement {
                        calls,
                        window: Duration::from_secs(1),
                        latency,
                        errors: BTreeMap::new(),
                    },
                    server_cpu_s: 0.5,
                    client_cpu_s: 0.25,
                    others_percent: 1.0,
                    server_peak_kib: 10 * 1024,
                }
            })
            .collect();
        PointResult {
            point: Point {
                target,
                payload: 64,
                concurrency: 16,
                connections: 1,
            },
            runs,
        }
    }

    #[test]
    fn rows_show_medians_spread_and_costs() {
        let t = table(&[
            result(TargetKind::Tonic, &[1000, 3000, 2000]),
            result(TargetKind::Mprpc, &[4000, 5000, 6000]),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("| payload | conns | in flight | target |"));
        assert!(
            lines[2].starts_with("| 64 B | 1 | 16 | mprpc | 5,000 | 4,000–6,000 |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("| tonic | 2,000 | 1,000–3,000 |"),
            "{}",
            lines[3]
        );
        // 0.5 CPU s for 5,000 calls = 0.1 s per 1,000; 10 MiB peak.
        assert!(
            lines[2].contains("| 0.100 | 0.0500 | 10.0 | 1 | 0 |"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(sig3(0.01234), "0.0123");
        assert_eq!(sig3(1.5), "1.50");
        assert_eq!(sig3(123.4), "123");
        assert_eq!(micros(Some(66.64)), "66.6");
        assert_eq!(micros(Some(4110.3)), "4,110");
        assert_eq!(micros(None), "-");
    }
}
