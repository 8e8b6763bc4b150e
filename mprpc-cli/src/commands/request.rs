//! What `call` and `bench` share: the method, its JSON request and metadata on the command
//! line, and how they become a request, typed by the provider's reflection service.

use bytes::Bytes;
use mprpc::client::Channel;
use mprpc::Request;
use prost_reflect::MethodDescriptor;

use crate::dynamic;
use crate::target::{self, Target};

/// The method and its request.
#[derive(Debug, clap::Args)]
pub(crate) struct RequestArgs {
    /// The method, as SERVICE/METHOD, e.g. fixbug.UserServiceRpc/Login.
    #[arg(value_name = "SERVICE/METHOD", value_parser = target::parse_method_path)]
    pub method: (String, String),
    /// The request as JSON (`bench` sends it on every call); `@FILE` reads it from a file,
    /// `-` from stdin.
    #[arg(short, long, value_name = "JSON", default_value = "{}")]
    pub data: String,
    /// Metadata sent with the call, as key=value; repeatable.
    #[arg(short = 'H', long = "metadata", value_name = "KEY=VALUE", value_parser = target::parse_metadata)]
    pub metadata: Vec<(String, String)>,
}

/// A request ready to send, and where to.
pub(crate) struct Prepared {
    /// Carries the calls: balanced over the registry's providers, or to `--addr`.
    pub calls: Channel,
    /// The method's descriptor, for decoding the reply.
    pub method: MethodDescriptor,
    /// The encoded request, with the metadata and the call budget.
    pub request: Request<Bytes>,
}

impl RequestArgs {
    /// `SERVICE`, as given.
    pub(crate) fn service(&self) -> &str {
        &self.method.0
    }

    /// `METHOD`, as given.
    pub(crate) fn method(&self) -> &str {
        &self.method.1
    }

    /// Reads `--data`, fetches the method's types from a provider, and encodes the request.
    pub(crate) async fn prepare(&self, target: &Target) -> anyhow::Result<Prepared> {
        let json = target::read_data(&self.data)?;
        let resolved = target.resolve(self.service()).await?;
        let service = dynamic::service_descriptor(
            &resolved.provider_channel,
            &resolved.provider,
            self.service(),
        )
        .await?;
        let method = dynamic::method(&service, self.method())?;
        let body = dynamic::encode_json(&method.input(), &json)?;
        // The method's declared idempotency, so that the channel retries what it may.
        let mut request = Request::new(body)
            .with_timeout(target.timeout())
            .with_idempotency(dynamic::idempotency(&method));
        for (key, value) in &self.metadata {
            request.metadata_mut().append(key.clone(), value.clone());
        }
        Ok(Prepared {
            calls: resolved.calls,
            method,
            request,
        })
    }
}
