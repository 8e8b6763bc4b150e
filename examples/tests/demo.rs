//! The examples run as a person runs them, and their output is checked.

use std::process::Command;

#[test]
fn demo_runs_a_provider_and_a_consumer_and_every_call_is_answered() {
    let logs = tempfile::tempdir().unwrap();
    // The handlers log each call at debug level; this test wants to see them in the file.
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .current_dir(logs.path())
        .env("RUST_LOG", "info,mprpc_examples=debug")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed\n{stdout}\n{stderr}");
    for line in [
        "rpc login(zhang san) response success:false",
        "rpc register response success:true",
        "rpc login(mprpc) response success:true",
        "rpc GetFriendsList response success!",
        "index:1 name:gao yang",
        "index:2 name:liu hong",
        "index:3 name:wang shuo",
        "provider stopped",
        "demo finished: every call answered",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{stdout}"
        );
    }
    // The provider logged the calls to its daily file, in the directory it was started in.
    let log = std::fs::read_dir(logs.path().join("logs"))
        .expect("log directory")
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("provider.log")
        })
        .expect("provider log file");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("GetFriendsList"), "{text}");
    assert!(text.contains("INFO"), "{text}");
    // One line per call is for debugging, not for a busy provider's info log.
    for line in text
        .lines()
        .filter(|l| l.contains("mprpc_examples::services"))
    {
        assert!(
            line.contains(" DEBUG "),
            "a call logged above debug: {line}"
        );
    }
}

#[test]
fn provider_without_a_config_file_prints_usage_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_provider"))
        .output()
        .expect("run the provider");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Usage") && stderr.contains("--config"),
        "{stderr}"
    );
}

#[test]
fn provider_with_a_bad_config_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\naddress = \"127.0.0.1:0\"\nthreads = \"four\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_provider"))
        .arg("-i")
        .arg(&path)
        .output()
        .expect("run the provider");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("server.threads"), "{stderr}");
}

#[test]
fn consumer_accepts_the_original_key_value_config() {
    // The original's test.conf parses; with ZooKeeper keys it selects the ZooKeeper registry.
    let config =
        mprpc::config::Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config/legacy.conf"))
            .expect("legacy config parses");
    assert_eq!(config.server.address, "127.0.0.1:8000");
    assert!(matches!(
        config.registry,
        mprpc::config::RegistryConfig::Zookeeper { ref connect, .. } if connect == "127.0.0.1:2181"
    ));
}
