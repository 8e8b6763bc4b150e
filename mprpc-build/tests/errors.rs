//! What `compile` reports for protos it cannot handle: the messages must say where.

use std::fs;
use std::path::Path;

/// Compiles `name` with `source` in a fresh directory; returns the error message.
fn compile_error(name: &str, source: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(name), source).unwrap();
    let err = mprpc_build::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[dir.path().join(name)], &[dir.path()])
        .expect_err("the compilation should fail");
    // Nothing is generated for a failed compilation.
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    err.to_string()
}

#[test]
fn syntax_error_names_file_and_line() {
    let message = compile_error(
        "broken.proto",
        "syntax = \"proto3\";\npackage fixbug;\n\nmessage LoginRequest {\n  bytes name = ;\n}\n",
    );
    assert!(message.contains("broken.proto"), "{message}");
    assert!(message.contains(":5:"), "no line 5 in: {message}");
}

#[test]
fn unknown_type_names_file_and_line() {
    let message = compile_error(
        "unknown.proto",
        "syntax = \"proto3\";\npackage fixbug;\nmessage A {}\nservice S {\n  rpc M(A) returns (Missing);\n}\n",
    );
    assert!(message.contains("unknown.proto"), "{message}");
    assert!(message.contains("Missing"), "{message}");
    assert!(message.contains(":5:"), "no line 5 in: {message}");
}

#[test]
fn streaming_method_is_rejected() {
    let message = compile_error(
        "stream.proto",
        "syntax = \"proto3\";\npackage fixbug;\nmessage A {}\nservice Feed {\n  rpc Get(A) returns (A);\n  rpc Watch(A) returns (stream A);\n}\n",
    );
    assert!(message.contains("stream.proto:6:3:"), "{message}");
    assert!(message.contains("`Watch`"), "{message}");
    assert!(message.contains("fixbug.Feed"), "{message}");
    assert!(message.contains("server-streaming"), "{message}");
}

#[test]
fn client_streaming_method_is_rejected() {
    let message = compile_error(
        "upload.proto",
        "syntax = \"proto3\";\nmessage A {}\nservice Up {\n  rpc Send(stream A) returns (A);\n}\n",
    );
    assert!(
        message.contains("`Send`") && message.contains("client-streaming"),
        "{message}"
    );
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = mprpc_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile(&[Path::new("nope.proto")], &[dir.path()])
        .unwrap_err();
    assert!(err.to_string().contains("nope.proto"), "{err}");
}
