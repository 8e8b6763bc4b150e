//! `provider -i FILE [--listen ADDR]`: hosts the example services.

use std::process::ExitCode;

use clap::Parser;
use mprpc_examples::{provider, report};

fn main() -> ExitCode {
    report::exit(provider::run(provider::Args::parse()))
}
