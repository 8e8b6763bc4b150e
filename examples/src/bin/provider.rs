//! `provider -i FILE [--listen ADDR]`: hosts the example services.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    mprpc_examples::provider::run(mprpc_examples::provider::Args::parse())
}
