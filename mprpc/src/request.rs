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
    /// The call's trace id and its caller's span id, when they travel in the request
    /// header's own fields rather than as entries (see [`crate::trace`]).
    trace: Option<(u128, u64)>,
}

impl Metadata {
    /// Empty metadata.
    pub const fn new() -> Metadata {
        Metadata {
            entries: Vec::new(),
            trace: None,
        }
    }

    /// The trace and span ids carried beside the entries.
    pub(crate) fn trace_ids(&self) -> Option<(u128, u64)> {
        self.trace
    }

    /// Carries trace and span ids beside the entries (`None`: none).
    pub(crate) fn set_trace_ids(&mut self, ids: Option<(u128, u64)>) {
        self.trace = ids;
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
        Metadata {
            entries,
            trace: None,
        }
    }
}

/// Values of any type attached to a request by the code that handles it, by type: what a
/// server layer found out about the caller (an authenticated user, a tenant) for the handler
/// to read. They stay in the process; only [`Metadata`] travels.
pub use http::Extensions;

/// What running a method twice does, as its `.proto` declares it with protobuf's standard
/// option (`rpc Login(..) returns (..) { option idempotency_level = IDEMPOTENT; }`).
///
/// A consumer retries and hedges only calls of idempotent methods (see
/// `docs/RESILIENCE.md`); `mprpc-build` marks the generated clients' requests, and the
/// config's `[client.methods]` can say otherwise per method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Not declared: the method may change something each time it runs.
    #[default]
    Unknown,
    /// The method changes nothing (`NO_SIDE_EFFECTS`): a read.
    NoSideEffects,
    /// Running it twice has the effect of running it once (`IDEMPOTENT`).
    Idempotent,
}

impl Idempotency {
    /// Whether a call may safely run more than once.
    pub fn is_idempotent(self) -> bool {
        self != Idempotency::Unknown
    }

    /// The name protobuf uses: `IDEMPOTENCY_UNKNOWN`, `NO_SIDE_EFFECTS`, `IDEMPOTENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Idempotency::Unknown => "IDEMPOTENCY_UNKNOWN",
            Idempotency::NoSideEffects => "NO_SIDE_EFFECTS",
            Idempotency::Idempotent => "IDEMPOTENT",
        }
    }
}

/// A message with its call context.
#[derive(Clone, Debug, Default)]
pub struct Request<T> {
    message: T,
    metadata: Metadata,
    extensions: Extensions,
    timeout: Option<Duration>,
    hash_key: Option<String>,
    /// What the caller said, if it did: it wins over everything.
    idempotency: Option<Idempotency>,
    /// What the method declares in its `.proto` (set by the generated client).
    declared: Idempotency,
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
            idempotency: None,
            declared: Idempotency::Unknown,
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

    /// Caller side: what running this call twice would do, overriding what its method
    /// declares (the generated clients set the declared level; this wins over it).
    pub fn with_idempotency(mut self, level: Idempotency) -> Request<T> {
        self.idempotency = Some(level);
        self
    }

    /// Caller side: what running this call twice would do: the caller's own level if it
    /// set one, else what the method declares ([`Idempotency::Unknown`] if nothing).
    pub fn idempotency(&self) -> Idempotency {
        self.idempotency.unwrap_or(self.declared)
    }

    /// The level the caller set with [`with_idempotency`](Request::with_idempotency), if any:
    /// it wins over the config's `[client.methods]`, which wins over the declared level.
    pub(crate) fn caller_idempotency(&self) -> Option<Idempotency> {
        self.idempotency
    }

    /// The level the method declares in its `.proto`.
    pub(crate) fn declared_idempotency(&self) -> Idempotency {
        self.declared
    }

    /// Records the level the method declares (the generated clients call this).
    pub(crate) fn declare_idempotency(mut self, level: Idempotency) -> Request<T> {
        self.declared = level;
        self
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
            idempotency: self.idempotency,
            declared: self.declared,
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
            idempotency: None,
            declared: Idempotency::Unknown,
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
