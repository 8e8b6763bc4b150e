//! `callcount CALLS IN_FLIGHT [PAYLOAD]`: echo calls through mprpc with the provider and the
//! consumer in this one process, on one thread, for counting the instructions a call costs
//! with callgrind, which counts the same on a busy machine as on an idle one:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/callcount 2000 128
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/callcount 12000 128
//! ```
//!
//! The difference of the two totals over the difference of the calls is the cost of one call,
//! both sides together, without the start-up. `docs/BENCHMARKS.md` ("Instructions per call")
//! has the figures.

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use mprpc_bench::targets::mprpc::{Mprpc, MprpcCaller};
use mprpc_bench::targets::{Caller, Target};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().context("CALLS")?.parse()?;
    let in_flight: usize = args.next().context("IN_FLIGHT")?.parse()?;
    let payload: usize = args.next().map_or(Ok(64), |p| p.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(Mprpc::serve(listener));
        let caller = MprpcCaller::over(&[address]);
        let body = vec![7u8; payload];
        caller.call(&body).await.map_err(anyhow::Error::msg)?;
        let failed = stream::iter(0..calls)
            .map(|_| caller.call(&body))
            .buffer_unordered(in_flight)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        anyhow::ensure!(failed == 0, "{failed} calls failed");
        println!("{calls} calls, {in_flight} in flight, {payload} B: ok");
        Ok(())
    })
}
