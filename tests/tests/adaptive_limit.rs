//! The adaptive concurrency limit (`[server.adaptive_limit]`) under overload, over real TCP.
//!
//! The provider models a fixed capacity whatever the machine: every call holds one of
//! `PERMITS` permits for `HOLD_MS` (a pool of workers), so it serves `CAPACITY` calls a
//! second and the calls beyond that queue for a permit. An open loop offers three times
//! that. With the adaptive limit, the calls it admits keep a p99 within a small multiple of
//! the unloaded p99, and the rest are refused `ResourceExhausted` without running; with the
//! static limits only, the same load is printed for contrast (every call queues). And the
//! limit is on the admin pages.
//! The algorithm itself, on synthetic windows (very fast methods included), is tested in
//! `mprpc/src/server/layer/adaptive/tests.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::{AdaptiveLimitConfig, ServerConfig};
use mprpc::metrics::Metrics;
use mprpc::server::layer::{from_fn, Next, ServerCall};
use mprpc::server::{spawn_local, LocalServer, Server};
use mprpc::{Code, Request};
use mprpc_tests::http::get;
use mprpc_tests::{Counters, EchoClient, EchoRequest, EchoServer, EchoService};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Calls the provider serves at once.
const PERMITS: usize = 2;
/// How long each call holds its permit.
const HOLD_MS: u32 = 20;
/// Calls per second the provider can serve.
const CAPACITY: f64 = PERMITS as f64 * 1000.0 / HOLD_MS as f64;
/// The offered load, as a multiple of the capacity.
const OVERLOAD: f64 = 3.0;
/// How long the overload lasts.
const RUN: Duration = Duration::from_secs(4);
/// Calls sent before this, into the overload, are not judged: the limit is finding its level.
const SETTLE: Duration = Duration::from_millis(1500);
/// Each call's budget.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The ceiling of the test's adaptive limit.
const MAX_LIMIT: usize = 64;

