//! What the `mprpc` command prints when something goes wrong: one line naming what failed,
//! each fact once; an exit code from the table (never 10); and a provider's message made safe
//! to show.

mod common;

use common::cli;
use mprpc::Code;
use mprpc_tests::fake::{fake_provider, go_away, response};

/// Checks that `stderr` is one line starting with `prefix`, and that no part of it (split at
/// ": ") is repeated.
fn assert_one_line(stderr: &str, prefix: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{stderr}");
    assert!(lines[0].starts_with(prefix), "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
    let parts: Vec<&str> = lines[0].split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "`{part}` is said twice: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_that_cannot_be_read_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let not_utf8 = dir.path().join("latin1.toml");
    std::fs::write(&not_utf8, b"[client]\n# caf\xe9\ntimeout = \"1s\"\n").unwrap();
    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();

    for (path, says) in [
        (&missing, "No such file or directory"),
        (&not_utf8, "line 2"),
        (&directory, "Is a directory"),
    ] {
        let path = path.to_str().unwrap();
        let run = cli(&["-i", path, "list"]).await;
        assert_eq!(run.code, Some(2), "{run}");
        assert_one_line(&run.stderr, "error: ");
        assert!(run.stderr.contains(path), "{run}");
        assert!(run.stderr.contains(says), "{run}");
        assert!(run.stderr.matches("os error").count() <= 1, "{run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_saying_go_away_with_code_ok_is_unavailable_not_exit_ten() {
    let address = fake_provider(|_| go_away(0, "bye")).await;
    let run = cli(&["--addr", &address, "call", "mprpc.test.Echo/Echo"]).await;
    assert_eq!(run.code, Some(24), "{run}");
    assert_one_line(&run.stderr, "ERROR: Unavailable: ");
    assert!(run.stderr.contains("bye"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_message_cannot_drive_the_terminal() {
    let hostile = format!("\x1b[2J\x1b[Hgotcha\n{}", "x".repeat(1 << 20));
    // The first call the command makes is the reflection call; the fake refuses it.
    let code = Code::PermissionDenied.as_i32();
    let address = fake_provider(move |id| response(id, code, &hostile)).await;
    let run = cli(&["--addr", &address, "call", "mprpc.test.Echo/Echo"]).await;
    let start: String = run.to_string().chars().take(300).collect();
    assert_eq!(run.code, Some(17), "{start}");
    assert_one_line(&run.stderr, "ERROR: PermissionDenied: ");
    assert!(!run.stderr.trim_end().contains(char::is_control), "{start}");
    assert!(
        run.stderr.contains("\\u{1b}[2J\\u{1b}[Hgotcha\\nxxx"),
        "{start}"
    );
    assert!(
        run.stderr.len() < 2048,
        "{} bytes on stderr",
        run.stderr.len()
    );
    assert!(run.stderr.trim_end().ends_with("bytes cut)"), "{start}");
}
