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
fn streaming_methods_of_every_kind_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let source = "syntax = \"proto3\";\npackage fixbug;\nmessage A {}\nservice Feed {\n  \
        rpc Get(A) returns (A);\n  rpc Watch(A) returns (stream A);\n  \
        rpc Send(stream A) returns (A);\n  rpc Chat(stream A) returns (stream A);\n}\n";
    fs::write(dir.path().join("feed.proto"), source).unwrap();
    mprpc_build::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[dir.path().join("feed.proto")], &[dir.path()])
        .expect("streaming methods compile");
    let code = fs::read_to_string(out.path().join("fixbug.rs")).unwrap();
    for expected in [
        "type WatchStream:",
        "type ChatStream:",
        "request: ::mprpc::codegen::Request<::mprpc::codegen::Streaming<super::A>>,",
        "(\"Watch\", ::mprpc::codegen::MethodKind::ServerStreaming)",
        "(\"Send\", ::mprpc::codegen::MethodKind::ClientStreaming)",
        "(\"Chat\", ::mprpc::codegen::MethodKind::Bidirectional)",
        "::mprpc::codegen::BlockingStreaming<super::A>",
    ] {
        assert!(code.contains(expected), "no `{expected}` in:\n{code}");
    }
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
