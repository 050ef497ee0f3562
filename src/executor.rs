//! The [`Executor`] and [`FnExecutor`] traits every backend implements, the shutdown contract
//! they share, and [`InlineExecutor`], which runs each task in the caller's thread.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use crate::future::{Future, Promise};
use crate::map::{Chunk, Map, MapUnordered};
use crate::scope::Scope;

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
        map_on(self, f, items)
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
        map_unordered_on(self, f, items)
    }

    /// Runs `body` with a [`Scope`] whose tasks and maps may borrow anything that outlives
    /// the call (`'env`), waits until every task started through it has finished, and
    /// returns what `body` returned, like [`std::thread::scope`].
    ///
    /// The scope itself counts and joins its tasks, so a future or map leaked with
    /// `mem::forget` cannot let a task outlive what it borrows. The join is a helping wait
    /// like every other: a scope inside a `CpuPool` task runs the pool's jobs while it
    /// waits, even on a pool of one thread. A scope on an `IoPool`, opened inside a task of
    /// the same pool, blocks that thread as any wait there does.
    ///
    /// # Panics
    ///
    /// If `body` panics: once every task it started has finished, the panic is resumed. A
    /// panicking task fails only its own future.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{CpuPool, Executor, ParMapExt};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = CpuPool::new(2)?;
    /// let table = std::collections::HashMap::from([("one", 1), ("two", 2)]);
    /// let words = vec!["one", "two", "three"];
    /// let (total, found) = pool.scope(|s| {
    ///     let total = s.submit(|| words.iter().map(|w| w.len()).sum::<usize>());
    ///     let found: Vec<Option<i32>> = words
    ///         .iter()
    ///         .par_map(s, |w| table.get(w).copied())
    ///         .collect::<Result<_, _>>()?;
    ///     Ok::<_, concurrent_futures::Error>((total.into_result()?, found))
    /// })?;
    /// assert_eq!((total, found), (11, vec![Some(1), Some(2), None]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A scoped future may leave the scope when what it borrows outlives it, but not when
    /// what it borrows is shorter-lived:
    ///
    /// ```compile_fail,E0597
    /// use concurrent_futures::{Executor, InlineExecutor};
    ///
    /// let pool = InlineExecutor::new();
    /// let escaped;
    /// {
    ///     let local = String::from("short-lived");
    ///     escaped = pool.scope(|s| s.submit(|| local.as_str()));
    /// }
    /// println!("{:?}", escaped.result());
    /// ```
    ///
    /// A map cannot leave its scope at all:
    ///
    /// ```compile_fail
    /// use concurrent_futures::{Executor, InlineExecutor};
    ///
    /// let pool = InlineExecutor::new();
    /// let data = vec![1, 2, 3];
    /// let map = pool.scope(|s| s.map(|x: &i32| x + 1, &data));
    /// drop(map);
    /// ```
    ///
    /// What a task captures must be `Send`:
    ///
    /// ```compile_fail,E0277
    /// use concurrent_futures::{Executor, InlineExecutor};
    /// use std::rc::Rc;
    ///
    /// let pool = InlineExecutor::new();
    /// let shared = Rc::new(5);
    /// pool.scope(|s| s.submit(|| *shared + 1).into_result());
    /// ```
    fn scope<'env, F, R>(&self, body: F) -> R
    where
        Self: Sized,
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, Self>) -> R,
    {
        crate::scope::scope(self, body)
    }
}

/// What a map needs from where it runs: a way to submit one closure whose captures and result
/// live for `'a`, and how many run at once. Implemented by every [`Executor`] (for
/// `'static` closures) and by a [`Scope`] (for closures that borrow what outlives it), so
/// that [`ParMapExt::par_map`](crate::ParMapExt::par_map) takes either. Sealed.
pub trait Submitter<'a>: sealed::Sealed {
    /// Schedules `f`; [`Executor::submit`] or [`Scope::submit`].
    #[doc(hidden)]
    fn submit_task<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + Sync + 'a;

    /// How many tasks can run at once.
    #[doc(hidden)]
    fn workers(&self) -> usize;
}

pub(crate) mod sealed {
    /// Keeps [`Submitter`](super::Submitter) to this crate's types.
    pub trait Sealed {}
}

impl<E: Executor> sealed::Sealed for E {}

impl<E: Executor> Submitter<'static> for E {
    fn submit_task<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.submit(f)
    }

    fn workers(&self) -> usize {
        self.max_workers()
    }
}

/// A [`Map`] of `f` over `items`, each chunk one task on `on`.
pub(crate) fn map_on<'s, 'a, S, F, I, T>(on: &'s S, f: F, items: I) -> Map<'s, I::IntoIter, T>
where
    S: Submitter<'a> + ?Sized,
    'a: 's,
    F: Fn(I::Item) -> T + Send + Sync + 'a,
    I: IntoIterator,
    I::Item: Send + 'a,
    T: Send + Sync + 'a,
{
    Map::new(items.into_iter(), chunk_submitter(on, f), on.workers())
}

/// A [`MapUnordered`] of `f` over `items`, each chunk one task on `on`.
pub(crate) fn map_unordered_on<'s, 'a, S, F, I, T>(
    on: &'s S,
    f: F,
    items: I,
) -> MapUnordered<'s, I::IntoIter, T>
where
    S: Submitter<'a> + ?Sized,
    'a: 's,
    F: Fn(I::Item) -> T + Send + Sync + 'a,
    I: IntoIterator,
    I::Item: Send + 'a,
    T: Send + Sync + 'a,
{
    MapUnordered::new(items.into_iter(), chunk_submitter(on, f), on.workers())
}

/// Submits each chunk of items as one closure task on `on`.
fn chunk_submitter<'s, 'a, S, F, A, T>(
    on: &'s S,
    f: F,
) -> Box<dyn FnMut(Vec<A>) -> Future<Chunk<T>> + 's>
where
    S: Submitter<'a> + ?Sized,
    'a: 's,
    F: Fn(A) -> T + Send + Sync + 'a,
    A: Send + 'a,
    T: Send + Sync + 'a,
{
    let f = Arc::new(f);
    Box::new(move |items| {
        let f = Arc::clone(&f);
        on.submit_task(move || Chunk::run(&*f, items))
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
