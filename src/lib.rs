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
//! // Slow work: it takes until `go` is dropped (a sleep would race a loaded machine).
//! let (go, slow) = std::sync::mpsc::channel::<()>();
//! std::thread::spawn(move || {
//!     promise.run(move || {
//!         let _ = slow.recv();
//!         "hello"
//!     })
//! });
//! assert_eq!(future.result_timeout(Duration::from_millis(1)), Err(Error::Timeout));
//! drop(go);
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
//! Two thread pools implement both: [`CpuPool`] runs CPU-bound closures on rayon (its own pool
//! or the global one), and a task there may wait on another task of the same pool without a
//! deadlock; [`IoPool`] runs blocking work on plain threads, started when no idle one can take
//! a task (up to `max_workers`) and retired when idle. Their builders return a [`BuildError`]
//! instead of panicking.
//!
//! ```
//! use concurrent_futures::{CpuPool, Executor, IoPool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let io = IoPool::builder().max_workers(8).build()?;
//! let cpu = CpuPool::new(2);
//! let text = io.submit(|| "3 4 5".to_owned()).into_result()?;
//! let sum = cpu.submit(move || text.split(' ').map(|n| n.parse::<u32>()).sum::<Result<u32, _>>());
//! assert_eq!(sum.into_result()??, 12);
//! # Ok(())
//! # }
//! ```
//!
//! [`ProcessPool`] runs plain functions in pre-forked worker processes, for isolation: a task
//! that panics, aborts or segfaults fails its own future and nothing else. Call
//! [`process::init`] at the top of `main` so that workers are forked from a single-threaded
//! fork server; the [`process`] module docs tell the rest.
//!
//! # Parallel maps
//!
//! [`Executor::map`] and [`ParMapExt::par_map`] run a closure over any iterator on a pool and
//! yield the results in input order ([`map_unordered`](Executor::map_unordered) and
//! [`par_map_unordered`](ParMapExt::par_map_unordered): as they complete). They are lazy: the
//! input is pulled on the consumer's thread (so it need not be `Send`), a chunk at a time, and
//! at most [`buffersize`](Map::buffersize) chunks are in flight, so an endless input runs in
//! constant memory. A panicking item fails only its own position.
//!
//! ```
//! use concurrent_futures::{CpuPool, Error, ParMapExt};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Error> {
//! let pool = CpuPool::new(2);
//! let lengths: Vec<usize> = ["a", "bb", "ccc"]
//!     .into_iter()
//!     .par_map(&pool, str::len)
//!     .timeout(Duration::from_secs(10))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(lengths, [1, 2, 3]);
//!
//! // An endless input, consumed as far as needed.
//! let first: Vec<u64> = (0..).par_map(&pool, |x: u64| x * x).take(3).collect::<Result<_, _>>()?;
//! assert_eq!(first, [0, 1, 4]);
//! # Ok(())
//! # }
//! ```
//!
//! # Where this differs from CPython
//!
//! * A cancelled future counts as done for [`wait`] and [`as_completed`] at once (CPython
//!   waits for the executor to acknowledge it, and hangs on futures cancelled by shutdown).
//! * The [`as_completed`] timeout runs from the call, as CPython's docs say (CPython's code
//!   measures it from the first `next()`).
//! * Errors are values of one enum, [`Error`], not exceptions of several classes.
//! * `map` pulls nothing before the first `next()`, goes on past failing items (CPython
//!   main's rule), and chunks work for thread pools too.

#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod executor;
mod future;
mod map;
#[cfg(feature = "progress")]
mod progress;
mod sync;
mod wait;

// The pools lock std's primitives; the loom build (`--cfg loom`) checks the core alone.
#[cfg(not(loom))]
mod build_error;
#[cfg(not(loom))]
mod cpu;
#[cfg(not(loom))]
mod io;
#[cfg(not(loom))]
mod job;
#[cfg(not(loom))]
pub mod process;

#[cfg(not(loom))]
pub use build_error::BuildError;
#[cfg(not(loom))]
pub use cpu::{CpuPool, CpuPoolBuilder};
pub use error::Error;
pub use executor::{Executor, FnExecutor, InlineExecutor, Payload};
pub use future::{Awaiting, Future, Promise, State};
#[cfg(not(loom))]
pub use io::{IoPool, IoPoolBuilder};
pub use map::{Chunk, Map, MapUnordered, ParMapExt, TARGET_CHUNK_TIME};
#[cfg(not(loom))]
pub use process::ProcessPool;
#[cfg(feature = "progress")]
pub use progress::Progress;
pub use wait::{AsCompleted, DoneAndNotDone, ReturnWhen, as_completed, wait};
