//! One goal checked at one point ([`Check`]), and the checks as a markdown table.

use std::fmt::Write;

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
