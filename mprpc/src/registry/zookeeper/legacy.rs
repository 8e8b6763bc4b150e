//! The original C++ mprpc's layout beside mprpc's own (`legacy_layout`): where a provider
//! keeps its nodes (`/{Service}/{Method}`, data `ip:port`), and one list of a service's
//! providers from both layouts for its consumers.
//!
//! A provider found in both layouts (an mprpc provider that keeps the original's nodes too)
//! is listed once, as found in mprpc's own, and called with mprpc's protocol; one found only
//! in the original's is marked (`protocol = "legacy"` in its metadata) and called with the
//! original's protocol.

use std::sync::Arc;

use tokio::sync::watch;

use super::follow::Listed;
use super::Followed;
use crate::registry::ServiceInstance;

/// The service's unqualified name, as the original names it: `UserServiceRpc`.
pub(super) fn short_name(service: &str) -> &str {
    service.rsplit('.').next().unwrap_or(service)
}

/// The original's nodes of `instance`: `/{Service}/{Method}` for each of its methods.
pub(super) fn paths(instance: &ServiceInstance) -> Vec<String> {
    let short = short_name(&instance.service);
    instance
        .methods
        .iter()
        .map(|method| format!("/{short}/{method}"))
        .collect()
}

/// One list from the two followers of a service: mprpc's own providers, then those found
/// only in the original's layout. Listed once both have been read (as mprpc's own list
/// says: a refusal to read the original's nodes leaves them out). Kept by a task that ends
/// when every consumer of the list is gone.
pub(super) fn merge(native: Followed, legacy: Followed) -> Followed {
    let combine = |native: &[ServiceInstance], legacy: &[ServiceInstance]| {
        let mut list = native.to_vec();
        list.extend(
            legacy
                .iter()
                .filter(|l| !native.iter().any(|n| n.address == l.address))
                .cloned(),
        );
        Arc::new(list)
    };
    let status = |native: &Listed, legacy: &Listed| {
        if *native == Listed::NotYet || *legacy == Listed::NotYet {
            Listed::NotYet
        } else {
            native.clone()
        }
    };
    let (tx, instances) = watch::channel(combine(
        &native.instances.borrow(),
        &legacy.instances.borrow(),
    ));
    let (listed_tx, listed) =
        watch::channel(status(&native.listed.borrow(), &legacy.listed.borrow()));
    let Followed {
        instances: mut native_rx,
        listed: mut native_listed,
    } = native;
    let Followed {
        instances: mut legacy_rx,
        listed: mut legacy_listed,
    } = legacy;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                changed = native_rx.changed() => if changed.is_err() { return },
                changed = legacy_rx.changed() => if changed.is_err() { return },
                changed = native_listed.changed() => if changed.is_err() { return },
                changed = legacy_listed.changed() => if changed.is_err() { return },
            }
            let list = combine(
                &native_rx.borrow_and_update(),
                &legacy_rx.borrow_and_update(),
            );
            tx.send_if_modified(|old| {
                let changed = **old != *list;
                if changed {
                    *old = list;
                }
                changed
            });
            let now = status(
                &native_listed.borrow_and_update(),
                &legacy_listed.borrow_and_update(),
            );
            listed_tx.send_if_modified(|old| {
                let changed = *old != now;
                if changed {
                    *old = now;
                }
                changed
            });
        }
    });
    Followed { instances, listed }
}
