//! Tests of the text exposition.

use std::time::Duration;

use super::*;
use crate::metrics::Metrics;
use crate::registry::ServiceInstance;
use crate::Code;

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label_value("plain"), "plain");
    assert_eq!(
        escape_label_value("a\\b\"c\nd"),
        r#"a\\b\"c\nd"#,
        "backslash, quote and newline"
    );
}

#[test]
fn renders_every_family_with_help_and_type() {
    let m = Metrics::new();
    let echo = m.method(Side::Server, "a.\"B\"", "Echo");
    echo.start().finish(Code::Ok);
    echo.start().finish(Code::NotFound);
    let _running = echo.start();
    m.rejected(Code::Unimplemented);
    m.connection(Side::Server, 1);
    m.set_providers("x.Y", &[ServiceInstance::new("x.Y", "h:1")]);
    m.registry_refused("world_writable");
    m.registry_refused("world_writable");
    let read = m.method(Side::Client, "x.Y", "Read");
    read.retried();
    read.retried();
    read.hedged();
    read.budget_exhausted();
    m.provider_ejected("h:1", true);
    let text = render(&m.snapshot(), "connected");

    for family in [
        "mprpc_calls_total counter",
        "mprpc_call_duration_seconds histogram",
        "mprpc_calls_in_flight gauge",
        "mprpc_rejected_calls_total counter",
        "mprpc_adaptive_concurrency_limit gauge",
        "mprpc_shed_calls_total counter",
        "mprpc_connections gauge",
        "mprpc_registry_up gauge",
        "mprpc_registry_refused_nodes_total counter",
        "mprpc_log_dropped_lines_total counter",
        "mprpc_uptime_seconds gauge",
        "mprpc_known_providers gauge",
        "mprpc_client_retries_total counter",
        "mprpc_client_hedges_total counter",
        "mprpc_client_retry_budget_exhausted_total counter",
        "mprpc_client_provider_ejected gauge",
        "mprpc_client_provider_ejections_total counter",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family}\n{text}"
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let has = |line: &str| lines.contains(&line);
    let labels = r#"side="server",service="a.\"B\"",method="Echo""#;
    assert!(
        has(&format!("mprpc_calls_total{{{labels},code=\"Ok\"}} 1")),
        "{text}"
    );
    assert!(has(&format!(
        "mprpc_calls_total{{{labels},code=\"NotFound\"}} 1"
    )));
    assert!(has(&format!("mprpc_calls_in_flight{{{labels}}} 1")));
    assert!(has(&format!(
        "mprpc_call_duration_seconds_bucket{{{labels},le=\"10\"}} 2"
    )));
    assert!(has(&format!(
        "mprpc_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"
    )));
    assert!(has(&format!(
        "mprpc_call_duration_seconds_count{{{labels}}} 2"
    )));
    assert!(has(r#"mprpc_rejected_calls_total{code="Unimplemented"} 1"#));
    assert!(has("mprpc_shed_calls_total 0"));
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("mprpc_adaptive_concurrency_limit")),
        "no limit, no sample"
    );
    assert!(has(r#"mprpc_connections{side="server"} 1"#));
    assert!(has(r#"mprpc_connections{side="client"} 0"#));
    assert!(has(r#"mprpc_registry_up{state="connected"} 1"#));
    assert!(has(r#"mprpc_registry_up{state="static"} 0"#));
    assert!(has(
        r#"mprpc_registry_refused_nodes_total{reason="world_writable"} 2"#
    ));
    assert!(has("mprpc_log_dropped_lines_total 0"));
    assert!(has(r#"mprpc_known_providers{service="x.Y"} 1"#));
    assert!(text.lines().any(|l| l.starts_with("mprpc_uptime_seconds ")));
    let read = r#"service="x.Y",method="Read""#;
    assert!(has(&format!("mprpc_client_retries_total{{{read}}} 2")));
    assert!(has(&format!("mprpc_client_hedges_total{{{read}}} 1")));
    assert!(has(&format!(
        "mprpc_client_retry_budget_exhausted_total{{{read}}} 1"
    )));
    assert!(has(r#"mprpc_client_provider_ejected{address="h:1"} 1"#));
    assert!(has(
        r#"mprpc_client_provider_ejections_total{address="h:1"} 1"#
    ));
}

#[test]
fn the_adaptive_limit_and_its_shed_calls() {
    let m = Metrics::new();
    let gauge = m.track_adaptive_limit(32);
    gauge.set(12);
    gauge.shed();
    let text = render(&m.snapshot(), "none");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"mprpc_adaptive_concurrency_limit 12"),
        "{text}"
    );
    assert!(lines.contains(&"mprpc_shed_calls_total 1"), "{text}");
}

#[test]
fn buckets_are_cumulative_in_seconds() {
    let m = Metrics::new();
    m.method(Side::Client, "a.B", "C");
    let snapshot = {
        let mut s = m.snapshot();
        // 1 call of 80 µs, 2 of 20 ms, recorded through the real histogram.
        let h = crate::metrics::Histogram::default();
        h.record(Duration::from_micros(80));
        h.record(Duration::from_millis(20));
        h.record(Duration::from_millis(20));
        s.methods[0].latency = h.snapshot();
        s
    };
    let text = render(&snapshot, "none");
    let bucket = |le: &str| {
        let prefix = format!(
            "mprpc_call_duration_seconds_bucket{{side=\"client\",service=\"a.B\",method=\"C\",le=\"{le}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no bucket {le}: {text}"))
            .to_owned()
    };
    assert_eq!(bucket("0.00005"), "0");
    assert_eq!(bucket("0.0001"), "1");
    assert_eq!(bucket("0.01"), "1");
    assert_eq!(bucket("0.025"), "3");
    assert_eq!(bucket("+Inf"), "3");
    assert!(text.contains(r#"mprpc_registry_up{state="none"} 1"#));
}
