//! Locking that survives a panic elsewhere.
//!
//! The maps guarded in this crate (calls in flight, waiters, followed services) stay
//! consistent even if a thread panicked while holding the lock, so a poisoned lock is taken
//! as it is rather than spreading the panic.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
