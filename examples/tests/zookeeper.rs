//! The example consumer against a real ZooKeeper (started per test with `scripts/zk.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use mprpc_tests::zk::ZkServer;

/// How many times the consumer is run, some 25 ms each. Before the registry ran its session on
/// a thread of its own, 1% to 4% of the exits with the shipped config (2 client threads)
/// printed a panic of `zookeeper-client`, and 7% to 14% with 8 client threads (more workers
/// race the runtime's shutdown): 300 runs then miss it with a chance under 1 in a billion.
const RUNS: usize = 300;

/// The shipped `config/zk-consumer.toml`, with 8 client threads.
fn zk_consumer_config(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/zk-consumer.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains("[client]\n"), "{text}");
    let path = dir.join("zk-consumer.toml");
    std::fs::write(&path, text.replace("[client]\n", "[client]\nthreads = 8\n")).unwrap();
    path
}

#[test]
fn a_consumer_that_finds_no_providers_exits_without_a_panic() {
    let zk = ZkServer::standalone();
    let logs = tempfile::tempdir().unwrap();
    let config = zk_consumer_config(logs.path());
    let mut panicked = 0;
    let mut example = String::new();
    for _ in 0..RUNS {
        let output = Command::new(env!("CARGO_BIN_EXE_consumer"))
            .arg("-i")
            .arg(&config)
            .args(["--zk", &zk.connect])
            .env("RUST_BACKTRACE", "0")
            .current_dir(logs.path())
            .output()
            .expect("run the consumer");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "no provider, yet: {stderr}");
        assert!(
            stderr.contains("no providers of `fixbug.UserServiceRpc` are known"),
            "{stderr}"
        );
        if stderr.contains("panicked") {
            panicked += 1;
            example = stderr.into_owned();
        }
    }
    assert_eq!(
        panicked, 0,
        "{panicked} of {RUNS} exits panicked, e.g.:\n{example}"
    );
}
