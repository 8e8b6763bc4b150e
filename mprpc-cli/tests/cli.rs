//! The `mprpc` command against providers started in this process on `127.0.0.1:0`, reached
//! with `--addr` or through a static registry: list, describe, call (replies, error statuses
//! and their exit codes, metadata, timeouts) and bench.

mod common;

use std::collections::HashMap;

use common::{cli, cli_ok, echo_provider, examples_provider, ConfigFile};

const FRIENDS: &str = "fixbug.FriendServiceRpc/GetFriendsList";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_addr_shows_the_services_and_methods_of_the_provider() {
    let (addr, provider) = examples_provider().await;
    let addr = addr.to_string();
    let run = cli_ok(&["--addr", &addr, "list"]).await;
    assert!(run.stdout.contains(&addr), "{run}");
    let row = |service: &str| {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(service))
            .unwrap_or_else(|| panic!("no row for {service}:\n{run}"))
            .to_owned()
    };
    assert!(
        row("fixbug.UserServiceRpc").contains("Login, Register"),
        "{run}"
    );
    assert!(
        row("fixbug.FriendServiceRpc").contains("GetFriendsList"),
        "{run}"
    );
    assert!(
        row("mprpc.reflection.Reflection").contains("ListServices"),
        "{run}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_through_a_static_registry_shows_each_provider() {
    let (addr, provider) = examples_provider().await;
    let config = ConfigFile::new(&format!(
        "[registry]\nkind = \"static\"\n[registry.services]\n\
         \"fixbug.UserServiceRpc\" = [\"{addr}\", \"127.0.0.1:1\"]\n"
    ));
    let run = cli_ok(&["-i", config.arg(), "list"]).await;
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    // A static list knows no weight beyond the default, no version and no start time.
    assert_eq!(
        rows,
        vec![
            vec!["fixbug.UserServiceRpc", &addr.to_string(), "100", "?", "?"],
            vec!["fixbug.UserServiceRpc", "127.0.0.1:1", "100", "?", "?"],
        ],
        "{run}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_methods_with_their_messages() {
    let (addr, provider) = examples_provider().await;
    let run = cli_ok(&[
        "--addr",
        &addr.to_string(),
        "describe",
        "fixbug.UserServiceRpc",
    ])
    .await;
    let out = &run.stdout;
    for expected in [
        "rpc Register(fixbug.RegisterRequest) returns (fixbug.RegisterResponse);",
        "message fixbug.LoginRequest {\n  bytes name = 1;\n  bytes pwd = 2;\n}",
        "message fixbug.LoginResponse {\n  fixbug.ResultCode result = 1;\n  bool success = 2;\n}",
        // Reached through LoginResponse.result.
        "message fixbug.ResultCode {\n  int32 errcode = 1;\n  bytes errmsg = 2;\n}",
        // The .proto file's comments come along, and the method options mprpc uses.
        "  // Checks a user's name and password.",
        "it on another provider (see docs/RESILIENCE.md).\n  rpc Login",
        "rpc Login(fixbug.LoginRequest) returns (fixbug.LoginResponse) {\n    option idempotency_level = IDEMPOTENT;\n  }",
    ] {
        assert!(out.contains(expected), "missing `{expected}`:\n{run}");
    }
    provider.shutdown().await.unwrap();
}

/// `{"friends": [...]}` with the three friends, base64 as proto3 JSON writes `bytes`.
fn assert_three_friends(stdout: &str) {
    let reply: serde_json::Value = serde_json::from_str(stdout).expect("the reply is JSON");
    assert_eq!(
        reply["friends"],
        serde_json::json!([
            "Z2FvIHlhbmc=", // "gao yang"
            "bGl1IGhvbmc=", // "liu hong"
            "d2FuZyBzaHVv", // "wang shuo"
        ]),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_turns_json_into_a_call_and_the_reply_into_json() {
    let (addr, provider) = examples_provider().await;
    let addr = addr.to_string();
    let run = cli_ok(&[
        "--addr",
        &addr,
        "call",
        FRIENDS,
        "--data",
        r#"{"userid": 1000}"#,
    ])
    .await;
    assert_three_friends(&run.stdout);

    // Through a registry instead of --addr.
    let config = ConfigFile::new(&format!(
        "[registry]\nkind = \"static\"\n[registry.services]\n\
         \"fixbug.FriendServiceRpc\" = [\"{addr}\"]\n"
    ));
    let run = cli_ok(&[
        "-i",
        config.arg(),
        "call",
        FRIENDS,
        "-d",
        r#"{"userid": 7}"#,
    ])
    .await;
    assert_three_friends(&run.stdout);

    // Defaults are left out unless asked for.
    let run = cli_ok(&["--addr", &addr, "call", "fixbug.UserServiceRpc/Login"]).await;
    let reply: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"result": {"errcode": 1, "errmsg": "dW5rbm93biB1c2VyIG9yIHdyb25nIHBhc3N3b3Jk"}}),
        "{run}"
    );
    let run = cli_ok(&[
        "--addr",
        &addr,
        "call",
        "fixbug.UserServiceRpc/Login",
        "--emit-defaults",
    ])
    .await;
    let reply: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reply["success"], serde_json::json!(false), "{run}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_failures_exit_with_ten_plus_the_status_code() {
    let (addr, provider) = echo_provider().await;
    let addr = addr.to_string();
    let echo = |data: &'static str| {
        let addr = addr.clone();
        async move { cli(&["--addr", &addr, "call", "mprpc.test.Echo/Echo", "-d", data]).await }
    };

    let run = echo(r#"{"failCode": 5, "failMessage": "no such user"}"#).await;
    assert_eq!(run.code, Some(15), "{run}");
    assert_eq!(run.stderr.trim(), "ERROR: NotFound: no such user", "{run}");
    assert!(run.stdout.is_empty(), "{run}");

    let run = echo(r#"{"failCode": 7}"#).await;
    assert_eq!(run.code, Some(17), "{run}");
    assert!(run.stderr.starts_with("ERROR: PermissionDenied"), "{run}");

    // An unknown method, and an unknown service, are Unimplemented, as a typed client sees.
    let run = cli(&["--addr", &addr, "call", "mprpc.test.Echo/Nope"]).await;
    assert_eq!(run.code, Some(22), "{run}");
    assert!(run.stderr.starts_with("ERROR: Unimplemented: "), "{run}");
    assert!(run.stderr.contains("Nope"), "{run}");
    let run = cli(&["--addr", &addr, "call", "mprpc.test.Nope/Echo"]).await;
    assert_eq!(run.code, Some(22), "{run}");

    // The call's budget is --timeout.
    let run = cli(&[
        "--addr",
        &addr,
        "--timeout",
        "200ms",
        "call",
        "mprpc.test.Echo/Echo",
        "-d",
        r#"{"delayMs": 5000}"#,
    ])
    .await;
    assert_eq!(run.code, Some(14), "{run}");
    assert!(run.stderr.starts_with("ERROR: DeadlineExceeded"), "{run}");

    // Bad JSON and bad usage exit 2.
    for args in [
        &[
            "--addr",
            &addr,
            "call",
            "mprpc.test.Echo/Echo",
            "-d",
            r#"{"nope": 1}"#,
        ][..],
        &["--addr", &addr, "call", "mprpc.test.Echo/Echo", "-d", "{"],
        &["--addr", &addr, "call", "mprpc.test.Echo"],
        &[
            "--addr",
            &addr,
            "call",
            "mprpc.test.Echo/Echo",
            "-H",
            "novalue",
        ],
    ] {
        let run = cli(args).await;
        assert_eq!(run.code, Some(2), "{args:?}: {run}");
    }
    provider.shutdown().await.unwrap();

    // Nobody listens there any more.
    let run = cli(&["--addr", &addr, "call", "mprpc.test.Echo/Echo"]).await;
    assert_eq!(run.code, Some(24), "{run}");
    assert!(run.stderr.starts_with("ERROR: Unavailable"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sends_the_metadata_given_with_h() {
    let (addr, provider) = echo_provider().await;
    let run = cli_ok(&[
        "--addr",
        &addr.to_string(),
        "call",
        "mprpc.test.Echo/Echo",
        "-H",
        "tenant=acme",
        "--metadata",
        "trace=1",
        "-d",
        r#"{"metadataKey": "tenant", "payload": "aGk="}"#,
    ])
    .await;
    let reply: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reply["metadataValue"], "acme", "{run}");
    assert_eq!(reply["payload"], "aGk=", "{run}");
    assert_eq!(reply["servedBy"], "echo", "{run}");
    provider.shutdown().await.unwrap();
}

/// The `key: value` lines of a bench summary.
fn summary(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(summary: &HashMap<String, String>, key: &str) -> f64 {
    let value = summary
        .get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {summary:?}"));
    value
        .trim_end_matches(" ms")
        .parse()
        .unwrap_or_else(|e| panic!("`{key}: {value}`: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_a_summary_that_parses() {
    let (addr, provider) = examples_provider().await;
    let run = cli_ok(&[
        "--addr",
        &addr.to_string(),
        "bench",
        FRIENDS,
        "--data",
        r#"{"userid": 1000}"#,
        "--duration",
        "1s",
        "--concurrency",
        "4",
    ])
    .await;
    let s = summary(&run.stdout);
    assert_eq!(s["method"], FRIENDS, "{run}");
    assert!(number(&s, "calls") > 0.0, "{run}");
    assert!(number(&s, "calls/s") > 0.0, "{run}");
    assert_eq!(number(&s, "errors"), 0.0, "{run}");
    let p = |key| number(&s, key);
    assert!(p("p50") > 0.0, "{run}");
    assert!(p("p50") <= p("p90"), "{run}");
    assert!(p("p90") <= p("p99"), "{run}");
    assert!(p("p99") <= p("p999"), "{run}");
    assert!(p("p999") <= p("max"), "{run}");
    // stderr is not a terminal here: no progress bar.
    assert!(run.stderr.is_empty(), "{run}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_open_loop_keeps_the_rate_and_counts_errors_by_code() {
    let (addr, provider) = echo_provider().await;
    let run = cli_ok(&[
        "--addr",
        &addr.to_string(),
        "bench",
        "mprpc.test.Echo/Echo",
        "--data",
        r#"{"failCode": 5}"#,
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--rate",
        "200",
        "--json",
    ])
    .await;
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");
    let calls = s["calls"].as_u64().expect("calls");
    // 200 calls are due in the measured second; the warm-up's 40 are not counted.
    assert!((195..=205).contains(&calls), "{run}");
    assert_eq!(s["errors"].as_u64(), Some(calls), "{run}");
    assert_eq!(
        (s["ok"].as_u64(), s["not_sent"].as_u64()),
        (Some(0), Some(0)),
        "{run}"
    );
    assert_eq!(s["ok_per_s"].as_f64(), Some(0.0), "{run}");
    assert_eq!(
        s["errors_by_code"],
        serde_json::json!({"NotFound": calls}),
        "{run}"
    );
    assert_eq!(s["mode"], "open", "{run}");
    let p50 = s["latency_ms"]["p50"].as_f64().unwrap();
    let p99 = s["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{run}");
    assert_eq!(
        s["ok_latency_ms"]["p99"].as_f64(),
        Some(0.0),
        "no success: {run}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_open_loop_sends_on_schedule_whatever_the_replies() {
    let (addr, provider) = echo_provider().await;
    // Calls of 400 ms at 40 a second: a closed loop would wait for each; the open loop
    // keeps sending, up to 8 unanswered, and counts the calls due past that as not sent.
    let run = cli_ok(&[
        "--addr",
        &addr.to_string(),
        "bench",
        "mprpc.test.Echo/Echo",
        "--data",
        r#"{"delayMs": 400}"#,
        "--duration",
        "1s",
        "--rate",
        "40",
        "--max-outstanding",
        "8",
    ])
    .await;
    let s = summary(&run.stdout);
    assert_eq!(
        s["mode"], "open loop, rate 40 calls/s, at most 8 outstanding",
        "{run}"
    );
    let (calls, not_sent) = (number(&s, "calls"), number(&s, "not sent"));
    assert_eq!(
        calls + not_sent,
        40.0,
        "every call due is sent or counted: {run}"
    );
    assert!(not_sent > 0.0 && calls >= 8.0, "{run}");
    assert_eq!(number(&s, "ok"), calls, "{run}");
    assert_eq!(number(&s, "ok/s"), calls, "one second measured: {run}");
    assert!(
        !s.contains_key("ok p99"),
        "no failure, no second set: {run}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_concurrency_is_for_the_closed_loop() {
    let run = cli(&[
        "--addr",
        "127.0.0.1:1",
        "bench",
        "mprpc.test.Echo/Echo",
        "--rate",
        "10",
        "--concurrency",
        "4",
    ])
    .await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("--concurrency"), "{run}");
    let run = cli(&[
        "--addr",
        "127.0.0.1:1",
        "bench",
        "a.B/C",
        "--max-outstanding",
        "4",
    ])
    .await;
    assert_eq!(run.code, Some(2), "--max-outstanding needs --rate: {run}");
}
