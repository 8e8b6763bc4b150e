//! What the provider and consumer print when they cannot start: one line naming the file or
//! the port, each fact said once, no "Caused by:" and no backtrace.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Runs `program -i config` in `dir` (so a log directory lands there); returns its stderr
/// after checking that it failed.
fn fails(program: &str, config: &Path, dir: &Path) -> String {
    let output = Command::new(program)
        .arg("-i")
        .arg(config)
        .current_dir(dir)
        // The report must not depend on these.
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("run the program");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{program}: {stderr}");
    stderr
}

/// Checks that `stderr` is `error: ` and one line, and that no part of it (split at ": ") is
/// repeated.
fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
    let parts: Vec<&str> = lines[0].split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "`{part}` is said twice: {stderr}"
        );
    }
}

#[test]
fn a_config_file_that_cannot_be_read_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let not_utf8 = dir.path().join("latin1.toml");
    std::fs::write(&not_utf8, b"[server]\n# caf\xe9\n").unwrap();
    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();

    for program in [
        env!("CARGO_BIN_EXE_provider"),
        env!("CARGO_BIN_EXE_consumer"),
    ] {
        for (path, says) in [
            (&missing, "No such file or directory"),
            (&not_utf8, "line 2: byte 0xe9 at column 6 is not UTF-8"),
            (&directory, "Is a directory"),
        ] {
            let stderr = fails(program, path, dir.path());
            assert_one_line(&stderr);
            assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
            assert!(stderr.contains(says), "{stderr}");
        }
    }
}

#[test]
fn an_admin_port_in_use_is_one_line_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("provider.toml");
    std::fs::write(
        &config,
        format!("[server]\naddress = \"127.0.0.1:0\"\nadmin_address = \"{address}\"\n"),
    )
    .unwrap();
    let stderr = fails(env!("CARGO_BIN_EXE_provider"), &config, dir.path());
    assert_one_line(&stderr);
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("admin"), "{stderr}");
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
    drop(taken);
}
