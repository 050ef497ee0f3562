//! Scoped submission: [`Executor::scope`] and [`Scope`], whose tasks and maps may borrow
//! anything that outlives the scope, as `std::thread::scope`'s threads do.
//!
//! A pool's queue only takes `'static` closures, so a scoped task is boxed and its lifetime
//! erased before it is handed over. What makes that sound is the scope's own count of the
//! tasks it started: each task holds a [`Counted`] guard, dropped only after the task's
//! closure, its promise and everything else it owns are gone (whether it ran, was cancelled
//! or was dropped unrun by a shut-down pool), and [`Executor::scope`] does not return before
//! that count is back to zero. The count is the scope's, not the futures': a leaked
//! (`mem::forget`) future or map still leaves its tasks counted, so still joined.
//!
//! The join is a helping wait ([`wait_until`]), like every other wait of the crate: a scope
//! opened inside a `CpuPool` task runs the pool's jobs while it waits, so it cannot deadlock
//! even on a pool of one thread.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::executor::{Executor, Submitter};
use crate::future::{Future, Promise, State};
use crate::map::{Map, MapUnordered};
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, Wakeup, lock, wait_until};

/// What a scope and its tasks share: how many tasks are not finished, and where the scope
/// sleeps until they are.
struct Latch {
    unfinished: AtomicUsize,
    lock: Mutex<()>,
    wakeup: Wakeup,
}

impl Latch {
    fn finish_one(&self) {
        if self.unfinished.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Taking the lock orders this wake-up after the scope's last look at the count.
            let _guard = lock(&self.lock);
            self.wakeup.notify_all();
        }
    }

    /// Blocks (helping, on a pool thread) until every counted task is finished.
    fn join(&self) {
        let mut guard = lock(&self.lock);
        while self.unfinished.load(Ordering::SeqCst) != 0 {
            guard = wait_until(&self.wakeup, &self.lock, guard, None);
        }
    }
}

/// One counted task of a scope: counts it as finished when dropped. The latch is behind an
/// `Arc`, so the scope may return (and free its stack) the moment the count reaches zero,
/// while this guard is still notifying it.
struct Counted(Arc<Latch>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.finish_one();
    }
}

/// A scoped task: the closure and the promise of its future, then the guard. Fields drop in
/// declaration order, so the guard, last, counts the task finished only once the closure and
/// the promise (which may hold the last reference to a result borrowing `'env`) are gone.
struct ScopedTask<F, T> {
    work: Option<F>,
    promise: Option<Promise<T>>,
    _counted: Counted,
}

impl<F: FnOnce() -> T, T> ScopedTask<F, T> {
    fn run(mut self) {
        if let (Some(work), Some(promise)) = (self.work.take(), self.promise.take()) {
            promise.run(work);
        }
    }
}

impl<F, T> Drop for ScopedTask<F, T> {
    /// Dropped unrun (the pool cancelled it at shutdown, or refused it): its future is
    /// cancelled rather than left to a dropped promise's `Broken`.
    fn drop(&mut self) {
        if let Some(promise) = &mut self.promise {
            promise.cancel();
        }
    }
}

