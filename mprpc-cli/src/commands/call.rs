//! `mprpc call SERVICE/METHOD --data JSON`: one call, JSON in and JSON out, with the types
//! taken from the provider's reflection service.

use super::request::RequestArgs;
use crate::dynamic;
use crate::target::Target;

/// Options of `mprpc call`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Call a method with a JSON request and print the JSON reply",
    long_about = "Call a method with a JSON request and print the JSON reply on stdout.\n\n\
        The request is converted with the method's descriptors, fetched from the reflection \
        service of one provider (--addr, or the first the registry lists); the call itself goes \
        to --addr, or through the registry to any provider. JSON follows the proto3 mapping: \
        bytes are base64, 64-bit integers are strings, enums are names. Unknown fields are an \
        error.\n\n\
        A failed call prints `ERROR: <Code>: <message>` on stderr and exits with 10 + the \
        status code (see `mprpc --help`), e.g. 15 for NotFound, 22 for Unimplemented \
        (also an unknown service or method), 24 for Unavailable.",
    after_long_help = crate::exit::EXIT_CODES_HELP
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Print the fields that hold their default value too (proto3 JSON leaves them out).
    #[arg(long)]
    pub emit_defaults: bool,
}

/// Runs `mprpc call`.
pub(crate) async fn run(target: &Target, args: Args) -> anyhow::Result<()> {
    let prepared = args.request.prepare(target).await?;
    let reply = prepared
        .calls
        .unary_raw(
            args.request.service(),
            args.request.method(),
            prepared.request,
        )
        .await?;
    println!(
        "{}",
        dynamic::decode_to_json(&prepared.method.output(), reply, args.emit_defaults)?
    );
    Ok(())
}
