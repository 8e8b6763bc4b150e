//! `mprpc call SERVICE/METHOD --data JSON`: one call, JSON in and JSON out, with the types
//! taken from the provider's reflection service.

use mprpc::Request;

use crate::dynamic;
use crate::target::{self, Target};

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
pub struct Args {
    /// The method, as SERVICE/METHOD, e.g. fixbug.UserServiceRpc/Login.
    #[arg(value_name = "SERVICE/METHOD", value_parser = target::parse_method_path)]
    pub method: (String, String),
    /// The request as JSON; `@FILE` reads it from a file, `-` from stdin.
    #[arg(short, long, value_name = "JSON", default_value = "{}")]
    pub data: String,
    /// Metadata sent with the call, as key=value; repeatable.
    #[arg(short = 'H', long = "metadata", value_name = "KEY=VALUE", value_parser = target::parse_metadata)]
    pub metadata: Vec<(String, String)>,
    /// Print the fields that hold their default value too (proto3 JSON leaves them out).
    #[arg(long)]
    pub emit_defaults: bool,
}

/// Runs `mprpc call`.
pub async fn run(target: &Target, args: Args) -> anyhow::Result<()> {
    let (service_name, method_name) = &args.method;
    let json = target::read_data(&args.data)?;
    let resolved = target.resolve(service_name).await?;
    let service =
        dynamic::service_descriptor(&resolved.provider_channel, &resolved.provider, service_name)
            .await?;
    let method = dynamic::method(&service, method_name)?;
    let body = dynamic::encode_json(&method.input(), &json)?;

    let mut request = Request::new(body).with_timeout(target.timeout());
    for (key, value) in args.metadata {
        request.metadata_mut().append(key, value);
    }
    let reply = resolved
        .calls
        .unary_raw(service_name, method_name, request)
        .await?;
    println!(
        "{}",
        dynamic::decode_to_json(&method.output(), reply, args.emit_defaults)?
    );
    Ok(())
}
