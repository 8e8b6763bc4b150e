//! The fault matrix (issue 11): three provider processes (`test_provider`) registered in a
//! real 3-node ZooKeeper ensemble, a consumer in this process calling them without pause from
//! several tasks, the idempotent `Read` (retried, hedged) and the non-idempotent `Echo`, and
//! one fault per test:
//!
//! - (a) a provider killed with SIGKILL;
//! - (b) a provider frozen with SIGSTOP until its ZooKeeper session expired, then SIGCONT;
//! - (c) the ensemble's leader killed;
//! - (d) every ZooKeeper node stopped for 10 s, then started again;
//! - (e) a rolling restart of every provider with SIGTERM.
//!
//! Each asserts that no `Read` failed and bounds the failed `Echo` calls: in (a) only calls in
//! flight at the kill may fail, in (b) only calls caught by the frozen provider before the
//! consumer noticed it, in the others none. Each prints one line of figures (`--nocapture`);
//! `docs/RESILIENCE.md` ("Fault matrix") records a run and explains the settings. The cases
//! take turns whatever `--test-threads` says: each starts its own ensemble and providers, and
//! on a small machine they would otherwise slow each other down. Every wait is bounded, and
//! the processes (providers, ZooKeeper) are stopped when a case ends, failed or not.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mprpc::client::Channel;
use mprpc::config::{ClientConfig, HedgeConfig, HedgeDelay};
use mprpc::metrics::{Metrics, ResilienceCounts};
use mprpc::registry::{Instances, Registry, ZkRegistry};
use mprpc_tests::load::{disturbed_for, failures_by_message, Load, Method, Record, Tally};
use mprpc_tests::process::ProviderProcess;
use mprpc_tests::zk::{RegistryWatch, ZkServer};
use mprpc_tests::{wait_until, EchoClient};
use nix::sys::signal::Signal;

const PROVIDER: &str = env!("CARGO_BIN_EXE_test_provider");
const SERVICE: &str = "mprpc.test.Echo";
const ROOT: &str = "/mprpc";
/// Providers of the service.
const PROVIDERS: usize = 3;
/// The ZooKeeper session timeout of the providers: a dead provider leaves the lists after it.
const SESSION: Duration = Duration::from_secs(2);
/// The consumer's: the default of `[registry] session_timeout`.
const CONSUMER_SESSION: Duration = Duration::from_secs(10);
/// Tasks calling `Read`, and tasks calling `Echo`, each call after the other.
const READERS: usize = 4;
const WRITERS: usize = 4;
/// How long each call works in its handler, so that a fault always finds calls in flight.
const WORK_MS: u32 = 10;
/// A call slower than this (25 times its work) was disturbed by the fault.
const SLOW: Duration = Duration::from_millis(250);
/// The bound on every wait for a condition.
const WAIT: Duration = Duration::from_secs(30);
/// Calls that must finish after a fault's last step before the load stops.
const AFTERWARDS: usize = 400;

/// The consumer's settings, as `docs/RESILIENCE.md` ("Fault matrix") explains them; the
/// others (timeout 3 s; three attempts, two for a hedged call; budget 20% + 10/s; ejection
/// after 5 failures in a row; reconnect backoff from 100 ms) are the defaults.
fn consumer_config() -> ClientConfig {
    ClientConfig {
        // A provider that stops answering (frozen, or its host gone) is declared dead within
        // about a second, and its calls fail `Unavailable`: idempotent ones are retried.
        ping_interval: Duration::from_millis(500),
        ping_timeout: Duration::from_millis(500),
        // An idempotent call unanswered for ten times its usual time also goes elsewhere.
        hedge: HedgeConfig {
            delay: Some(HedgeDelay::Fixed(Duration::from_millis(100))),
            ..HedgeConfig::default()
        },
        ..ClientConfig::default()
    }
}