/// A scope opened by [`Executor::scope`]: submits tasks, and maps, that may borrow anything
/// that outlives the scope (`'env`). Every task started through it has finished (run,
/// cancelled or refused) when `scope` returns.
///
/// `'scope` is the scope's own lifetime, `'env` that of what its tasks may borrow; as in
/// [`std::thread::Scope`], both are invariant.
pub struct Scope<'scope, 'env: 'scope, E: ?Sized> {
    executor: &'scope E,
    latch: Arc<Latch>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope, 'env, E: Executor> Scope<'scope, 'env, E> {
    /// Schedules `f` on the scope's executor and returns the future of its result. `f` and
    /// its result may borrow anything that outlives the scope; the future has the whole
    /// [`Future`] API and works with [`wait`](crate::wait) and
    /// [`as_completed`](crate::as_completed). A panic in `f` becomes
    /// [`Error::Panicked`](crate::Error::Panicked) in this future only.
    ///
    /// On a shut-down or broken executor the future is already finished with the executor's
    /// error ([`Error::Shutdown`](crate::Error::Shutdown), ...). A task the executor drops
    /// unrun later (`shutdown(cancel_futures = true)`, or an `IoPool` that breaks while it is
    /// queued) is [`Cancelled`](crate::Error::Cancelled): the scope hands the pool a wrapper
    /// of its own, which cannot learn the pool's reason. Either way the scope counts it as
    /// finished once the pool has dropped it.
    pub fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + Sync + 'scope,
    {
        let (promise, future) = Promise::new();
        self.latch.unfinished.fetch_add(1, Ordering::SeqCst);
        let task = ScopedTask {
            work: Some(f),
            promise: Some(promise),
            _counted: Counted(Arc::clone(&self.latch)),
        };
        let job: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || task.run());
        // SAFETY: only the lifetime bound changes, `'scope` to `'static`; the layout of the
        // box is the same. The job (and through it `f`, its result's promise and everything
        // they borrow) is dropped before its `Counted` guard, whichever way it ends: run by a
        // worker, dropped unrun by a pool that cancels or refuses it, or dropped by `submit`
        // itself. The scope does not return before every guard is dropped (`Latch::join` in
        // `Executor::scope`, also when the body panics), and `'scope` ends no earlier than
        // that return, so nothing the job borrows can go away while the job exists. Leaking a
        // future or a map leaks no job: the pool still holds and runs it.
        let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
        let outer = self.executor.submit(job);
        // A pool that refuses the job at once (shut down, broken) dropped it, which cancelled
        // `future`; give its error instead, as `Executor::submit` would.
        if outer.state() == State::Finished
            && future.cancelled()
            && let Err(error) = outer.result()
        {
            return Future::with_error(error);
        }
        future
    }

    /// [`Executor::map`] inside the scope: `f`, the items and the results may borrow anything
    /// that outlives the scope. Same options and rules as [`Map`]; the map cannot outlive the
    /// scope, and a leaked one still has its tasks joined.
    pub fn map<F, I, T>(&self, f: F, items: I) -> Map<'_, I::IntoIter, T>
    where
        F: Fn(I::Item) -> T + Send + Sync + 'scope,
        I: IntoIterator,
        I::Item: Send + 'scope,
        T: Send + Sync + 'scope,
    {
        crate::executor::map_on(self, f, items)
    }

    /// [`map`](Scope::map), yielding results as they complete.
    pub fn map_unordered<F, I, T>(&self, f: F, items: I) -> MapUnordered<'_, I::IntoIter, T>
    where
        F: Fn(I::Item) -> T + Send + Sync + 'scope,
        I: IntoIterator,
        I::Item: Send + 'scope,
        T: Send + Sync + 'scope,
    {
        crate::executor::map_unordered_on(self, f, items)
    }
}

impl<'scope, E: Executor> crate::executor::sealed::Sealed for Scope<'scope, '_, E> {}

impl<'scope, E: Executor> Submitter<'scope> for Scope<'scope, '_, E> {
    fn submit_task<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + Sync + 'scope,
    {
        self.submit(f)
    }

    fn workers(&self) -> usize {
        self.executor.max_workers()
    }
}

impl<E: ?Sized> fmt::Debug for Scope<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("unfinished", &self.latch.unfinished.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// Runs `body` with a new scope on `executor`, joins every task it started, and returns what
/// `body` returned; a panic in `body` is resumed after the join. See [`Executor::scope`].
pub(crate) fn scope<'env, E, F, R>(executor: &E, body: F) -> R
where
    E: Executor,
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, E>) -> R,
{
    let scope = Scope {
        executor,
        latch: Arc::new(Latch {
            unfinished: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wakeup: Wakeup::new(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    scope.latch.join();
    match outcome {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}
