//! Python's `concurrent.futures` for Rust: [`Future`], [`wait`], [`as_completed`], and
//! executors that hand out futures.
//!
//! # From the top
//!
//! A [`Future`] is the result of work that may not have finished. Something completes it
//! through its [`Promise`]: an executor, or your own thread. Readers block on
//! [`Future::result`], give up after a while with [`Future::result_timeout`], move the value
//! out with [`Future::into_result`], `.await` it, or hang a callback on it.
//!
//! ```
//! use concurrent_futures::{Error, Promise};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Error> {
//! let (promise, future) = Promise::new();
//! std::thread::spawn(move || {
//!     promise.run(|| {
//!         std::thread::sleep(Duration::from_millis(20));
//!         "hello"
//!     })
//! });
//! assert_eq!(future.result_timeout(Duration::from_millis(1)), Err(Error::Timeout));
//! assert_eq!(*future.result()?, "hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Errors are values
//!
//! A task that panics does not take anything down: its future holds [`Error::Panicked`] with
//! the panic message, and every reader gets a copy.
//!
//! ```
//! use concurrent_futures::{Error, Executor, InlineExecutor};
//!
//! let executor = InlineExecutor::new();
//! let future = executor.submit(|| -> u32 { panic!("no luck") });
//! assert_eq!(future.result(), Err(Error::Panicked { message: "no luck".into() }));
//! ```
//!
//! # Cancelling
//!
//! [`Future::cancel`] works until a worker starts the task; then the task runs to the end.
//! A cancelled future is done, and wakes whoever waits on it.
//!
//! ```
//! use concurrent_futures::{Error, Promise};
//!
//! let (mut promise, future) = Promise::<u8>::new();
//! assert!(future.cancel());
//! assert_eq!(promise.set_running_or_notify_cancel(), Ok(false)); // the worker skips it
//! assert_eq!(future.result(), Err(Error::Cancelled));
//! ```
//!
//! # Many futures
//!
//! [`wait`] splits futures into done and not done once a [`ReturnWhen`] condition holds;
//! [`as_completed`] yields them as they finish.
//!
//! ```
//! use concurrent_futures::{Error, Promise, ReturnWhen, as_completed, wait};
//!
//! # fn main() -> Result<(), Error> {
//! let futures: Vec<_> = (1..=4_u64)
//!     .map(|n| {
//!         let (promise, future) = Promise::new();
//!         std::thread::spawn(move || promise.run(move || n * n));
//!         future
//!     })
//!     .collect();
//! let split = wait(&futures, None, ReturnWhen::AllCompleted);
//! assert_eq!(split.done.len(), 4);
//! drop(split);
//! let mut sum = 0;
//! for future in as_completed(futures, None) {
//!     sum += future?.into_result()?;
//! }
//! assert_eq!(sum, 1 + 4 + 9 + 16);
//! # Ok(())
//! # }
//! ```
//!
//! # Executors
//!
//! [`Executor`] runs closures, [`FnExecutor`] runs plain functions on serializable arguments
//! (the form that can cross into a worker process). [`InlineExecutor`] runs each task in the
//! caller's thread, for tests and debugging.
//!
//! [`ProcessPool`] runs plain functions in pre-forked worker processes, for isolation: a task
//! that panics, aborts or segfaults fails its own future and nothing else. Call
//! [`process::init`] at the top of `main` so that workers are forked from a single-threaded
//! fork server; the [`process`] module docs tell the rest.
//!
//! # Where this differs from CPython
//!
//! * A cancelled future counts as done for [`wait`] and [`as_completed`] at once (CPython
//!   waits for the executor to acknowledge it, and hangs on futures cancelled by shutdown).
//! * The [`as_completed`] timeout runs from the call, as CPython's docs say (CPython's code
//!   measures it from the first `next()`).
//! * Errors are values of one enum, [`Error`], not exceptions of several classes.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod error;
mod executor;
mod future;
pub mod process;
mod sync;
mod wait;

pub use error::Error;
pub use executor::{Executor, FnExecutor, InlineExecutor, Payload};
pub use future::{Awaiting, Future, Promise, State};
pub use process::ProcessPool;
pub use wait::{AsCompleted, DoneAndNotDone, ReturnWhen, as_completed, wait};
