//! Hashers of the maps a call looks up: its request id (the waiters, the calls in flight,
//! the open streams) and names (services, methods, their counters). std's SipHash cost
//! about 200 instructions a name in the profile of a 64-byte call, four names a call on each
//! side; these cost a few.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A map keyed by request id.
pub(crate) type IdMap<V> = HashMap<u64, V, IdHash>;

/// A map keyed by a name (of a service or a method): foldhash, with a random seed per map.
/// The names are the ones the process registered or called, not a peer's choice.
pub(crate) type NameMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The slot of `key` in a direct-mapped cache of `slots` entries (a power of two, at least
/// two): the top bits of Fibonacci hashing, so that keys close together (the addresses of
/// nearby constants) land apart. For the per-thread caches of names and of counters.
pub(crate) fn cache_slot(key: u64, slots: usize) -> usize {
    debug_assert!(slots.is_power_of_two() && slots >= 2);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - slots.trailing_zeros())) as usize
}

/// Hashes a request id with a multiplication and a per-table random key. The key keeps a
/// provider's tables (whose ids its peer picks) from being filled with ids chosen to collide.
#[derive(Clone, Debug)]
pub(crate) struct IdHash {
    key: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        IdHash {
            key: rand::random::<u64>() | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.key)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        let x = (id ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}
