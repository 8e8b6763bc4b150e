//! The service table: which hosted service a call names, and the refusal of one that is not
//! here. What happens to a call once its service is found is the stack's
//! ([`super::layer::stack`]).

use std::sync::Arc;

use super::service::Service;
use crate::hash::NameMap;
use crate::Status;

/// The services a provider hosts, by fully qualified name.
#[derive(Default, Clone)]
pub struct Router {
    /// By the bytes of the name: a request's header carries them, and is looked up without
    /// checking first that they are UTF-8 (every key is).
    services: NameMap<&'static [u8], Arc<dyn Service>>,
}

impl std::fmt::Debug for Router {
    /// The names of the hosted services.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("services", &self.names())
            .finish()
    }
}

impl Router {
    /// Adds a service.
    ///
    /// # Panics
    /// If a service of the same name is there already.
    pub fn add(&mut self, service: Arc<dyn Service>) {
        let name = service.name();
        if self.services.insert(name.as_bytes(), service).is_some() {
            panic!("service `{name}` was added to the provider twice");
        }
    }

    /// The service called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Service>> {
        self.services.get(name.as_bytes())
    }

    /// The service whose name is these bytes (none, if they are not UTF-8).
    pub(crate) fn get_bytes(&self, name: &[u8]) -> Option<&Arc<dyn Service>> {
        self.services.get(name)
    }

    /// Every hosted service.
    pub fn services(&self) -> impl Iterator<Item = &Arc<dyn Service>> {
        self.services.values()
    }

    /// The names of the hosted services, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.services.values().map(|s| s.name()).collect();
        names.sort_unstable();
        names
    }

    /// The status for a call to a service that is not here.
    pub(crate) fn unknown_service(&self, name: &str) -> Status {
        Status::unimplemented(format!(
            "no service `{}` on this provider (it hosts: {})",
            quote(name),
            self.names().join(", ")
        ))
    }
}

/// Longest piece of a peer's input quoted in an error message, in bytes.
pub(crate) const QUOTE_LIMIT: usize = 128;

/// A peer's input (a service or method name) as quoted in an error message: control
/// characters escaped and cut to about [`QUOTE_LIMIT`] bytes, so that a name of 8 MiB is not
/// sent back eight million times over, nor printed whole into a terminal.
pub(crate) fn quote(input: &str) -> String {
    let mut out = String::with_capacity(input.len().min(QUOTE_LIMIT + 16));
    for (i, c) in input.char_indices() {
        if out.len() >= QUOTE_LIMIT {
            out.push_str(&format!("... ({} more bytes)", input.len() - i));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_cut_and_escaped() {
        assert_eq!(quote("fixbug.UserServiceRpc"), "fixbug.UserServiceRpc");
        assert_eq!(quote("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        let long = "x".repeat(8 << 20);
        let quoted = quote(&long);
        assert!(quoted.len() < QUOTE_LIMIT + 40, "{}", quoted.len());
        assert!(quoted.ends_with(&format!("... ({} more bytes)", (8 << 20) - QUOTE_LIMIT)));
        // Cut at a character boundary.
        let wide = "\u{e9}".repeat(200);
        assert!(quote(&wide).starts_with("\u{e9}\u{e9}"));
    }
}
