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

/// Something a blocked wait can do instead of sleeping: run one pending job of the pool the
/// current thread belongs to. Returns true if it ran one, false if the pool had nothing.
pub(crate) type Helper = fn() -> bool;

std::thread_local! {
    static HELPER: std::cell::Cell<Option<Helper>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `helper` installed for this thread: every wait of this crate that blocks
/// inside `f` runs the pool's other jobs meanwhile. This is how a CPU pool task that waits on
/// another task of the same pool avoids deadlock, even on a pool of one thread.
#[cfg_attr(
    loom,
    allow(dead_code, reason = "its only user, CpuPool, is not built under loom")
)]
pub(crate) fn with_helper<R>(helper: Helper, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Helper>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HELPER.with(|slot| slot.set(self.0));
        }
    }
    let _restore = Restore(HELPER.with(|slot| slot.replace(Some(helper))));
    f()
}

/// True on a thread with a [`Helper`] installed: its waits run jobs rather than spin.
pub(crate) fn helping() -> bool {
    HELPER.with(std::cell::Cell::get).is_some()
}

/// How long a helping wait sleeps when its pool has nothing to run: short, because new jobs
/// may arrive, and a completion wakes it earlier anyway.
const HELPER_NAP: std::time::Duration = std::time::Duration::from_micros(200);

/// Waits on `condvar` (paired with `mutex`, which `guard` locks) until notified or until
/// `deadline` passes (`None`: no deadline).
///
/// Returns the guard again; the caller re-checks its condition, so spurious wake-ups, time-outs
/// and helping are all just another turn of its loop. On a thread with a [`Helper`] installed
/// the lock is released while the helper runs one job, and the nap is short.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> MutexGuard<'a, T> {
    let Some(helper) = HELPER.with(std::cell::Cell::get) else {
        return timed_wait(condvar, guard, deadline, None);
    };
    drop(guard);
    let ran = helper();
    let guard = lock(mutex);
    if ran {
        guard
    } else {
        timed_wait(condvar, guard, deadline, Some(HELPER_NAP))
    }
}

fn timed_wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
    nap: Option<std::time::Duration>,
) -> MutexGuard<'a, T> {
    let left =
        deadline.map(|deadline| deadline.saturating_duration_since(std::time::Instant::now()));
    let limit = match (left, nap) {
        (Some(left), Some(nap)) => Some(left.min(nap)),
        (left, nap) => left.or(nap),
    };
    match limit {
        None => condvar
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Some(limit) => {
            condvar
                .wait_timeout(guard, limit)
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::with_helper;
    use crate::{Future, Promise, ReturnWhen, as_completed, wait};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    std::thread_local! {
        static JOBS: RefCell<VecDeque<Box<dyn FnOnce()>>> = RefCell::new(VecDeque::new());
    }

    /// A one-thread "pool": its queue is a thread-local, its helper runs the next job.
    fn run_one() -> bool {
        let job = JOBS.with(|jobs| jobs.borrow_mut().pop_front());
        job.map(|job| job()).is_some()
    }

    fn queued(value: u32) -> Future<u32> {
        let (promise, future) = Promise::new();
        JOBS.with(|jobs| {
            jobs.borrow_mut()
                .push_back(Box::new(move || promise.run(|| value)))
        });
        future
    }

    #[test]
    fn a_helping_wait_runs_the_job_it_waits_for_on_the_same_thread() {
        let future = queued(7);
        assert_eq!(with_helper(run_one, || future.result().copied()), Ok(7));

        let futures = vec![queued(1), queued(2)];
        let split = with_helper(run_one, || wait(&futures, None, ReturnWhen::AllCompleted));
        assert_eq!(split.done.len(), 2);

        let futures = vec![queued(3), queued(4)];
        let sum: u32 = with_helper(run_one, || {
            as_completed(futures, None)
                .map(|f| *f.unwrap().result().unwrap())
                .sum()
        });
        assert_eq!(sum, 7);
    }
}