#[test]
fn a_sigkill_fails_only_the_calls_in_flight_on_the_killed_provider() {
    run_case(async {
        let mut cluster = Cluster::start().await;
        let load = cluster.load().await;
        let victim = &mut cluster.providers[0];
        let address = victim.process.address.clone();

        let killed = Instant::now();
        victim.process.signal(Signal::SIGKILL);
        wait_until("the killed provider is gone", WAIT, || {
            victim.process.wait_exit(Duration::ZERO).is_some()
        })
        .await;
        let dead = Instant::now();
        cluster
            .wait_for_list("the killed provider leaves the list", |l| {
                !l.contains(&address)
            })
            .await;
        let left = killed.elapsed();
        cluster.calls_flow(&load).await;

        let records = load.stop().await;
        let in_flight = records
            .iter()
            .filter(|r| r.method == Method::Echo && r.started <= dead && r.ended >= killed)
            .count();
        let note = format!(
            "{in_flight} Echo calls in flight at the kill; the killed provider left the list \
             after {left:.1?}"
        );
        let (read, echo) = cluster.report("(a) SIGKILL", &records, killed, &note);
        assert_eq!(read.failures(), 0, "no Read fails: {read}");
        for r in failed(&records, Method::Echo) {
            assert!(
                r.started <= dead && r.ended >= killed,
                "only Echo calls in flight at the kill may fail: {r:?}"
            );
        }
        assert!(echo.failures() <= in_flight);
    });
}

#[test]
fn a_provider_frozen_past_its_session_is_routed_around_and_comes_back() {
    run_case(async {
        let cluster = Cluster::start().await;
        let load = cluster.load().await;
        let victim = &cluster.providers[0];
        let address = victim.process.address.clone();

        let frozen = Instant::now();
        victim.process.signal(Signal::SIGSTOP);
        let mut ejected = None;
        wait_until("the frozen provider's session expires", WAIT, || {
            if ejected.is_none() && cluster.ejections(&address) > 0 {
                ejected = Some(frozen.elapsed());
            }
            !cluster.listed().contains(&address)
        })
        .await;
        let left = Instant::now();
        victim.process.signal(Signal::SIGCONT);
        let thawed = Instant::now();
        cluster
            .wait_for_list("the thawed provider registers again", |l| {
                l.contains(&address)
            })
            .await;
        let back = thawed.elapsed();
        wait_until("the thawed provider serves again", WAIT, || {
            load.served_by(&victim.name, thawed) >= 20
        })
        .await;
        cluster.calls_flow(&load).await;

        let records = load.stop().await;
        let ejected = ejected.map_or("not ejected".to_owned(), |t| format!("ejected {t:.1?}"));
        let note = format!(
            "{ejected}, out of the list {:.1?} after SIGSTOP; registered again {back:.1?} after \
             SIGCONT",
            left - frozen
        );
        let (read, echo) = cluster.report("(b) SIGSTOP", &records, frozen, &note);
        assert_eq!(read.failures(), 0, "no Read fails: {read}");
        for r in failed(&records, Method::Echo) {
            let stuck_on_it = matches!(&r.outcome, Err((_, m)) if m.contains(&address));
            assert!(
                stuck_on_it && r.ended >= frozen && r.started <= left,
                "only Echo calls sent to the frozen provider before it left may fail: {r:?}"
            );
        }
        assert!(
            echo.failures() <= WRITERS,
            "at most one Echo per calling task is caught before the freeze is noticed: {echo}"
        );
    });
}

#[test]
fn killing_the_zookeeper_leader_fails_no_call() {
    run_case(async {
        let mut cluster = Cluster::start().await;
        let load = cluster.load().await;
        let watch = RegistryWatch::start(&cluster.registry, SERVICE);
        let zk = cluster.zk.clone();
        let leader = blocking(move || zk.leader()).await;

        let killed = Instant::now();
        let zk = cluster.zk.clone();
        blocking(move || zk.kill_node(leader)).await;
        wait_until("the consumer's session recovers", WAIT, || {
            watch.recovered_since(killed).is_some()
        })
        .await;
        let (lost, back) = watch.recovered_since(killed).expect("recovered");
        // The watch was armed again after the reconnect: a new provider is seen.
        cluster.add_provider(&load).await;
        cluster.calls_flow(&load).await;

        let records = load.stop().await;
        let note = format!(
            "consumer's session lost {lost:.1?} after the kill, back {back:.1?} after it; a provider \
             started afterwards was picked up"
        );
        let (read, echo) = cluster.report("(c) ZK leader killed", &records, killed, &note);
        assert_eq!(read.failures(), 0, "no Read fails: {read}");
        assert_eq!(echo.failures(), 0, "no Echo fails: {echo}");
    });
}

