//! What a handler receives and a caller sends: a message plus call metadata.
//!
//! [`Request`] is the same type on both sides. A caller fills in [`Metadata`] and may override
//! the call's timeout; a provider's handler sees the metadata, the caller's remaining time
//! budget as a [`deadline`](Request::deadline), and the peer's address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Key/value pairs that travel with a call (trace ids, auth tokens, tenant names, ...).
///
/// Keys keep their insertion order; a key may appear more than once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    /// Empty metadata.
    pub const fn new() -> Metadata {
        Metadata {
            entries: Vec::new(),
        }
    }

    /// Adds a pair, keeping any earlier value of the same key.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.push((key.into(), value.into()));
    }

    /// Sets a key, replacing every earlier value of it.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, value.into()));
    }

    /// Removes every value of a key, returning the first.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let first = self.entries.iter().position(|(k, _)| k == key)?;
        let value = self.entries.remove(first).1;
        self.entries.retain(|(k, _)| k != key);
        Some(value)
    }

    /// The first value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Appends every pair of `other`, after those already here.
    pub fn extend(&mut self, other: Metadata) {
        self.entries.extend(other.entries);
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn into_entries(self) -> Vec<(String, String)> {
        self.entries
    }

    pub(crate) fn from_entries(entries: Vec<(String, String)>) -> Metadata {
        Metadata { entries }
    }
}

/// Values of any type attached to a request by the code that handles it, by type: what a
/// server layer found out about the caller (an authenticated user, a tenant) for the handler
/// to read. They stay in the process; only [`Metadata`] travels.
pub use http::Extensions;

/// A message with its call context.
#[derive(Clone, Debug, Default)]
pub struct Request<T> {
    message: T,
    metadata: Metadata,
    extensions: Extensions,
    timeout: Option<Duration>,
    hash_key: Option<String>,
    deadline: Option<Instant>,
    remote_addr: Option<SocketAddr>,
}

impl<T> Request<T> {
    /// A request carrying `message`, with no metadata and the channel's default timeout.
    pub fn new(message: T) -> Request<T> {
        Request {
            message,
            metadata: Metadata::new(),
            extensions: Extensions::new(),
            timeout: None,
            hash_key: None,
            deadline: None,
            remote_addr: None,
        }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The metadata, mutably (callers add their pairs here).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Values attached to the request by layers (see [`Extensions`]).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values attached to the request, to add to: `extensions_mut().insert(User(..))`.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Caller side: this call's timeout, overriding the channel's default.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Caller side: builder form of [`set_timeout`](Request::set_timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Request<T> {
        self.timeout = Some(timeout);
        self
    }

    /// Caller side: the timeout set on this request, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Caller side: the key the `consistent_hash` balancer routes by; calls with the same key
    /// go to the same provider while the set of providers is stable.
    pub fn with_hash_key(mut self, key: impl Into<String>) -> Request<T> {
        self.hash_key = Some(key.into());
        self
    }

    /// Caller side: the hash key, if any.
    pub fn hash_key(&self) -> Option<&str> {
        self.hash_key.as_deref()
    }

    /// Provider side: when the caller stops waiting (derived from the budget it sent).
    /// The provider abandons the handler at that moment; handlers may use it to skip work.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Provider side: the caller's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Swaps the message for another, keeping the context.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            message: f(self.message),
            metadata: self.metadata,
            extensions: self.extensions,
            timeout: self.timeout,
            hash_key: self.hash_key,
            deadline: self.deadline,
            remote_addr: self.remote_addr,
        }
    }

    pub(crate) fn from_parts(
        message: T,
        metadata: Metadata,
        deadline: Option<Instant>,
        remote_addr: Option<SocketAddr>,
    ) -> Request<T> {
        Request {
            message,
            metadata,
            extensions: Extensions::new(),
            timeout: None,
            hash_key: None,
            deadline,
            remote_addr,
        }
    }
}

/// Anything a client method accepts: a bare message or a [`Request`] around it.
pub trait IntoRequest<T> {
    /// Wraps the value into a request.
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

impl<T: prost::Message> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_append_keeps() {
        let mut m = Metadata::new();
        m.append("k", "1");
        m.append("k", "2");
        assert_eq!(m.get("k"), Some("1"));
        assert_eq!(m.len(), 2);
        m.insert("k", "3");
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![("k", "3")]);
    }
}
