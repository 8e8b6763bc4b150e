//! The checks the sections' validation shares: ranges, durations, `host:port` addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{ConfigError, MAX_LIMIT, MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE};

/// Checks values of the configuration from `origin`, each failure a [`ConfigError::Invalid`]
/// naming the key.
#[derive(Clone, Copy, Debug)]
pub(super) struct Check<'a> {
    origin: &'a str,
}

impl<'a> Check<'a> {
    pub(super) fn new(origin: &'a str) -> Check<'a> {
        Check { origin }
    }

    /// The error for `key`.
    pub(super) fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// `message` about `key` unless `ok`.
    pub(super) fn that(&self, ok: bool, key: &str, message: &str) -> Result<(), ConfigError> {
        if ok {
            Ok(())
        } else {
            Err(self.invalid(key, message.to_owned()))
        }
    }

    /// A duration that must be more than zero.
    pub(super) fn positive(&self, value: Duration, key: &str) -> Result<(), ConfigError> {
        self.that(!value.is_zero(), key, "must be more than zero")
    }

    /// A `max_frame_size`: from 1 KiB to 1 GiB.
    pub(super) fn frame_size(&self, value: usize, key: &str) -> Result<(), ConfigError> {
        self.that(
            (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value),
            key,
            &format!(
                "{value} is out of range: must be from {MIN_MAX_FRAME_SIZE} (1 KiB) to \
                 {MAX_MAX_FRAME_SIZE} (1 GiB)"
            ),
        )
    }

    /// A limit on calls or connections: from 1 to [`MAX_LIMIT`].
    pub(super) fn limit(&self, value: usize, key: &str) -> Result<(), ConfigError> {
        self.that(
            (1..=MAX_LIMIT).contains(&value),
            key,
            &format!("{value} is out of range: must be from 1 to {MAX_LIMIT}"),
        )
    }

    /// A `host:port` address (see [`check_host_port`]).
    pub(super) fn host_port(
        &self,
        address: &str,
        port_zero: bool,
        key: &str,
    ) -> Result<(), ConfigError> {
        check_host_port(address, port_zero).map_err(|m| self.invalid(key, m))
    }
}

/// Checks `host:port`: a socket address (`127.0.0.1:80`, `[::1]:80`) or a host name with a
/// numeric port. Returns what is wrong.
pub(crate) fn check_host_port(address: &str, port_zero: bool) -> Result<(), String> {
    let port_zero_error = || format!("`{address}`: port 0 is not allowed here");
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return if socket.port() == 0 && !port_zero {
            Err(port_zero_error())
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` is not `host:port`"));
    };
    if host.starts_with('[') || host.contains(':') {
        return Err(format!(
            "`{address}` is not `host:port` (an IPv6 address is written `[::1]:8000`)"
        ));
    }
    if host.is_empty() {
        return Err(format!("`{address}` has no host"));
    }
    let port_number = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u16>().ok()
    } else {
        None
    };
    match port_number {
        None => return Err(format!("`{address}`: `{port}` is not a port number")),
        Some(0) if !port_zero => return Err(port_zero_error()),
        Some(_) => {}
    }
    let looks_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("`{address}`: `{host}` is not an IPv4 address"));
    }
    let host_name_ok = host.split('.').enumerate().all(|(i, label)| {
        // A single trailing dot (fully qualified name) is allowed.
        (!label.is_empty() || (i > 0 && host.ends_with('.') && host.len() > 1))
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !host_name_ok || host.contains("..") {
        return Err(format!("`{address}`: `{host}` is not a host name"));
    }
    Ok(())
}
