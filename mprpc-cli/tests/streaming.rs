//! The `mprpc` command on the streaming methods of the test service `mprpc.test.Echo`,
//! hosted in this process on `127.0.0.1:0`: `Subscribe` (server streaming) printed as JSON
//! lines, a failure mid-stream, `Upload` (client streaming) fed JSON lines from stdin, a file
//! or `--data`, a bad line, `Chat` (bidirectional) answering each line as it is written, and
//! `bench` on each kind.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{cli, cli_ok, command, echo_provider, Run, RUN_LIMIT};
use mprpc::config::ServerConfig;
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc_tests::{Counters, EchoServer, EchoService};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SUBSCRIBE: &str = "mprpc.test.Echo/Subscribe";
const UPLOAD: &str = "mprpc.test.Echo/Upload";
const CHAT: &str = "mprpc.test.Echo/Chat";

/// The longest a test waits for one line of output, or for the provider to see something.
const WAIT: Duration = Duration::from_secs(10);

/// Each line of `stdout` as JSON.
fn json_lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is not JSON: {e}\n{run}"))
        })
        .collect()
}

/// A reply's `seq` (a uint64, so a string in JSON; left out when 0).
fn seq(reply: &Value) -> u64 {
    reply["seq"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .expect("seq is a number")
}

/// Runs the binary with `input` on its stdin, to the end (at most [`RUN_LIMIT`]).
async fn cli_with_stdin(args: &[&str], input: &str) -> Run {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("mprpc runs");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("mprpc {args:?} did not finish within {RUN_LIMIT:?}"))
        .expect("mprpc runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A provider of the test service whose counters the test keeps.
async fn counted_provider() -> (SocketAddr, LocalServer, Arc<Counters>) {
    let service = EchoService::named("echo");
    let counters = service.counters.clone();
    let server = Server::new(ServerConfig::default()).add_service(EchoServer::new(service));
    let (addr, provider) = spawn_local(server).await.expect("the echo provider starts");
    (addr, provider, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_prints_one_json_line_per_reply() {
    let (addr, provider) = echo_provider().await;
    let addr = addr.to_string();
    let data = r#"{"count": 5, "size": 3}"#;
    let run = cli_ok(&["--addr", &addr, "call", SUBSCRIBE, "-d", data]).await;
    let replies = json_lines(&run);
    assert_eq!(replies.len(), 5, "{run}");
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(seq(reply), i as u64, "{run}");
        assert_eq!(reply["payload"], "eHh4", "{run}"); // "xxx"
        assert_eq!(reply["servedBy"], "echo", "{run}");
    }
    assert!(run.stderr.is_empty(), "{run}");
    // --emit-defaults prints the zeros too, still one line each.
    let data = r#"{"count": 2}"#;
    let run = cli_ok(&[
        "--addr",
        &addr,
        "call",
        SUBSCRIBE,
        "-d",
        data,
        "--emit-defaults",
    ])
    .await;
    let replies = json_lines(&run);
    assert_eq!(replies.len(), 2, "{run}");
    assert_eq!(replies[0]["seq"], "0", "{run}");
    assert_eq!(replies[0]["messages"], "0", "{run}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_midway_prints_its_replies_then_the_error_and_exits_with_its_code() {
    let (addr, provider) = echo_provider().await;
    let data = r#"{"count": 3, "failCode": 5, "failMessage": "the feed is gone"}"#;
    let run = cli(&["--addr", &addr.to_string(), "call", SUBSCRIBE, "-d", data]).await;
    assert_eq!(run.code, Some(15), "NotFound is 10 + 5:\n{run}");
    let seqs: Vec<u64> = json_lines(&run).iter().map(seq).collect();
    assert_eq!(seqs, [0, 1, 2], "{run}");
    assert_eq!(
        run.stderr.trim_end(),
        "ERROR: NotFound: the feed is gone",
        "{run}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_sends_each_line_of_stdin_and_prints_the_one_reply() {
    let (addr, provider) = echo_provider().await;
    let addr = addr.to_string();
    // "abc" and "d": 2 requests of 4 bytes, an empty one, and blank lines that are skipped.
    let input = "{\"payload\": \"YWJj\"}\n\n  \n{\"payload\": \"ZA==\"}\r\n{}";
    let run = cli_with_stdin(&["--addr", &addr, "call", UPLOAD], input).await;
    assert_eq!(run.code, Some(0), "{run}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(reply["messages"], "3", "{run}");
    assert_eq!(reply["bytes"], "4", "{run}");
    assert!(
        run.stdout.lines().count() > 1,
        "printed pretty, as a unary reply:\n{run}"
    );

    // From a file, and from --data itself.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.jsonl");
    std::fs::write(&file, "{\"payload\": \"YQ==\"}\n".repeat(7)).unwrap();
    let at_file = format!("@{}", file.display());
    let run = cli_ok(&["--addr", &addr, "call", UPLOAD, "-d", &at_file]).await;
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (&reply["messages"], &reply["bytes"]),
        (&"7".into(), &"7".into()),
        "{run}"
    );
    let run = cli_ok(&["--addr", &addr, "call", UPLOAD, "-d", "{}\n{}"]).await;
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reply["messages"], "2", "{run}");
    // No lines at all: no requests, and the provider still answers.
    let run = cli_with_stdin(&["--addr", &addr, "call", UPLOAD, "--emit-defaults"], "").await;
    assert_eq!(run.code, Some(0), "{run}");
    let reply: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reply["messages"], "0", "{run}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_names_its_number_exits_2_and_cancels_the_call() {
    let (addr, provider, counters) = counted_provider().await;
    let addr = addr.to_string();
    let input = "{}\n\n{\"nope\": 1}\n{}\n";
    let run = cli_with_stdin(&["--addr", &addr, "call", UPLOAD], input).await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(
        run.stderr.starts_with(
            "error: stdin line 3: the request is not a valid mprpc.test.StreamRequest in JSON"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("nope"), "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stdout.is_empty(),
        "no reply to a call cut short:\n{run}"
    );
    // The provider's handler never saw the end of the requests: it was cancelled (or, when
    // the command exited before its writer sent the request, it never started).
    let deadline = tokio::time::Instant::now() + WAIT;
    while counters.abandoned.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        counters.abandoned.load(Ordering::SeqCst),
        counters.started.load(Ordering::SeqCst),
        "the upload was not cancelled"
    );
    assert_eq!(counters.finished.load(Ordering::SeqCst), 0);
    // A bad line from --data is named as such.
    let run = cli(&[
        "--addr",
        &addr,
        "call",
        "mprpc.test.Echo/Chat",
        "-d",
        "{\"count\": \"x\"}",
    ])
    .await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.starts_with("error: --data line 1: "), "{run}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_stream_answers_each_line_as_it_is_written() {
    let (addr, provider) = echo_provider().await;
    let mut child = command(&["--addr", &addr.to_string(), "call", CHAT])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mprpc runs");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
    // Each reply comes while stdin is still open: the lines are streamed, not read to the end.
    for (i, (payload, count)) in [("aGk=", 1), ("eW8=", 2)].into_iter().enumerate() {
        let line = format!("{{\"payload\": \"{payload}\", \"count\": {count}}}\n");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        for _ in 0..count {
            let reply = tokio::time::timeout(WAIT, stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no reply to line {i} within {WAIT:?}"))
                .unwrap()
                .expect("a reply line");
            let reply: Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(reply["payload"], payload, "{reply}");
        }
    }
    drop(stdin);
    let rest = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, None, "nothing after the replies");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_streams_and_reports_messages_per_second() {
    let (addr, provider) = echo_provider().await;
    let addr = addr.to_string();
    let base = ["--addr", addr.as_str(), "bench", "-c", "2", "-D", "1s"];
    let number = |run: &Run, key: &str| -> f64 {
        let prefix = format!("{key}: ");
        let line = run.stdout.lines().find_map(|l| l.strip_prefix(&prefix));
        let line = line.unwrap_or_else(|| panic!("no `{key}` line:\n{run}"));
        line.parse().unwrap_or_else(|e| panic!("{key}: {e}\n{run}"))
    };

    let data = r#"{"count": 50, "size": 64}"#;
    let run = cli_ok(&[&base[..], &[SUBSCRIBE, "-d", data]].concat()).await;
    assert!(
        run.stdout
            .contains("mode: server-streaming, concurrency 2\n"),
        "{run}"
    );
    assert!(run.stdout.contains("counted: replies received\n"), "{run}");
    assert!(number(&run, "messages/s") > 0.0, "{run}");
    assert!(number(&run, "MiB/s") > 0.0, "{run}");
    assert!(
        number(&run, "streams ended") > 2.0,
        "streams are reopened:\n{run}"
    );
    assert_eq!(number(&run, "errors"), 0.0, "{run}");

    let data = r#"{"payload": "AAAAAAAAAAA="}"#;
    let run = cli_ok(&[&base[..], &[UPLOAD, "-d", data, "--json"]].concat()).await;
    let summary: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(summary["mode"], "client-streaming", "{run}");
    assert_eq!(summary["counted"], "sent", "{run}");
    assert!(summary["messages_per_s"].as_f64().unwrap() > 0.0, "{run}");
    assert_eq!(
        summary["streams_ended"], 2,
        "each stream's reply came:\n{run}"
    );
    assert_eq!(summary["errors"], 0, "{run}");

    let run = cli_ok(&[&base[..], &[CHAT, "-d", data]].concat()).await;
    assert!(number(&run, "messages/s") > 0.0, "{run}");
    assert!(number(&run, "requests sent") > 0.0, "{run}");

    // A failing stream is counted under its code, not fatal.
    let data = r#"{"count": 1, "failCode": 8}"#;
    let run = cli_ok(&[&base[..], &[SUBSCRIBE, "-d", data]].concat()).await;
    assert!(number(&run, "error ResourceExhausted") > 0.0, "{run}");

    let run = cli(&[
        "--addr", &addr, "bench", SUBSCRIBE, "-D", "1s", "--rate", "10",
    ])
    .await;
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("--rate is for unary methods"), "{run}");
    provider.shutdown().await.unwrap();
}
