//! What a goal compares: a figure of a point ([`Figure`]), and which way the ratio of two
//! figures has to go ([`Needed`]).

use crate::matrix::PointResult;
use crate::report::{micros, thousands};

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

/// A figure of a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Figure {
    CallsPerSecond,
    P50,
    P99,
    PeakMemory,
}

impl Figure {
    pub(super) fn of(self, r: &PointResult) -> Option<f64> {
        match self {
            Figure::CallsPerSecond => Some(r.calls_per_second()).filter(|x| *x > 0.0),
            Figure::P50 => r.latency_us(0.5),
            Figure::P99 => r.latency_us(0.99),
            Figure::PeakMemory => r.server_peak_kib().map(|k| k as f64),
        }
    }

    pub(super) fn show(self, x: f64) -> String {
        match self {
            Figure::CallsPerSecond => format!("{} calls/s", thousands(x)),
            Figure::P50 | Figure::P99 => format!("{} µs", micros(Some(x))),
            Figure::PeakMemory => format!("{:.1} MiB", x / 1024.0),
        }
    }
}
