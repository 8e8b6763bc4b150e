//! The results as a markdown table, latencies in microseconds.

use std::fmt::Write;

use crate::runner::Measurement;

/// One row: which target, and what it measured.
#[derive(Debug)]
pub struct Row {
    /// The target's name.
    pub target: &'static str,
    /// Its figures at one setting.
    pub measurement: Measurement,
}

/// The table: `| payload | in flight | calls/s | p50 | p99 | p999 | max | errors |`, with a
/// leading `target` column when the rows come from more than one target.
pub fn table(rows: &[Row]) -> String {
    let several = rows.windows(2).any(|w| w[0].target != w[1].target);
    let mut out = String::new();
    let lead = if several { "| target " } else { "" };
    let lead_rule = if several { "| --- " } else { "" };
    let _ = writeln!(
        out,
        "{lead}| payload | in flight | calls/s | p50 | p99 | p999 | max | errors |"
    );
    let _ = writeln!(
        out,
        "{lead_rule}| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for row in rows {
        let m = &row.measurement;
        let h = &m.latency;
        if several {
            let _ = write!(out, "| {} ", row.target);
        }
        let _ = writeln!(
            out,
            "| {} B | {} | {} | {} | {} | {} | {} | {} |",
            m.setting.payload,
            m.setting.concurrency,
            thousands(m.calls_per_second().round() as u64),
            micros(h.value_at_quantile(0.5), m.calls),
            micros(h.value_at_quantile(0.99), m.calls),
            micros(h.value_at_quantile(0.999), m.calls),
            micros(h.max(), m.calls),
            errors(m),
        );
    }
    out
}

/// Nanoseconds as microseconds with one decimal; a dash when nothing was recorded.
fn micros(ns: u64, calls: u64) -> String {
    if calls == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}", ns as f64 / 1000.0)
    }
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn errors(m: &Measurement) -> String {
    if m.errors.is_empty() {
        return "0".to_owned();
    }
    let kinds: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    format!("{} ({})", m.error_count(), kinds.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{new_histogram, Setting};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn row(target: &'static str, errors: BTreeMap<String, u64>) -> Row {
        let mut latency = new_histogram();
        for us in [10u64, 20, 30, 1000] {
            latency.record(us * 1000).unwrap();
        }
        Row {
            target,
            measurement: Measurement {
                setting: Setting {
                    payload: 64,
                    concurrency: 16,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(2),
                },
                calls: 4_000_000,
                latency,
                errors,
            },
        }
    }

    #[test]
    fn one_target_gets_the_plain_columns() {
        let t = table(&[row("mprpc", BTreeMap::new())]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| payload | in flight | calls/s | p50 | p99 | p999 | max | errors |"
        );
        assert!(
            lines[2].starts_with("| 64 B | 16 | 2,000,000 | 20.0 |"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with("| 0 |"), "{}", lines[2]);
    }

    #[test]
    fn several_targets_get_a_target_column_and_errors_by_kind() {
        let errors = BTreeMap::from([
            ("Unavailable".to_owned(), 3),
            ("DeadlineExceeded".to_owned(), 1),
        ]);
        let t = table(&[row("mprpc", errors), row("other", BTreeMap::new())]);
        assert!(t.starts_with("| target | payload |"));
        assert!(
            t.contains("| 4 (DeadlineExceeded: 1, Unavailable: 3) |"),
            "{t}"
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
