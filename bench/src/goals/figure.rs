//! What a goal compares: a figure of a point ([`Figure`]), what it is divided by (another
//! target's figure or a fixed bound, [`Reference`]), and which way the ratio has to go
//! ([`Needed`]).

use crate::matrix::PointResult;
use crate::report::{micros, sig3, thousands};
use crate::targets::TargetKind;

/// Which way a ratio has to go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Needed {
    /// The ratio must be at least the value.
    AtLeast(f64),
    /// The ratio must be at most the value.
    AtMost(f64),
}

impl Needed {
    /// Whether `ratio` meets the line, the line as shown (`≥ 2`, `≤ 1.15`), and how far
    /// from it the ratio is: the share to spare, or by how much it is missed.
    pub fn judge(self, ratio: f64) -> (bool, String, String) {
        match self {
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
        }
    }
}

/// A figure of a point, over its repetitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Figure {
    /// Median calls/s.
    CallsPerSecond,
    /// p50 of the median repetition (by calls/s), µs.
    P50,
    /// p99 of the median repetition (by calls/s), µs.
    P99,
    /// The median of the repetitions' p99s, µs: for a tail that varies from run to run more
    /// than the calls/s do (one slow repetition cannot decide it).
    P99OverReps,
    /// Median server CPU time per call, µs.
    ServerCpuPerCall,
    /// Median server peak RSS, KiB.
    PeakMemory,
}

impl Figure {
    pub(super) fn of(self, r: &PointResult) -> Option<f64> {
        match self {
            Figure::CallsPerSecond => Some(r.calls_per_second()).filter(|x| *x > 0.0),
            Figure::P50 => r.latency_us(0.5),
            Figure::P99 => r.latency_us(0.99),
            Figure::P99OverReps => r.median_latency_us(0.99),
            // CPU seconds per 1,000 calls are milliseconds per call: × 1,000 for µs.
            Figure::ServerCpuPerCall => r.cpu_per_1k().map(|(server, _)| server * 1000.0),
            Figure::PeakMemory => r.server_peak_kib().map(|k| k as f64),
        }
    }

    pub(super) fn show(self, x: f64) -> String {
        match self {
            Figure::CallsPerSecond => format!("{} calls/s", thousands(x)),
            Figure::P50 | Figure::P99 | Figure::P99OverReps => format!("{} µs", micros(Some(x))),
            Figure::ServerCpuPerCall => format!("{} µs/call", sig3(x)),
            Figure::PeakMemory => format!("{:.1} MiB", x / 1024.0),
        }
    }
}

/// What a goal's figure is divided by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Reference {
    /// The same figure of another target at the same setting, measured in the same run.
    Target(TargetKind),
    /// A fixed value of the figure, in its unit (µs for latencies and CPU per call), and
    /// where the value comes from (shown in the reference column). The goal's line is then
    /// usually `≤ 1`: the figure under the bound.
    Fixed(f64, &'static str),
}
