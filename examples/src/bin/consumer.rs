//! `consumer -i FILE [--addr ADDR]`: calls the example services.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    mprpc_examples::consumer::run(mprpc_examples::consumer::Args::parse())
}
