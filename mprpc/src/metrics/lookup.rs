//! A small cache per thread in front of [`Metrics::method`]'s table.
//!
//! Every call looks its method's counters up on each side: under the table's lock, a hash and
//! a comparison of the service's name, then of the method's (about 250 instructions a side).
//! The last counters looked up are kept per thread, direct-mapped by where the names are
//! stored and which registry asked (a generated client's and a provider's names are
//! constants, at one address each); an entry is used only if its registry is the same one
//! and its names have the same bytes. Entries hold their registry weakly, so its memory
//! cannot be reused for another registry while an entry could still match it, and entries
//! are never wrong, only missing: the table keeps its counters for the registry's life.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::{Inner, MethodMetrics, Side};
use crate::hash::cache_slot;

/// Slots in each thread's cache (a power of two: see [`cache_slot`]).
const SLOTS: usize = 16;

struct Entry {
    registry: Weak<Inner>,
    side: Side,
    service: Box<str>,
    method: Box<str>,
    counters: Arc<MethodMetrics>,
}

thread_local! {
    static CACHE: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

fn slot(registry: &Arc<Inner>, side: Side, service: &str, method: &str) -> usize {
    let key = (Arc::as_ptr(registry) as u64)
        ^ (service.as_ptr() as u64).rotate_left(16)
        ^ (method.as_ptr() as u64).rotate_left(32)
        ^ ((service.len() as u64) << 8 | method.len() as u64 | (side as u64) << 7);
    cache_slot(key, SLOTS)
}

/// The counters of `registry`'s `service`/`method` on `side`, if this thread has them.
pub(super) fn cached(
    registry: &Arc<Inner>,
    side: Side,
    (service, method): (&str, &str),
) -> Option<Arc<MethodMetrics>> {
    let i = slot(registry, side, service, method);
    CACHE
        .try_with(|cache| {
            let cache = cache.borrow();
            let entry = cache[i].as_ref()?;
            let same = std::ptr::eq(entry.registry.as_ptr(), Arc::as_ptr(registry))
                && entry.side == side
                && *entry.service == *service
                && *entry.method == *method;
            same.then(|| entry.counters.clone())
        })
        .ok()
        .flatten()
}

/// Keeps `counters` as those of `registry`'s `service`/`method` on `side`.
pub(super) fn keep(
    registry: &Arc<Inner>,
    side: Side,
    (service, method): (&str, &str),
    counters: &Arc<MethodMetrics>,
) {
    let i = slot(registry, side, service, method);
    let _ = CACHE.try_with(|cache| {
        cache.borrow_mut()[i] = Some(Entry {
            registry: Arc::downgrade(registry),
            side,
            service: service.into(),
            method: method.into(),
            counters: counters.clone(),
        });
    });
}

#[cfg(test)]
mod tests {
    use crate::metrics::{Metrics, Side};
    use std::sync::Arc;

    #[test]
    fn counters_come_from_their_own_registry_and_names() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let names: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        for _ in 0..3 {
            for name in &names {
                for m in [&a, &b] {
                    let first = m.method(Side::Client, "pkg.S", name);
                    assert!(Arc::ptr_eq(&first, &m.method(Side::Client, "pkg.S", name)));
                    let server = m.method(Side::Server, "pkg.S", name);
                    assert!(!Arc::ptr_eq(&first, &server));
                }
                let (x, y) = (
                    a.method(Side::Client, "pkg.S", name),
                    b.method(Side::Client, "pkg.S", name),
                );
                assert!(!Arc::ptr_eq(&x, &y));
            }
        }
        // A registry gone and another in its place: never the old one's counters.
        for _ in 0..50 {
            let old = Metrics::new();
            let old_counters = old.method(Side::Server, "pkg.S", "M");
            drop(old);
            let new = Metrics::new();
            let counters = new.method(Side::Server, "pkg.S", "M");
            assert!(!Arc::ptr_eq(&old_counters, &counters));
            counters.start().finish(crate::Code::Ok);
            assert_eq!(new.snapshot().methods[0].calls, 1);
        }
    }
}