#[test]
fn zookeeper_down_for_ten_seconds_fails_no_call() {
    run_case(async {
        let mut cluster = Cluster::start().await;
        let load = cluster.load().await;
        let watch = RegistryWatch::start(&cluster.registry, SERVICE);

        let stopped = Instant::now();
        let zk = cluster.zk.clone();
        blocking(move || zk.kill_nodes(&[1, 2, 3])).await;
        // Ten seconds without ZooKeeper, longer than the providers' sessions: the consumer
        // goes on calling the providers it knows.
        let outage = Duration::from_secs(10);
        wait_until("ten seconds without ZooKeeper", outage * 2, || {
            assert_eq!(cluster.listed().len(), PROVIDERS, "the list is kept");
            stopped.elapsed() >= outage
        })
        .await;
        let restarted = Instant::now();
        let zk = cluster.zk.clone();
        blocking(move || zk.start_nodes(&[1, 2, 3])).await;
        let serving = restarted.elapsed();
        wait_until("the consumer's session is back", WAIT, || {
            watch.recovered_since(restarted).is_some()
        })
        .await;
        let session_back = restarted.elapsed();
        // The sessions that expired while ZooKeeper was away lose their nodes a session
        // timeout after it is back: past that, a new consumer (with no list to keep) must
        // find every provider, registered again.
        let old_sessions_gone = Instant::now() + SESSION * 2;
        let fresh = ZkRegistry::new(cluster.zk.connect.clone(), ROOT.to_owned(), SESSION)
            .expect("a registry");
        let fresh_list = fresh.discover(SERVICE).await.expect("the providers");
        wait_until("every provider registered again", WAIT, || {
            Instant::now() >= old_sessions_gone && fresh_list.borrow().len() == PROVIDERS
        })
        .await;
        let registered = restarted.elapsed();
        cluster.add_provider(&load).await;
        cluster.calls_flow(&load).await;

        let records = load.stop().await;
        let note = format!(
            "lists kept during the outage; after the restart began: ensemble serving \
             {serving:.1?}, consumer's session back {session_back:.1?}, every provider \
             registered again by {registered:.1?}; consumer's list sizes {:?}; a provider \
             started afterwards was picked up",
            watch.list_sizes(stopped)
        );
        let (read, echo) = cluster.report("(d) ZK down 10 s", &records, stopped, &note);
        assert_eq!(read.failures(), 0, "no Read fails: {read}");
        assert_eq!(echo.failures(), 0, "no Echo fails: {echo}");
    });
}

#[test]
fn a_rolling_restart_with_sigterm_fails_no_call() {
    run_case(async {
        let mut cluster = Cluster::start().await;
        let load = cluster.load().await;

        let first = Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..PROVIDERS {
            let old = &mut cluster.providers[i];
            let address = old.process.address.clone();
            old.process.signal(Signal::SIGTERM);
            wait_until("the provider stops", WAIT, || {
                old.process.wait_exit(Duration::ZERO).is_some()
            })
            .await;
            let status = old.process.wait_exit(Duration::ZERO).expect("exited");
            assert!(status.success(), "a graceful stop: {status}");
            // The same address, as a restarted service would have.
            let name = format!("p{i}-restarted");
            let started = Instant::now();
            let new = Provider::start(&cluster.zk, &name, &address).await;
            wait_until("the restarted provider serves", WAIT, || {
                load.served_by(&name, started) >= 20
            })
            .await;
            slowest = slowest.max(started.elapsed());
            cluster.providers[i] = new;
        }
        cluster.calls_flow(&load).await;

        let records = load.stop().await;
        let note = format!(
            "{PROVIDERS} providers restarted one after the other on their addresses; each served \
             within {slowest:.1?} of its start"
        );
        let (read, echo) = cluster.report("(e) rolling SIGTERM", &records, first, &note);
        assert_eq!(read.failures(), 0, "no Read fails: {read}");
        assert_eq!(echo.failures(), 0, "no Echo fails: {echo}");
    });
}

/// Runs one case on a runtime of its own, once no other case runs.
fn run_case(case: impl Future<Output = ()>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Ok(filter) = std::env::var("MPRPC_FAULTS_LOG") {
        // The consumer's log (an `EnvFilter`, e.g. `mprpc=info`), to see what a case went through.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(case);
}

/// Runs `f` (process and script work, which waits) off the runtime's threads, which carry
/// the load meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a blocking task: {e}"),
    }
}

fn failed(records: &[Record], method: Method) -> impl Iterator<Item = &Record> {
    records
        .iter()
        .filter(move |r| r.method == method && r.outcome.is_err())
}

/// A provider process, by the name it answers with.
struct Provider {
    name: String,
    process: ProviderProcess,
}

