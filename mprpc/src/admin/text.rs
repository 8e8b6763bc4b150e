//! Text for the admin pages: numbers that read well, and HTML escaping.

use std::collections::BTreeMap;
use std::time::Duration;

/// `NotFound 2, Internal 1`.
pub(super) fn codes_text(codes: &BTreeMap<String, u64>) -> String {
    codes
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A latency in milliseconds, in the unit that reads best; a dash when there is none.
pub(super) fn latency_text(ms: Option<f64>) -> String {
    match ms {
        None => "<span class=\"muted\">&ndash;</span>".to_owned(),
        Some(ms) if ms < 1.0 => format!("{:.0} &micro;s", ms * 1e3),
        Some(ms) if ms < 1e3 => format!("{ms:.1} ms"),
        Some(ms) => format!("{:.2} s", ms / 1e3),
    }
}

/// `3d 4h 5m 6s`, leaving out leading zero units.
pub(super) fn uptime_text(seconds: f64) -> String {
    let total = Duration::from_secs_f64(seconds.max(0.0)).as_secs();
    let (d, h, m, s) = (
        total / 86_400,
        total / 3_600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// Escapes text for HTML element content and quoted attribute values: `&`, `<`, `>`, `"`
/// and `'`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_special_characters() {
        assert_eq!(escape_html("a.B"), "a.B");
        assert_eq!(
            escape_html(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    #[test]
    fn uptime_and_latency_read_well() {
        assert_eq!(uptime_text(5.4), "5s");
        assert_eq!(uptime_text(3_725.0), "1h 2m 5s");
        assert_eq!(uptime_text(90_061.0), "1d 1h 1m 1s");
        assert_eq!(latency_text(Some(0.25)), "250 &micro;s");
        assert_eq!(latency_text(Some(12.34)), "12.3 ms");
        assert_eq!(latency_text(Some(2_500.0)), "2.50 s");
    }
}
