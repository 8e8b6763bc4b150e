//! Reporting an error to a person: [`one_line`].

use std::error::Error;

/// The error and its causes on one line, joined by `": "`, with runs of white space made one
/// space. A cause whose text the line already holds (an error that prints its own source and
/// also returns it) is said once, so a program's `error: ...` line names each fact once.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(error) = cause {
        let text = error.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = error.source();
    }
    line
}
