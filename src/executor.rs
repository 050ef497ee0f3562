//! The [`Executor`] and [`FnExecutor`] traits every backend implements, the shutdown contract
//! they share, and [`InlineExecutor`], which runs each task in the caller's thread.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use crate::future::{Future, Promise};
use crate::map::{Chunk, Map, MapUnordered};

/// A value that can cross a process boundary: an argument or result of
/// [`FnExecutor::submit_fn`]. Implemented for every type that fits.
///
/// `Sync` because a result is completed on a pool thread while the caller's [`Future`] reads
/// it: a `Future<T>` is shared state, `Send` only when `T` is `Send + Sync`.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Payload for T {}

/// Runs closures and hands back [`Future`]s: the thread backends (`CpuPool`, `IoPool`) and
/// [`InlineExecutor`].
///
/// `submit` and `map` take closures on every backend that has them. A pool of other processes
/// (`ProcessPool`, `MpiPool`) cannot be sent a closure, so it does not implement this trait:
/// it runs a plain function on a serializable argument through [`FnExecutor`]'s `submit_fn`
/// and `map_fn`, and a `ProcessPool` runs a closure through `fork`, in a fresh child.
///
/// # The shutdown contract
///
/// After [`shutdown`](Executor::shutdown), [`submit`](Executor::submit) still returns a future,
/// already finished with [`Error::Shutdown`](crate::Error::Shutdown). With `cancel_futures`
/// every task not yet started is cancelled; with `wait` the call returns once every task that
/// was not cancelled has run. Calling it again is harmless. Dropping an executor that owns its
/// workers shuts it down with `wait = true`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not run closures: it is not an `Executor`",
    label = "an executor of closures is needed here",
    note = "a ProcessPool or MpiPool runs plain functions: use `submit_fn` / `map_fn` (trait \
            `FnExecutor`) with a `fn` and a serializable argument, or `ProcessPool::fork` for a \
            closure"
)]
pub trait Executor {
    /// Schedules `f` and returns the future of its result. A panic in `f` becomes
    /// [`Error::Panicked`](crate::Error::Panicked) in that future and harms nothing else.
    ///
    /// `T` must be `Sync` as well as `Send`: every clone of the future, on any thread, can
    /// borrow the value, and done-callbacks read it in the worker's thread.
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static;

    /// Stops taking work; see the trait docs for `wait` and `cancel_futures`.
    fn shutdown(&self, wait: bool, cancel_futures: bool);

    /// How many tasks can run at once; sizes the default window of [`map`](Executor::map).
    fn max_workers(&self) -> usize;

    /// Maps `f` over `items` in parallel, yielding results in input order. Lazy: nothing is
    /// pulled or submitted before the first `next()`, and at most `buffersize` chunks are in
    /// flight. See [`Map`] for the options and rules.
    fn map<F, I, T>(&self, f: F, items: I) -> Map<'_, I::IntoIter, T>
    where
        Self: Sized,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        T: Send + Sync + 'static,
    {
        Map::new(
            items.into_iter(),
            chunk_submitter(self, f),
            self.max_workers(),
        )
    }

    /// [`map`](Executor::map), yielding results as they complete.
    fn map_unordered<F, I, T>(&self, f: F, items: I) -> MapUnordered<'_, I::IntoIter, T>
    where
        Self: Sized,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        T: Send + Sync + 'static,
    {
        MapUnordered::new(
            items.into_iter(),
            chunk_submitter(self, f),
            self.max_workers(),
        )
    }
}

/// Submits each chunk of items as one closure task on `executor`.
fn chunk_submitter<'a, E, F, A, T>(
    executor: &'a E,
    f: F,
) -> Box<dyn FnMut(Vec<A>) -> Future<Chunk<T>> + 'a>
where
    E: Executor,
    F: Fn(A) -> T + Send + Sync + 'static,
    A: Send + 'static,
    T: Send + Sync + 'static,
{
    let f = Arc::new(f);
    Box::new(move |items| {
        let f = Arc::clone(&f);
        executor.submit(move || Chunk::run(&*f, items))
    })
}

/// Runs a plain function on a serializable argument: the interface every backend has,
/// processes included, since a function pointer and bytes are all a worker process can be
/// sent. Every [`Executor`] is one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an executor: it does not implement `FnExecutor`",
    label = "an executor of plain functions is needed here",
    note = "every `Executor` (CpuPool, IoPool, InlineExecutor) is an `FnExecutor`, and so are \
            ProcessPool and MpiPool"
)]
pub trait FnExecutor {
    /// Schedules `f(arg)` and returns the future of its result.
    fn submit_fn<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Payload,
        R: Payload;

    /// Schedules `f` over every item of `items` as one task: the building block of
    /// [`map_fn`](FnExecutor::map_fn). Each item's panic is its own error.
    fn submit_fn_chunk<A, R>(&self, f: fn(A) -> R, items: Vec<A>) -> Future<Chunk<R>>
    where
        A: Payload,
        R: Payload;

    /// How many tasks can run at once.
    fn max_workers(&self) -> usize;

    /// Maps `f` over `items` in parallel, in input order; see [`Map`].
    fn map_fn<A, R, I>(&self, f: fn(A) -> R, items: I) -> Map<'_, I::IntoIter, R>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        let submit = Box::new(move |items| self.submit_fn_chunk(f, items));
        Map::new(items.into_iter(), submit, FnExecutor::max_workers(self))
    }

    /// [`map_fn`](FnExecutor::map_fn), yielding results as they complete.
    fn map_fn_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> MapUnordered<'_, I::IntoIter, R>
    where
        Self: Sized,
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        let submit = Box::new(move |items| self.submit_fn_chunk(f, items));
        MapUnordered::new(items.into_iter(), submit, FnExecutor::max_workers(self))
    }
}

impl<E: Executor + ?Sized> FnExecutor for E {
    fn submit_fn<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Payload,
        R: Payload,
    {
        self.submit(move || f(arg))
    }

    fn submit_fn_chunk<A, R>(&self, f: fn(A) -> R, items: Vec<A>) -> Future<Chunk<R>>
    where
        A: Payload,
        R: Payload,
    {
        self.submit(move || Chunk::run(f, items))
    }

    fn max_workers(&self) -> usize {
        Executor::max_workers(self)
    }
}

/// An executor that runs each task at once, in the thread that calls
/// [`submit`](Executor::submit), before `submit` returns.
///
/// For tests and debugging (a panic's backtrace points into your caller), and as a small proof
/// that the traits can be implemented outside a pool.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, InlineExecutor};
///
/// # fn main() -> Result<(), Error> {
/// let executor = InlineExecutor::new();
/// let future = executor.submit(|| 2 + 2);
/// assert!(future.done());
/// assert_eq!(future.into_result()?, 4);
/// executor.shutdown(true, false);
/// assert_eq!(executor.submit(|| 0).into_result(), Err(Error::Shutdown));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct InlineExecutor {
    shut_down: AtomicBool,
}

impl InlineExecutor {
    /// A new executor that takes work.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for InlineExecutor {
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        if self.shut_down.load(Ordering::Acquire) {
            return Future::with_error(crate::Error::Shutdown);
        }
        let (promise, future) = Promise::new();
        promise.run(f);
        future
    }

    /// Nothing is ever queued, so `wait` and `cancel_futures` have nothing to act on.
    fn shutdown(&self, _wait: bool, _cancel_futures: bool) {
        self.shut_down.store(true, Ordering::Release);
    }

    /// One: the caller's thread.
    fn max_workers(&self) -> usize {
        1
    }
}
