//! Locking that survives a panicked holder.
//!
//! The runtime, the engine and the adapters never run user code while they hold one of their
//! own locks (executors run outside them), so a lock poisoned by a panic elsewhere still
//! guards consistent data: refusing it would turn one caught executor panic into a dead
//! runtime. One helper, so that rule is stated once.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, WaitTimeoutResult};
use std::time::Duration;

/// Locks `m`, taking the data from a poisoned lock as it is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`Condvar::wait_timeout`] with the same rule for poisoned locks.
pub fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
}
