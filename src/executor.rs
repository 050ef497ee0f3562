//! The [`Executor`] and [`FnExecutor`] traits every backend implements, the shutdown contract
//! they share, and [`InlineExecutor`], which runs each task in the caller's thread.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::future::{Future, Promise};

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
/// # The shutdown contract
///
/// After [`shutdown`](Executor::shutdown), [`submit`](Executor::submit) still returns a future,
/// already finished with [`Error::Shutdown`](crate::Error::Shutdown). With `cancel_futures`
/// every task not yet started is cancelled; with `wait` the call returns once every task that
/// was not cancelled has run. Calling it again is harmless. Dropping an executor that owns its
/// workers shuts it down with `wait = true`.
pub trait Executor {
    /// Schedules `f` and returns the future of its result. A panic in `f` becomes
    /// [`Error::Panicked`](crate::Error::Panicked) in that future and harms nothing else.
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// Stops taking work; see the trait docs for `wait` and `cancel_futures`.
    fn shutdown(&self, wait: bool, cancel_futures: bool);
}

/// Runs a plain function on a serializable argument: the interface every backend has,
/// processes included, since a function pointer and bytes are all a worker process can be
/// sent. Every [`Executor`] is one.
pub trait FnExecutor {
    /// Schedules `f(arg)` and returns the future of its result.
    fn submit_fn<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Payload,
        R: Payload;
}

impl<E: Executor + ?Sized> FnExecutor for E {
    fn submit_fn<A, R>(&self, f: fn(A) -> R, arg: A) -> Future<R>
    where
        A: Payload,
        R: Payload,
    {
        self.submit(move || f(arg))
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
        T: Send + 'static,
    {
        let (mut promise, future) = Promise::new();
        if self.shut_down.load(Ordering::Acquire) {
            // A fresh promise is pending, so this cannot fail.
            let _ = promise.set_error(crate::Error::Shutdown);
        } else {
            promise.run(f);
        }
        future
    }

    /// Nothing is ever queued, so `wait` and `cancel_futures` have nothing to act on.
    fn shutdown(&self, _wait: bool, _cancel_futures: bool) {
        self.shut_down.store(true, Ordering::Release);
    }
}
