//! The global options and what they build: the config, the registry, and channels to the
//! providers of a service (through the registry, or straight to `--addr`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use mprpc::client::Channel;
use mprpc::config::{ClientAuth, ClientConfig, ClientTls, Config, RegistryConfig};
use mprpc::registry::{self, Instances, Registry, RegistryError};
use mprpc::Status;

/// The shortest time a registry look-up is given, whatever `--timeout` says: connecting to
/// ZooKeeper takes a moment, and a short call budget should not make it fail.
const MIN_REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Options every command takes.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct TargetArgs {
    /// Config file (TOML, or the original's key=value lines): the registry and the client
    /// settings. Without it: an empty static registry and default client settings.
    #[arg(short = 'i', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Talk to the provider at HOST:PORT directly instead of looking services up in the
    /// registry.
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub addr: Option<String>,
    /// Budget of each call, e.g. 500ms, 3s, 1m [default: the config's client.timeout, 3s].
    /// A streaming call, from its start to its end, only when given [default: the config's
    /// client.stream_timeout, none]. Registry look-ups get at least 5s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Option<Duration>,
    /// Use TLS, trusting the CAs in FILE (PEM) [default: the config's client.tls].
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for providers that require one (mutual TLS).
    #[arg(long, value_name = "FILE", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the provider's certificate must carry [default: the host of its address].
    #[arg(long, value_name = "NAME", global = true)]
    pub tls_server_name: Option<String>,
    /// Read the bearer token from FILE [default: the config's client.auth].
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "token_env")]
    pub token_file: Option<PathBuf>,
    /// Read the bearer token from the environment variable VAR.
    #[arg(long, value_name = "VAR", global = true)]
    pub token_env: Option<String>,
}

/// Where a command sends its calls, built from the global options.
pub(crate) struct Target {
    /// The client settings, with `--timeout` applied.
    client: ClientConfig,
    /// The registry the config file names.
    registry: RegistryConfig,
    /// `--addr`, if given.
    addr: Option<String>,
    /// `--timeout`, if given: it also bounds streaming calls.
    explicit_timeout: Option<Duration>,
}

/// One service's way in: a channel for its calls, and a channel to one of its providers
/// for reflection (the reflection service is not in the registry).
pub(crate) struct Resolved {
    /// Carries the service's calls: balanced over the registry's providers, or to `--addr`.
    pub calls: Channel,
    /// Talks to `provider` only.
    pub provider_channel: Channel,
    /// The address of the provider that reflection questions go to.
    pub provider: String,
}

impl Target {
    /// Loads the config file (if any) and applies the options to it.
    pub(crate) fn new(args: &TargetArgs) -> anyhow::Result<Target> {
        let config = match &args.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let mut client = config.client;
        if let Some(timeout) = args.timeout {
            if timeout.is_zero() {
                bail!("--timeout must be more than zero");
            }
            client.timeout = timeout;
        }
        apply_security(args, &mut client)?;
        if let Some(addr) = &args.addr {
            if addr.trim().is_empty() {
                bail!("--addr must be HOST:PORT");
            }
        }
        Ok(Target {
            client,
            registry: config.registry,
            addr: args.addr.clone(),
            explicit_timeout: args.timeout,
        })
    }

    /// The budget of one call.
    pub(crate) fn timeout(&self) -> Duration {
        self.client.timeout
    }

    /// The budget of a whole streaming call: `--timeout` if given, else none of its own
    /// (the channel then applies the config's `client.stream_timeout`, by default none: a
    /// stream lasts as long as both sides want).
    pub(crate) fn stream_timeout(&self) -> Option<Duration> {
        self.explicit_timeout
    }

    /// `--addr`, if given.
    pub(crate) fn addr(&self) -> Option<&str> {
        self.addr.as_deref()
    }

    /// A channel to one provider address, with the configured client settings.
    pub(crate) fn channel_to(&self, address: &str) -> Channel {
        Channel::to_addresses(vec![address.to_owned()], self.client.clone())
    }

    /// The registry of the config file.
    pub(crate) fn registry(&self) -> anyhow::Result<Arc<dyn Registry>> {
        Ok(registry::from_config(&self.registry)?)
    }

