//! Service and method names as a request's header carries them: `Bytes`, taken from a small
//! cache per thread rather than copied for every call.
//!
//! A name copied into a fresh `Bytes` costs an allocation, and prost's encoding of a `bytes`
//! field clones it, which for a `Bytes` fresh from a `Vec` allocates once more; a cached one
//! is shared, and its clones only count references. The cache is direct-mapped by where the
//! name is stored (a generated client's names are constants, at one address each) and checks
//! the bytes, so a name is never mistaken for another. A miss costs a little more than the
//! plain copy did (the copy, and its promotion to a shared buffer); names built afresh for
//! each call, or two that keep taking the same slot from each other, pay it every time.

use std::cell::RefCell;

use bytes::Bytes;

use crate::hash::cache_slot;

/// Slots in each thread's cache (a power of two: see [`cache_slot`]).
const SLOTS: usize = 32;

thread_local! {
    static NAMES: RefCell<[Bytes; SLOTS]> = const { RefCell::new([const { Bytes::new() }; SLOTS]) };
}

/// `name` as the header carries it.
pub(super) fn wire_name(name: &str) -> Bytes {
    let key = (name.as_ptr() as u64) ^ (name.len() as u64).rotate_left(32);
    let slot = cache_slot(key, SLOTS);
    NAMES
        .try_with(|names| {
            let mut names = names.borrow_mut();
            let cached = &mut names[slot];
            if cached.as_ref() != name.as_bytes() {
                // Cloned once here, so that it is shared from now on.
                *cached = Bytes::copy_from_slice(name.as_bytes()).clone();
            }
            cached.clone()
        })
        // The thread is ending: no cache.
        .unwrap_or_else(|_| Bytes::copy_from_slice(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_as_they_were_whatever_shares_their_slot() {
        let owned: Vec<String> = (0..200).map(|i| format!("pkg.Service{i}")).collect();
        for _ in 0..3 {
            for name in &owned {
                assert_eq!(wire_name(name), name.as_bytes());
            }
        }
        assert_eq!(wire_name("Echo"), "Echo");
        assert_eq!(wire_name(""), "");
        // The same address, other contents: never the old name.
        let mut reused = String::with_capacity(16);
        reused.push_str("First");
        assert_eq!(wire_name(&reused), "First");
        reused.clear();
        reused.push_str("Other");
        assert_eq!(wire_name(&reused), "Other");
    }
}
