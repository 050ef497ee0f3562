//! The synchronisation primitives the core is built from, swapped for loom's under `cfg(loom)`.
//!
//! Everything in `future.rs` and `wait.rs` that takes a lock, waits on a condition variable,
//! touches a shared atomic or yields goes through this module, so the loom model tests in
//! `tests/loom_future.rs` check the production code itself rather than a copy of it (the
//! habit copied from tokio's `src/loom/`).

#[cfg(loom)]
pub(crate) use loom::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    thread::yield_now,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    thread::yield_now,
};

/// Locks `mutex`, ignoring poisoning.
///
/// No code of ours panics while it holds one of these locks (callbacks and user closures
/// always run after the guard is dropped), so a poisoned lock still guards a consistent value.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits on `condvar` until notified or until `deadline` passes (`None`: no deadline).
///
/// Returns the guard again; the caller re-checks its condition, so spurious wake-ups and
/// time-outs are both just another turn of its loop.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> MutexGuard<'a, T> {
    match deadline {
        None => condvar
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0
        }
    }
}

/// The instant `timeout` from now, or `None` (wait forever) when that is not representable.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}

/// True once `deadline` has passed; never for `None`.
pub(crate) fn expired(deadline: Option<std::time::Instant>) -> bool {
    deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline)
}
