//! Python clients run by the tests (grpcio and grpcio-reflection from PyPI, which
//! `scripts/test.sh` installs): a script file or inline code, run off the runtime under
//! `timeout`, its output kept for the test to read.

use std::process::Command;

/// What a Python client printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    /// It exited with 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// Panics, showing both outputs, unless it succeeded.
    pub fn assert_ok(&self, what: &str) {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stdout, self.stderr);
    }

    /// The values of the `name value` lines it printed, joined by ` | `.
    pub fn line(&self, name: &str) -> String {
        let prefix = format!("{name} ");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Runs `python3 args...` for at most `limit_s` seconds, with `tests/python` on its path
/// (inline code imports `protowire` from there, as the script files do).
pub async fn run(args: &[&str], limit_s: u32) -> Output {
    let mut command = Command::new("timeout");
    command
        .arg(limit_s.to_string())
        .arg("python3")
        .args(args)
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/python"));
    let output = tokio::task::spawn_blocking(move || command.output().expect("run python3"))
        .await
        .expect("the python3 runner");
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
