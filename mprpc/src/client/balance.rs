//! Load balancing: the order in which a call tries a service's providers.
//!
//! A balancer only orders; the channel then tries providers in that order, putting those
//! that are waiting out a reconnect backoff last, and moves on when a call could not be sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::Rng;

use super::endpoint::Endpoint;
use crate::config::LoadBalance;
use crate::registry::ServiceInstance;

/// Per-service balancing state.
#[derive(Default)]
pub(crate) struct Balancer {
    next: AtomicUsize,
}

impl Balancer {
    /// The provider to try first: an index into `instances` (and the matching `endpoints`).
    pub(crate) fn first(
        &self,
        policy: LoadBalance,
        instances: &[ServiceInstance],
        endpoints: &[Arc<Endpoint>],
        key: Option<&str>,
    ) -> usize {
        let n = instances.len();
        if n <= 1 {
            return 0;
        }
        match (policy, key) {
            (LoadBalance::ConsistentHash, Some(key)) => rendezvous_best(instances, key),
            (LoadBalance::WeightedRandom, _) => weighted_pick(instances, &mut rand::rng()),
            (LoadBalance::LeastLoaded, _) => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                if endpoints[b].load() < endpoints[a].load() {
                    b
                } else {
                    a
                }
            }
            _ => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// Every provider, best first, starting from `first` (what [`Balancer::first`] chose):
    /// the fallback order when it cannot be used.
    pub(crate) fn order(
        &self,
        policy: LoadBalance,
        first: usize,
        instances: &[ServiceInstance],
        key: Option<&str>,
    ) -> Vec<usize> {
        match (policy, key) {
            (LoadBalance::ConsistentHash, Some(key)) => rendezvous(instances, key),
            _ => rotate(first, instances.len()),
        }
    }
}

fn rotate(first: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (first + i) % n).collect()
}

fn weighted_pick(instances: &[ServiceInstance], rng: &mut impl Rng) -> usize {
    let total: u64 = instances.iter().map(|i| u64::from(i.weight)).sum();
    if total == 0 {
        return rng.random_range(0..instances.len());
    }
    let mut point = rng.random_range(0..total);
    for (i, instance) in instances.iter().enumerate() {
        let w = u64::from(instance.weight);
        if point < w {
            return i;
        }
        point -= w;
    }
    instances.len() - 1
}

fn score(key_hash: u64, instance: &ServiceInstance) -> u64 {
    mix(key_hash ^ fnv1a(instance.address.as_bytes()))
}

/// The rendezvous winner for `key`, without sorting everybody.
fn rendezvous_best(instances: &[ServiceInstance], key: &str) -> usize {
    let key_hash = fnv1a(key.as_bytes());
    instances
        .iter()
        .enumerate()
        .max_by_key(|(_, inst)| score(key_hash, inst))
        .map_or(0, |(i, _)| i)
}

/// Rendezvous (highest random weight) hashing: every provider gets a score for the key, and
/// the highest wins. The same key maps to the same provider while the set is stable; when a
/// provider leaves, only its keys move.
fn rendezvous(instances: &[ServiceInstance], key: &str) -> Vec<usize> {
    let key_hash = fnv1a(key.as_bytes());
    let mut scored: Vec<(u64, usize)> = instances
        .iter()
        .enumerate()
        .map(|(i, inst)| (score(key_hash, inst), i))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// FNV-1a: stable across processes and builds, so every consumer maps a key alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The splitmix64 finaliser: spreads similar inputs apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(n: usize) -> Vec<ServiceInstance> {
        (0..n)
            .map(|i| ServiceInstance::new("s", format!("10.0.0.{i}:80")))
            .collect()
    }

    #[test]
    fn rendezvous_is_stable_and_moves_only_the_leavers_keys() {
        let five = instances(5);
        let four: Vec<_> = five[..4].to_vec();
        let mut moved = 0;
        for k in 0..1000 {
            let key = format!("user-{k}");
            let a = &five[rendezvous(&five, &key)[0]];
            assert_eq!(a, &five[rendezvous_best(&five, &key)], "best is first");
            let b = &four[rendezvous(&four, &key)[0]];
            if a != b {
                assert_eq!(a.address, "10.0.0.4:80", "only keys of the leaver move");
                moved += 1;
            }
        }
        assert!((100..300).contains(&moved), "about a fifth move: {moved}");
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let mut list = instances(2);
        list[0].weight = 300;
        list[1].weight = 100;
        let mut rng = rand::rng();
        let firsts = (0..4000)
            .filter(|_| weighted_pick(&list, &mut rng) == 0)
            .count();
        assert!((2700..3300).contains(&firsts), "{firsts}");
    }
}
