//! Benchmarks of mprpc.
//!
//! The pieces are kept apart so that more systems can be measured side by side later:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`target`] | [`Target`](target::Target): a system under test (a server and its client); mprpc's is [`target::Mprpc`] |
//! | [`runner`] | the runtimes and the closed-loop load that measures one target at one setting |
//! | [`report`] | the markdown table of the results |
//! | [`machine`] | what machine the figures came from, the command line, and peak memory |
//!
//! The binary `echo_bench` ties them together; run it with
//! `cargo run --release -p mprpc-bench --bin echo_bench -- --help`.

pub mod machine;
pub mod report;
pub mod runner;
pub mod target;

/// The generated benchmark service (`proto/bench.proto`).
#[allow(missing_docs)]
pub mod proto {
    mprpc::include_proto!("mprpc.bench");
}
