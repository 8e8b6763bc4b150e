//! `mprpc call SERVICE/METHOD --data JSON`: one call, JSON in and JSON out, with the types
//! taken from the provider's reflection service. A unary call is answered here; a streaming
//! one (its kind comes from the method's descriptor) in [`streaming`], with its requests
//! read as JSON lines by [`lines`].

mod lines;
mod streaming;

use super::request::RequestArgs;
use crate::dynamic;
use crate::target::{self, Target};

/// Options of `mprpc call`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Call a method with a JSON request and print the JSON reply (streams: JSON lines)",
    long_about = "Call a method with a JSON request and print the JSON reply on stdout.\n\n\
        The request is converted with the method's descriptors, fetched from the reflection \
        service of one provider (--addr, or the first the registry lists); the call itself goes \
        to --addr, or through the registry to any provider. JSON follows the proto3 mapping: \
        bytes are base64, 64-bit integers are strings, enums are names. Unknown fields are an \
        error.\n\n\
        A failed call prints `ERROR: <Code>: <message>` on stderr and exits with 10 + the \
        status code (see `mprpc --help`), e.g. 15 for NotFound, 22 for Unimplemented \
        (also an unknown service or method), 24 for Unavailable.\n\n\
        Streaming methods (the kind comes from the method's descriptor):\n\
        - server-streaming: the one request from --data; each reply is printed as one line of \
        compact JSON as it arrives;\n\
        - client-streaming: the requests are JSON lines, one request per non-empty line, \
        read from stdin by default (or -d -), from a file with -d @FILE, or from the text of \
        --data itself; each is sent as it is read, and the end of the input ends the \
        requests; the one reply is printed as for a unary call;\n\
        - bidirectional: requests as for client-streaming, replies as for server-streaming.\n\
        A request line that is not valid JSON for the method cancels the call: `error: stdin \
        line N: ...` on stderr, exit 2. A stream that fails prints `ERROR: <Code>: <message>` \
        after the replies that came before, and exits with 10 + the code. A streaming call \
        is bounded by --timeout only when it is given (else by the config's \
        client.stream_timeout, by default nothing).",
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
    let resolved = args.request.resolve(target).await?;
    let kind = resolved.kind();
    if kind != mprpc::stream::MethodKind::Unary {
        return streaming::run(target, &args, resolved).await;
    }
    let json = target::read_data(args.request.data_for_call(kind))?;
    let prepared = args.request.encode_one(resolved, &json, target)?;
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
