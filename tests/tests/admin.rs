//! The admin endpoint over real HTTP on 127.0.0.1: `/metrics` read back by a Prometheus text
//! parser, `/status` as JSON and as a page rendered by a real headless Chromium (its
//! screenshot read back by OCR, its DOM dumped), `/health`, and 404s.
//!
//! The browser test needs `chromium` and `tesseract` (Debian packages `chromium`,
//! `tesseract-ocr`); `scripts/test.sh` installs them. Without them it fails, it does not skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use mprpc::client::Channel;
use mprpc::config::ServerConfig;
use mprpc::metrics::{Metrics, BUCKETS_US};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::http::get;
use mprpc_tests::{wait_until, EchoClient, EchoRequest, EchoServer, EchoService};
use prometheus_parse::{Scrape, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const SERVICE: &str = "mprpc.test.Echo";
const REFLECTION: &str = "mprpc.reflection.Reflection";

/// A provider with its own counters and an admin port.
struct Provider {
    rpc: SocketAddr,
    admin: SocketAddr,
    service: EchoService,
    server: LocalServer,
}

async fn start() -> Provider {
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let admin_addr = admin.local_addr().unwrap();
    let service = EchoService::named("a");
    let server = Server::new(ServerConfig::default())
        .with_metrics(Metrics::new())
        .with_admin_listener(admin)
        .add_service(EchoServer::new(service.clone()));
    let (rpc, server) = spawn_local(server).await.expect("start provider");
    Provider {
        rpc,
        admin: admin_addr,
        service,
        server,
    }
}

/// The calls every test makes, by the code they end with.
const OK_CALLS: u64 = 5;
const NOT_FOUND_CALLS: u64 = 3;
const DENIED_CALLS: u64 = 2;

/// Makes `OK_CALLS` successful calls, `NOT_FOUND_CALLS` failing with `NotFound`,
/// `DENIED_CALLS` failing with `PermissionDenied`, and one to a method that does not exist.
async fn make_calls(channel: &Channel) {
    let client = EchoClient::new(channel.clone());
    let calls = [
        (Code::Ok, OK_CALLS),
        (Code::NotFound, NOT_FOUND_CALLS),
        (Code::PermissionDenied, DENIED_CALLS),
    ];
    for (code, n) in calls {
        for _ in 0..n {
            let reply = client
                .echo(EchoRequest {
                    payload: b"hi".to_vec(),
                    fail_code: code.as_i32(),
                    fail_message: "as asked".into(),
                    ..EchoRequest::default()
                })
                .await;
            match reply {
                Ok(_) => assert_eq!(code, Code::Ok),
                Err(status) => assert_eq!(status.code(), code, "{status}"),
            }
        }
    }
    let status = channel
        .unary_raw(SERVICE, "NoSuchMethod", Request::new(Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

/// `/metrics`, parsed; also checks that the parser took every sample line.
async fn scrape(admin: SocketAddr) -> Scrape {
    let reply = get(admin, "/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        reply.headers
    );
    let scrape = Scrape::parse(reply.body.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    // The parser skips lines it cannot read: count what it kept against the sample lines
    // (a histogram's buckets are folded into one sample).
    let sample_lines = reply
        .body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed: usize = scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(parsed, sample_lines, "every line parsed:\n{}", reply.body);
    for family in [
        "mprpc_calls_total",
        "mprpc_call_duration_seconds",
        "mprpc_calls_in_flight",
        "mprpc_rejected_calls_total",
        "mprpc_connections",
        "mprpc_registry_up",
        "mprpc_log_dropped_lines_total",
        "mprpc_uptime_seconds",
        "mprpc_known_providers",
    ] {
        assert!(
            scrape.docs.contains_key(family),
            "# HELP for {family}:\n{}",
            reply.body
        );
    }
    scrape
}

/// The value of the one sample of `metric` whose labels are exactly `labels`.
fn value<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    let found: Vec<&Value> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| &s.value)
        .collect();
    assert!(found.len() <= 1, "{metric}{labels:?} is not unique");
    found.first().copied()
}

fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(scrape, metric, labels) {
        Some(Value::Counter(v)) => *v,
        other => panic!("{metric}{labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(scrape, metric, labels) {
        Some(Value::Gauge(v)) => *v,
        other => panic!("{metric}{labels:?} is not a gauge: {other:?}"),
    }
}

/// `_sum` and `_count` of a histogram (the parser leaves them untyped).
fn untyped(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match value(scrape, metric, labels) {
        Some(Value::Untyped(v)) => *v,
        other => panic!("{metric}{labels:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_calls_made() {
    let p = start().await;
    let channel = Channel::to_address(p.rpc.to_string());
    make_calls(&channel).await;
    // One more call, slow, so that one is in flight while we scrape.
    let slow = {
        let client = EchoClient::new(channel.clone());
        tokio::spawn(async move {
            client
                .echo(EchoRequest {
                    delay_ms: 1_500,
                    ..EchoRequest::default()
                })
                .await
        })
    };
    let counters = p.service.counters.clone();
    let expected_started = (OK_CALLS + NOT_FOUND_CALLS + DENIED_CALLS + 1) as usize;
    wait_until("the slow call started", Duration::from_secs(10), || {
        counters.started.load(std::sync::atomic::Ordering::SeqCst) == expected_started
    })
    .await;

    let s = scrape(p.admin).await;
    let echo = [("side", "server"), ("service", SERVICE), ("method", "Echo")];
    let calls = |code: &str| {
        let mut labels = echo.to_vec();
        labels.push(("code", code));
        counter(&s, "mprpc_calls_total", &labels)
    };
    assert_eq!(calls("Ok"), OK_CALLS as f64);
    assert_eq!(calls("NotFound"), NOT_FOUND_CALLS as f64);
    assert_eq!(calls("PermissionDenied"), DENIED_CALLS as f64);
    let series: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == "mprpc_calls_total")
        .collect();
    assert_eq!(series.len(), 3, "one series per code seen: {series:?}");
    assert_eq!(gauge(&s, "mprpc_calls_in_flight", &echo), 1.0);
    assert_eq!(
        counter(
            &s,
            "mprpc_rejected_calls_total",
            &[("code", "Unimplemented")]
        ),
        1.0
    );
    assert_eq!(gauge(&s, "mprpc_connections", &[("side", "server")]), 1.0);
    assert_eq!(gauge(&s, "mprpc_connections", &[("side", "client")]), 0.0);
    assert_eq!(gauge(&s, "mprpc_registry_up", &[("state", "none")]), 1.0);
    assert_eq!(
        gauge(&s, "mprpc_registry_up", &[("state", "connected")]),
        0.0
    );
    assert_eq!(counter(&s, "mprpc_log_dropped_lines_total", &[]), 0.0);
    assert!(gauge(&s, "mprpc_uptime_seconds", &[]) > 0.0);

    let finished = OK_CALLS + NOT_FOUND_CALLS + DENIED_CALLS;
    check_histogram(&s, &echo, finished);

    // The slow call finishes: it is counted, and nothing is in flight any more.
    slow.await.unwrap().expect("slow call succeeds");
    let s = scrape(p.admin).await;
    let mut ok = echo.to_vec();
    ok.push(("code", "Ok"));
    assert_eq!(counter(&s, "mprpc_calls_total", &ok), (OK_CALLS + 1) as f64);
    assert_eq!(gauge(&s, "mprpc_calls_in_flight", &echo), 0.0);
    check_histogram(&s, &echo, finished + 1);
    let slow_bucket = match value(&s, "mprpc_call_duration_seconds", &echo) {
        Some(Value::Histogram(b)) => b.iter().find(|b| b.less_than == 1.0).expect("le=1").count,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        slow_bucket, finished as f64,
        "the 1.5 s call is above the 1 s bucket"
    );

    drop(channel);
    p.server.shutdown().await.unwrap();
}

/// The histogram of `labels` has every bucket, cumulative, ending in `+Inf` == `_count` ==
/// `count`, and a sum that is not negative.
fn check_histogram(s: &Scrape, labels: &[(&str, &str)], count: u64) {
    let Some(Value::Histogram(buckets)) = value(s, "mprpc_call_duration_seconds", labels) else {
        panic!("no histogram for {labels:?}");
    };
    let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
    let mut expected: Vec<f64> = BUCKETS_US.iter().map(|us| *us as f64 / 1e6).collect();
    expected.push(f64::INFINITY);
    assert_eq!(bounds, expected, "buckets in seconds, ending at +Inf");
    for pair in buckets.windows(2) {
        assert!(pair[0].count <= pair[1].count, "cumulative: {buckets:?}");
    }
    assert_eq!(buckets.last().unwrap().count, count as f64, "+Inf == count");
    assert_eq!(
        untyped(s, "mprpc_call_duration_seconds_count", labels),
        count as f64
    );
    assert!(untyped(s, "mprpc_call_duration_seconds_sum", labels) >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_health() {
    let p = start().await;
    let channel = Channel::to_address(p.rpc.to_string());
    make_calls(&channel).await;

    for path in ["/status?format=json", "/status.json"] {
        let reply = get(p.admin, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            reply.headers["content-type"].starts_with("application/json"),
            "{path}: {:?}",
            reply.headers
        );
        let json: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        assert_eq!(json["rpc_address"], p.rpc.to_string());
        assert_eq!(json["registry"], "none");
        assert_eq!(json["connections"]["server"], 1);
        assert_eq!(json["rejected"]["Unimplemented"], 1);
        let services = json["services"].as_array().expect("services");
        let names: Vec<&str> = services
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&SERVICE), "{names:?}");
        assert!(names.contains(&REFLECTION), "{names:?}");
        let echo = services.iter().find(|s| s["name"] == SERVICE).unwrap();
        let method = &echo["methods"][0];
        assert_eq!(method["name"], "Echo");
        assert_eq!(method["calls"], OK_CALLS + NOT_FOUND_CALLS + DENIED_CALLS);
        assert_eq!(method["errors"], NOT_FOUND_CALLS + DENIED_CALLS);
        assert_eq!(method["in_flight"], 0);
        assert_eq!(method["codes"]["Ok"], OK_CALLS);
        assert_eq!(method["codes"]["NotFound"], NOT_FOUND_CALLS);
        assert_eq!(method["codes"]["PermissionDenied"], DENIED_CALLS);
        for q in ["p50_ms", "p90_ms", "p99_ms"] {
            assert!(
                method[q].as_f64().is_some_and(|v| v >= 0.0),
                "{q}: {method}"
            );
        }
    }

    let health = get(p.admin, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body.trim(), "ok registry=none");

    drop(channel);
    p.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_and_the_port_closes_on_shutdown() {
    let p = start().await;
    for path in ["/", "/nope", "/metrics/extra", "/status.html"] {
        let reply = get(p.admin, path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("not found"), "{path}: {}", reply.body);
    }
    let page = get(p.admin, "/status").await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert!(page.body.contains(SERVICE));

    let admin = p.admin;
    p.server.shutdown().await.unwrap();
    wait_until("the admin port is closed", Duration::from_secs(5), || {
        std::net::TcpStream::connect(admin).is_err()
    })
    .await;
}

/// Runs `program args` in a process group of its own, with a time limit; kills the whole
/// group (a browser's helper processes included) when it ends or hangs. Returns stdout.
async fn run(program: &Path, args: &[String], limit: Duration) -> String {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let pgid = nix::unistd::Pid::from_raw(child.id().expect("running") as i32);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let outcome = tokio::time::timeout(limit, async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (read_out, read_err, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        read_out.unwrap();
        read_err.unwrap();
        (status.unwrap(), out, err)
    })
    .await;
    // Whatever happened, nothing of the group outlives the call.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let (status, out, err) =
        outcome.unwrap_or_else(|_| panic!("{} hung for {limit:?}; killed", program.display()));
    assert!(
        status.success(),
        "{} {args:?} failed ({status}): {}",
        program.display(),
        String::from_utf8_lossy(&err)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// The program's path, or a failure saying how to install it.
fn program(name: &str, package: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which installs it (apt-get install {package})",
        path.display()
    );
    path
}

/// Lower case, without white space: OCR puts spaces and case where it likes.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_a_real_browser() {
    let chromium = program("chromium", "chromium");
    let tesseract = program("tesseract", "tesseract-ocr");
    let p = start().await;
    let channel = Channel::to_address(p.rpc.to_string());
    make_calls(&channel).await;
    let url = format!("http://{}/status", p.admin);
    let browser_args = |profile: &Path| {
        [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<String>>()
    };
    let limit = Duration::from_secs(90);

    // The DOM the browser built: one row per hosted method, with the counts.
    let profile = tempfile::tempdir().unwrap();
    let mut args = browser_args(profile.path());
    args.extend(["--dump-dom".to_owned(), url.clone()]);
    let dom = run(&chromium, &args, limit).await;
    let calls = OK_CALLS + NOT_FOUND_CALLS + DENIED_CALLS;
    for row in [
        format!("<tr data-service=\"{SERVICE}\" data-method=\"Echo\">"),
        format!("<tr data-service=\"{REFLECTION}\" data-method=\"ListServices\">"),
        format!("<tr data-service=\"{REFLECTION}\" data-method=\"GetFileDescriptorSet\">"),
        format!("<td class=\"method\">Echo</td><td class=\"num calls\">{calls}</td>"),
    ] {
        assert!(dom.contains(&row), "the DOM has {row}:\n{dom}");
    }
    assert!(dom.contains("NotFound 3, PermissionDenied 2"), "{dom}");
    assert!(
        dom.contains(&format!("<td id=\"address\">{}</td>", p.rpc)),
        "{dom}"
    );

    // What a person sees: a screenshot, read back by OCR.
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("status.png");
    let mut args = browser_args(&profile.path().join("profile"));
    args.extend([
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,900".to_owned(),
        url,
    ]);
    run(&chromium, &args, limit).await;
    assert!(shot.exists(), "chromium wrote no screenshot");
    if let Ok(keep) = std::env::var("MPRPC_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let text = run(
        &tesseract,
        &[shot.display().to_string(), "stdout".to_owned()],
        limit,
    )
    .await;
    let seen = normalize(&text);
    for expected in [SERVICE, REFLECTION, "mprpc provider", "Known providers"] {
        assert!(
            seen.contains(&normalize(expected)),
            "OCR of the page shows {expected:?}; it read:\n{text}"
        );
    }
    // The check can fail: a service this provider does not host is not on the page.
    for absent in ["fixbug.UserServiceRpc", "mprpc.test.Missing"] {
        assert!(
            !seen.contains(&normalize(absent)),
            "OCR found {absent:?}, which is not on the page:\n{text}"
        );
    }

    drop(channel);
    p.server.shutdown().await.unwrap();
}
