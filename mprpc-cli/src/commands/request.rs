//! What `call` and `bench` share: the method, its JSON request and metadata on the command
//! line, and how they become a request, typed by the provider's reflection service.

use std::time::Duration;

use bytes::Bytes;
use mprpc::client::Channel;
use mprpc::stream::MethodKind;
use mprpc::{Body, Request};
use prost_reflect::MethodDescriptor;

use crate::dynamic;
use crate::target::{self, Target};

/// `--data` when it is not given, for a method that takes one request.
const DEFAULT_DATA: &str = "{}";

/// `--data` when it is not given, for a method that takes a stream of requests (`call`):
/// JSON lines from stdin.
pub(crate) const STDIN: &str = "-";

/// The method and its request.
#[derive(Debug, clap::Args)]
pub(crate) struct RequestArgs {
    /// The method, as SERVICE/METHOD, e.g. fixbug.UserServiceRpc/Login.
    #[arg(value_name = "SERVICE/METHOD", value_parser = target::parse_method_path)]
    pub method: (String, String),
    /// The request as JSON; `@FILE` reads it from a file, `-` from stdin [default: {}].
    /// `call` on a client-streaming or bidirectional method reads one request per line
    /// (JSON lines) from this text, from `@FILE`, or from stdin with `-` [default: -];
    /// `bench` sends this one request on every call or stream message.
    #[arg(short, long, value_name = "JSON")]
    pub data: Option<String>,
    /// Metadata sent with the call, as key=value; repeatable.
    #[arg(short = 'H', long = "metadata", value_name = "KEY=VALUE", value_parser = target::parse_metadata)]
    pub metadata: Vec<(String, String)>,
}

/// The method, found by reflection, and where its calls go.
pub(crate) struct Resolved {
    /// Carries the calls: balanced over the registry's providers, or to `--addr`.
    pub calls: Channel,
    /// The method's descriptor, for encoding requests and decoding replies.
    pub method: MethodDescriptor,
}

impl Resolved {
    /// Which of the method's sides stream, as its descriptor says.
    pub(crate) fn kind(&self) -> MethodKind {
        dynamic::kind(&self.method)
    }
}

/// A request ready to send, and where to.
pub(crate) struct Prepared {
    /// Carries the calls: balanced over the registry's providers, or to `--addr`.
    pub calls: Channel,
    /// The method's descriptor, for decoding the reply.
    pub method: MethodDescriptor,
    /// The encoded request, with the metadata and the call budget.
    pub request: Request<Body>,
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

    /// `--data` as given, or what stands for it for a method of `kind` in `call`.
    pub(crate) fn data_for_call(&self, kind: MethodKind) -> &str {
        match &self.data {
            Some(data) => data,
            None if kind.client_streams() => STDIN,
            None => DEFAULT_DATA,
        }
    }

    /// Fetches the method's types from a provider.
    pub(crate) async fn resolve(&self, target: &Target) -> anyhow::Result<Resolved> {
        let resolved = target.resolve(self.service()).await?;
        let service = dynamic::service_descriptor(
            &resolved.provider_channel,
            &resolved.provider,
            self.service(),
        )
        .await?;
        let method = dynamic::method(&service, self.method())?;
        Ok(Resolved {
            calls: resolved.calls,
            method,
        })
    }

    /// Reads `--data` as one request (`{}` if not given), fetches the method's types from a
    /// provider, and encodes the request, with the unary call budget.
    pub(crate) async fn prepare(&self, target: &Target) -> anyhow::Result<Prepared> {
        let json = target::read_data(self.data.as_deref().unwrap_or(DEFAULT_DATA))?;
        let resolved = self.resolve(target).await?;
        self.encode_one(resolved, &json, target)
    }

    /// Encodes `json` as the one request of a call to the resolved method, with the unary
    /// call budget and the method's declared idempotency (so that the channel retries what
    /// it may).
    pub(crate) fn encode_one(
        &self,
        resolved: Resolved,
        json: &str,
        target: &Target,
    ) -> anyhow::Result<Prepared> {
        let body = dynamic::encode_json(&resolved.method.input(), json)?;
        let request = self
            .request(body, Some(target.timeout()))
            .with_idempotency(dynamic::idempotency(&resolved.method));
        Ok(Prepared {
            calls: resolved.calls,
            method: resolved.method,
            request,
        })
    }

    /// A request carrying `body` and the metadata, with `timeout` as its budget (none: the
    /// channel's default for its kind of call).
    pub(crate) fn request(&self, body: Bytes, timeout: Option<Duration>) -> Request<Body> {
        let mut request = Request::new(Body::from(body));
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        for (key, value) in &self.metadata {
            request.metadata_mut().append(key.clone(), value.clone());
        }
        request
    }
}
