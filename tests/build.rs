//! Generates the test service.

fn main() -> std::io::Result<()> {
    mprpc_build::compile_protos(&["proto/echo.proto"], &["proto"])
}