/// The most admitted calls in flight at once, as a user layer (inside every limit) sees them.
#[derive(Debug, Default)]
struct Peak {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// A provider of `CAPACITY` calls a second.
struct Provider {
    client: EchoClient,
    handle: LocalServer,
    metrics: Metrics,
    counters: Arc<Counters>,
    peak: Arc<Peak>,
}

async fn provider(adaptive_limit: Option<AdaptiveLimitConfig>) -> Provider {
    let service = EchoService {
        capacity: Some(Arc::new(Semaphore::new(PERMITS))),
        extra_delay_ms: HOLD_MS,
        ..EchoService::named("slow")
    };
    let counters = service.counters.clone();
    let metrics = Metrics::new();
    let peak = Arc::new(Peak::default());
    let counting = peak.clone();
    let config = ServerConfig {
        adaptive_limit,
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .with_metrics(metrics.clone())
        .layer(from_fn(move |call: ServerCall, next: Next| {
            let peak = counting.clone();
            async move {
                let now = peak.now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.most.fetch_max(now, Ordering::SeqCst);
                let outcome = next.run(call).await;
                peak.now.fetch_sub(1, Ordering::SeqCst);
                outcome
            }
        }))
        .add_service(EchoServer::new(service));
    let (addr, handle) = spawn_local(server).await.expect("start the provider");
    Provider {
        client: EchoClient::new(Channel::to_address(addr.to_string())),
        handle,
        metrics,
        counters,
        peak,
    }
}

/// One call's fate.
struct Fate {
    /// When it was sent, from the start of the load.
    sent: Duration,
    latency: Duration,
    /// Its code, and the message of a failure.
    code: Code,
    message: String,
}

async fn call(client: EchoClient, start: Instant) -> Fate {
    let sent = start.elapsed();
    let began = Instant::now();
    let request = Request::new(EchoRequest::default()).with_timeout(TIMEOUT);
    let outcome = client.echo(request).await;
    let latency = began.elapsed();
    let (code, message) = match outcome {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    };
    Fate {
        sent,
        latency,
        code,
        message,
    }
}

/// Calls to the provider with no queue: two callers (of `PERMITS` permits), closed loop.
async fn unloaded(client: &EchoClient) -> Vec<Fate> {
    let start = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..2 {
        let client = client.clone();
        callers.spawn(async move {
            let mut fates = Vec::new();
            for _ in 0..50 {
                fates.push(call(client.clone(), start).await);
            }
            fates
        });
    }
    let mut fates = Vec::new();
    while let Some(some) = callers.join_next().await {
        fates.extend(some.expect("a caller"));
    }
    fates
}

/// `rate` calls a second for `RUN`, each sent on schedule whether or not the others were
/// answered; every call ends by its timeout.
async fn open_loop(client: &EchoClient, rate: f64) -> Vec<Fate> {
    let start = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut calls = JoinSet::new();
    let total = (rate * RUN.as_secs_f64()) as usize;
    for _ in 0..total {
        ticks.tick().await;
        calls.spawn(call(client.clone(), start));
    }
    let mut fates = Vec::with_capacity(total);
    while let Some(fate) = calls.join_next().await {
        fates.push(fate.expect("a call's task"));
    }
    fates
}

/// The `q` quantile of `latencies`.
fn quantile(mut latencies: Vec<Duration>, q: f64) -> Duration {
    latencies.sort();
    let i = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
    latencies.get(i).copied().unwrap_or_default()
}

/// What the judged part of an overload run came to.
struct Figures {
    sent: usize,
    ok: usize,
    ok_p50: Duration,
    ok_p99: Duration,
    refused_p99: Duration,
    codes: BTreeMap<String, usize>,
    /// Seconds the judged calls were sent over.
    seconds: f64,
}

impl Figures {
    fn of(fates: &[Fate]) -> Figures {
        let judged: Vec<&Fate> = fates.iter().filter(|f| f.sent >= SETTLE).collect();
        let latencies = |ok: bool| -> Vec<Duration> {
            judged
                .iter()
                .filter(|f| (f.code == Code::Ok) == ok)
                .map(|f| f.latency)
                .collect()
        };
        let mut codes = BTreeMap::new();
        for fate in &judged {
            *codes.entry(fate.code.as_str().to_owned()).or_default() += 1;
        }
        Figures {
            sent: judged.len(),
            ok: latencies(true).len(),
            ok_p50: quantile(latencies(true), 0.5),
            ok_p99: quantile(latencies(true), 0.99),
            refused_p99: quantile(latencies(false), 0.99),
            codes,
            seconds: (RUN - SETTLE).as_secs_f64(),
        }
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let goodput = self.ok as f64 / self.seconds;
        write!(
            f,
            "{} calls, goodput {goodput:.0}/s ({:.0}% of the capacity), ok p50 {:?} p99 {:?}, \
             failed p99 {:?}, codes {:?}",
            self.sent,
            100.0 * goodput / CAPACITY,
            self.ok_p50,
            self.ok_p99,
            self.refused_p99,
            self.codes
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_3x_overload_the_excess_is_shed_and_the_admitted_keep_their_latency() {
    let limit = AdaptiveLimitConfig {
        min_limit: 2,
        max_limit: MAX_LIMIT,
        initial_limit: 16,
        window: Duration::from_millis(100),
        min_samples: 10,
        ..AdaptiveLimitConfig::default()
    };
    let adaptive = provider(Some(limit)).await;
    let before = unloaded(&adaptive.client).await;
    let fates = open_loop(&adaptive.client, OVERLOAD * CAPACITY).await;
    // The unloaded p99 before the overload and after it, the larger: a machine that got
    // busier meanwhile (it is shared) slows both sides of the comparison.
    let after = unloaded(&adaptive.client).await;
    let quiet: Vec<&Fate> = before.iter().chain(&after).collect();
    assert!(
        quiet.iter().all(|f| f.code == Code::Ok),
        "unloaded calls fail"
    );
    let p99 = |fates: &[Fate]| quantile(fates.iter().map(|f| f.latency).collect(), 0.99);
    let unloaded_p99 = p99(&before).max(p99(&after));
    let figures = Figures::of(&fates);
    println!(
        "unloaded: p99 {:?} before, {:?} after ({} calls each)",
        p99(&before),
        p99(&after),
        before.len()
    );
    println!("adaptive limit: {figures}");

    // The admitted calls keep their latency.
    assert!(
        figures.ok_p99 <= unloaded_p99 * 4,
        "admitted p99 {:?} is over 4x the unloaded p99 {unloaded_p99:?}",
        figures.ok_p99
    );
    // The rest are refused at once, by the adaptive limit, and never reach the handler.
    let refused: Vec<&Fate> = fates.iter().filter(|f| f.code != Code::Ok).collect();
    assert!(!refused.is_empty(), "nothing was shed under 3x overload");
    for fate in &refused {
        assert_eq!(fate.code, Code::ResourceExhausted, "{}", fate.message);
        assert!(
            fate.message.contains("adaptive concurrency limit of"),
            "{}",
            fate.message
        );
    }
    let all_calls = quiet.len() + fates.len();
    assert_eq!(
        adaptive.counters.started.load(Ordering::SeqCst),
        all_calls - refused.len(),
        "a shed call ran the handler"
    );
    let snapshot = adaptive.metrics.snapshot();
    assert_eq!(snapshot.shed_calls, refused.len() as u64);
    let gauge = snapshot
        .adaptive_limit
        .expect("the limit is in the metrics");
    assert!((2..=MAX_LIMIT as u64).contains(&gauge), "{gauge}");
    // Memory stays bounded: never more admitted calls at once than the ceiling.
    let most = adaptive.peak.most.load(Ordering::SeqCst);
    assert!(most <= MAX_LIMIT, "{most} calls admitted at once");
    println!("adaptive limit: at most {most} calls admitted at once, limit now {gauge}");
    adaptive.handle.shutdown().await.expect("shut down");

    // The contrast, printed and not judged: the static limits only.
    let plain = provider(None).await;
    let figures = Figures::of(&open_loop(&plain.client, OVERLOAD * CAPACITY).await);
    println!("static limits only: {figures}");
    println!(
        "static limits only: at most {} calls admitted at once",
        plain.peak.most.load(Ordering::SeqCst)
    );
    plain.handle.shutdown().await.expect("shut down");
}

#[tokio::test]
async fn the_limit_is_on_the_admin_pages() {
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the admin port");
    let admin_addr = admin.local_addr().expect("its address");
    let config = ServerConfig {
        adaptive_limit: Some(AdaptiveLimitConfig {
            initial_limit: 24,
            ..AdaptiveLimitConfig::default()
        }),
        ..ServerConfig::default()
    };
    let server = Server::new(config)
        .with_metrics(Metrics::new())
        .with_admin_listener(admin)
        .add_service(EchoServer::new(EchoService::named("x")));
    let (_, handle) = spawn_local(server).await.expect("start the provider");
    let metrics = get(admin_addr, "/metrics").await;
    let lines: Vec<&str> = metrics.body.lines().collect();
    assert!(
        lines.contains(&"mprpc_adaptive_concurrency_limit 24"),
        "{}",
        metrics.body
    );
    assert!(
        lines.contains(&"mprpc_shed_calls_total 0"),
        "{}",
        metrics.body
    );
    let status = get(admin_addr, "/status?format=json").await;
    let json: serde_json::Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(json["adaptive_limit"], 24, "{}", status.body);
    let page = get(admin_addr, "/status").await;
    assert!(
        page.body
            .contains("<td id=\"adaptive-limit\">24 calls in flight, 0 shed</td>"),
        "{}",
        page.body
    );
    handle.shutdown().await.expect("shut down");
}