    /// Runs a registry operation within the registry's time limit. A registry that cannot
    /// be reached is a plain error (exit 2); a service it has never heard of becomes an
    /// `Unavailable` status, as a typed client would see it.
    pub(crate) async fn registry_op<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, RegistryError>>,
    ) -> anyhow::Result<T> {
        let limit = self.timeout().max(MIN_REGISTRY_TIMEOUT);
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e @ RegistryError::UnknownService(_))) => {
                Err(Status::unavailable(e.to_string()).into())
            }
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("cannot {what}"))),
            Err(_) => bail!("cannot {what}: the registry did not answer within {limit:?}"),
        }
    }

    /// Starts following `service` in `registry`.
    pub(crate) async fn discover(
        &self,
        registry: &Arc<dyn Registry>,
        service: &str,
    ) -> anyhow::Result<Instances> {
        self.registry_op(
            &format!("look up the providers of `{service}`"),
            registry.discover(service),
        )
        .await
    }

    /// The channels for calling `service`: everything to `--addr`, or through the registry
    /// with its first provider answering reflection questions.
    pub(crate) async fn resolve(&self, service: &str) -> anyhow::Result<Resolved> {
        if let Some(addr) = &self.addr {
            let channel = self.channel_to(addr);
            return Ok(Resolved {
                calls: channel.clone(),
                provider_channel: channel,
                provider: addr.clone(),
            });
        }
        let registry = self.registry()?;
        let instances = self.discover(&registry, service).await?;
        let first = instances.borrow().first().map(|i| i.address.clone());
        let Some(provider) = first else {
            return Err(
                Status::unavailable(format!("no providers of `{service}` are registered")).into(),
            );
        };
        Ok(Resolved {
            calls: Channel::new(self.client.clone(), registry),
            provider_channel: self.channel_to(&provider),
            provider,
        })
    }
}

/// Splits `SERVICE/METHOD` (a leading `/` is allowed, as in gRPC paths).
pub(crate) fn parse_method_path(path: &str) -> Result<(String, String), String> {
    let path = path.strip_prefix('/').unwrap_or(path);
    match path.rsplit_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {
            Ok((service.to_owned(), method.to_owned()))
        }
        _ => Err(format!(
            "`{path}` is not SERVICE/METHOD (e.g. fixbug.UserServiceRpc/Login)"
        )),
    }
}

/// Parses one `-H key=value` pair.
pub(crate) fn parse_metadata(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{pair}` is not key=value")),
    }
}

/// Reads `--data`: the JSON itself, `@FILE` for a file's contents, or `-` for stdin.
pub(crate) fn read_data(data: &str) -> anyhow::Result<String> {
    if data == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the request from stdin")?;
        Ok(text)
    } else if let Some(path) = data.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
    } else {
        Ok(data.to_owned())
    }
}

/// Applies the TLS and token options over the config's `[client.tls]` and `[client.auth]`.
/// A token is only ever read from a file or a variable: on the command line it would show
/// in `ps` and in the shell's history.
fn apply_security(args: &TargetArgs, client: &mut ClientConfig) -> anyhow::Result<()> {
    if let Some(ca) = &args.tls_ca {
        let mut tls = ClientTls::new(ca);
        tls.cert.clone_from(&args.tls_cert);
        tls.key.clone_from(&args.tls_key);
        tls.server_name.clone_from(&args.tls_server_name);
        client.tls = Some(tls);
    } else if args.tls_cert.is_some() || args.tls_server_name.is_some() {
        match &mut client.tls {
            Some(tls) => {
                if args.tls_cert.is_some() {
                    tls.cert.clone_from(&args.tls_cert);
                    tls.key.clone_from(&args.tls_key);
                }
                if args.tls_server_name.is_some() {
                    tls.server_name.clone_from(&args.tls_server_name);
                }
            }
            None => bail!(
                "--tls-cert and --tls-server-name need --tls-ca (or [client.tls] in the config)"
            ),
        }
    }
    if args.token_file.is_some() || args.token_env.is_some() {
        client.auth = Some(ClientAuth {
            token: None,
            token_file: args.token_file.clone(),
            token_env: args.token_env.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths() {
        assert_eq!(
            parse_method_path("/fixbug.UserServiceRpc/Login").unwrap(),
            ("fixbug.UserServiceRpc".to_owned(), "Login".to_owned())
        );
        assert!(parse_method_path("fixbug.UserServiceRpc").is_err());
        assert!(parse_method_path("fixbug.UserServiceRpc/").is_err());
        assert!(parse_method_path("/Login").is_err());
    }

    #[test]
    fn metadata_pairs() {
        assert_eq!(
            parse_metadata("tenant=a=b").unwrap(),
            ("tenant".to_owned(), "a=b".to_owned())
        );
        assert!(parse_metadata("tenant").is_err());
        assert!(parse_metadata("=x").is_err());
    }
}