impl Provider {
    /// Starts one listening on `listen`, registered in `zk`, and waits until it is.
    async fn start(zk: &ZkServer, name: &str, listen: &str) -> Provider {
        let session_ms = SESSION.as_millis().to_string();
        let args: Vec<String> = [
            name,
            "--zk",
            &zk.connect,
            "--root",
            ROOT,
            "--session-timeout-ms",
            &session_ms,
            "--listen",
            listen,
            "--quiet",
        ]
        .map(str::to_owned)
        .into();
        let process = blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ProviderProcess::start(PROVIDER, &args)
        })
        .await;
        Provider {
            name: name.to_owned(),
            process,
        }
    }
}

/// The ensemble, the providers, and the consumer.
struct Cluster {
    zk: Arc<ZkServer>,
    providers: Vec<Provider>,
    registry: ZkRegistry,
    list: Instances,
    client: EchoClient,
    metrics: Metrics,
}

impl Cluster {
    async fn start() -> Cluster {
        let zk = Arc::new(blocking(ZkServer::ensemble).await);
        let mut providers = Vec::new();
        for i in 0..PROVIDERS {
            providers.push(Provider::start(&zk, &format!("p{i}"), "127.0.0.1:0").await);
        }
        let registry = ZkRegistry::new(zk.connect.clone(), ROOT.to_owned(), CONSUMER_SESSION)
            .expect("a registry");
        let list = registry.discover(SERVICE).await.expect("the providers");
        let metrics = Metrics::new();
        let channel = Channel::with_metrics(
            consumer_config(),
            Arc::new(registry.clone()),
            metrics.clone(),
        );
        let cluster = Cluster {
            zk,
            providers,
            registry,
            list,
            client: EchoClient::new(channel),
            metrics,
        };
        cluster
            .wait_for_list("every provider listed", |l| l.len() == PROVIDERS)
            .await;
        cluster
    }

    /// The addresses the consumer lists now.
    fn listed(&self) -> Vec<String> {
        self.list
            .borrow()
            .iter()
            .map(|i| i.address.clone())
            .collect()
    }

    async fn wait_for_list(&self, what: &str, check: impl Fn(&[String]) -> bool) {
        wait_until(what, WAIT, || check(&self.listed())).await;
    }

    /// Starts the load, and waits until every provider has answered some of it.
    async fn load(&self) -> Load {
        let load = Load::start(&self.client, READERS, WRITERS, WORK_MS);
        let start = Instant::now();
        wait_until("every provider serves", WAIT, || {
            self.providers
                .iter()
                .all(|p| load.served_by(&p.name, start) >= 20)
        })
        .await;
        load
    }

    /// Waits until [`AFTERWARDS`] more calls have finished.
    async fn calls_flow(&self, load: &Load) {
        let target = load.finished() + AFTERWARDS;
        wait_until("calls flow", WAIT, || load.finished() >= target).await;
    }

    /// Starts one more provider and waits until the consumer sends it calls.
    async fn add_provider(&mut self, load: &Load) {
        let name = format!("p{}", self.providers.len());
        let started = Instant::now();
        let provider = Provider::start(&self.zk, &name, "127.0.0.1:0").await;
        wait_until("the new provider serves", WAIT, || {
            load.served_by(&name, started) >= 20
        })
        .await;
        self.providers.push(provider);
    }

    /// How often the consumer ejected the provider at `address`.
    fn ejections(&self, address: &str) -> u64 {
        let health = self.metrics.snapshot().provider_health;
        health.get(address).map_or(0, |h| h.ejections)
    }

    fn resilience(&self, method: &str) -> ResilienceCounts {
        mprpc_tests::resilience_counts(&self.metrics, method)
    }

    /// Prints the case's line of figures and returns the `Read` and `Echo` tallies.
    fn report(&self, case: &str, records: &[Record], fault: Instant, note: &str) -> (Tally, Tally) {
        let (read, echo) = (
            Tally::of(records, Method::Read),
            Tally::of(records, Method::Echo),
        );
        let counts = self.resilience("Read");
        println!(
            "fault matrix {case}: Read {read}, {} retries, {} hedges, {} refused by the budget; \
             Echo {echo}; disturbed for {:.2?}; {note}",
            counts.retries,
            counts.hedges,
            counts.budget_exhausted,
            disturbed_for(records, fault, SLOW),
        );
        for (failure, n) in failures_by_message(records).iter().take(10) {
            println!("    {n} x {failure}");
        }
        let echo_counts = self.resilience("Echo");
        assert_eq!(
            (echo_counts.retries, echo_counts.hedges),
            (0, 0),
            "Echo is never run twice"
        );
        (read, echo)
    }
}
