//! Loom models of a scope's join: the scope ends while its last task completes. Under
//! `cfg(loom)` the scope's latch (count, lock, wake-up) is built on loom's primitives, so loom
//! tries every interleaving of the task finishing and the scope looking at its count.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_scope` (`.ci/run` does).

#![cfg(loom)]

use concurrent_futures::{Executor, Future, Promise};
use loom::cell::UnsafeCell;
use loom::thread;

/// A cell written from the scope's task and then from its caller, never at once if the join
/// is right: loom's `UnsafeCell` checks that claim on every interleaving.
struct Borrowed(UnsafeCell<u32>);

// SAFETY: the models below share it only between a scoped task and the scope's caller after
// the join, which is the ordering under test; loom reports any access that is not ordered.
unsafe impl Sync for Borrowed {}

impl Borrowed {
    fn new() -> Self {
        Borrowed(UnsafeCell::new(0))
    }

    fn add_one(&self) {
        // SAFETY: see `impl Sync`: loom checks the accesses are ordered.
        self.0.with_mut(|value| unsafe { *value += 1 });
    }

    fn get(&self) -> u32 {
        // SAFETY: as in `add_one`.
        self.0.with(|value| unsafe { *value })
    }
}

/// An executor that starts a loom thread per task: the task's last steps race the scope's
/// join.
struct ThreadPerTask;

impl Executor for ThreadPerTask {
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        let (promise, future) = Promise::new();
        thread::spawn(move || promise.run(f));
        future
    }

    fn shutdown(&self, _wait: bool, _cancel_futures: bool) {}

    fn max_workers(&self) -> usize {
        1
    }
}

/// A task writes what it borrows; the scope's caller writes it again once `scope` returns.
/// loom reports a data race (or a deadlock, for a lost wake-up) unless the task's write, and
/// everything the task does with the borrow, happens before `scope` returns.
#[test]
fn the_scope_ends_while_its_last_task_completes() {
    loom::model(|| {
        let borrowed = Borrowed::new();
        // The future leaves the scope unwaited: only the scope's own count can make it wait.
        // (Not leaked with `mem::forget`: loom reports a leaked `Arc`.)
        let future = ThreadPerTask.scope(|s| s.submit(|| borrowed.add_one()));
        borrowed.add_one();
        assert!(future.done());
        assert_eq!(borrowed.get(), 2);
    });
}

/// Two tasks whose futures are dropped at once, racing to finish: the count reaches zero once, after both.
#[test]
fn two_tasks_race_to_finish_the_scope() {
    loom::model(|| {
        let (first, second) = (Borrowed::new(), Borrowed::new());
        ThreadPerTask.scope(|s| {
            drop(s.submit(|| first.add_one()));
            drop(s.submit(|| second.add_one()));
        });
        first.add_one();
        second.add_one();
        assert_eq!(first.get() + second.get(), 4);
    });
}
