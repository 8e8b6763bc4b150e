//! The layers example runs as a person runs it, and its output is checked.

use std::process::Command;

#[test]
fn the_layers_example_logs_every_call_and_refuses_the_caller_without_a_token() {
    let output = Command::new(env!("CARGO_BIN_EXE_layers"))
        .args(["--token", "s3cret-t0ken"])
        .output()
        .expect("run the layers example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let logged: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("provider: "))
        .map(|l| l.split(" in ").next().unwrap())
        .collect();
    assert_eq!(
        logged,
        [
            "fixbug.UserServiceRpc/Register -> Ok",
            "fixbug.UserServiceRpc/Login -> Ok",
            "fixbug.UserServiceRpc/Login -> Unauthenticated",
        ]
    );
    for line in [
        "register success:true",
        "login refused: Unauthenticated: a valid token is needed",
        "layers example finished",
    ] {
        assert!(lines.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    // The time the provider took reached the consumer as response metadata.
    let login = lines
        .iter()
        .find_map(|l| l.strip_prefix("login success:true (the provider says it took "))
        .unwrap_or_else(|| panic!("no login line in:\n{stdout}"));
    let took = login.strip_suffix(" us)").unwrap();
    assert!(took.parse::<u64>().is_ok(), "{login}");
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "the token was printed"
    );
}
