//! Python's `concurrent.futures` for Rust: executors that hand out [`Future`]s, [`wait`] and
//! [`as_completed`] over many of them, and lazy parallel maps over any iterator.
//!
//! # From the top
//!
//! Any iterator goes parallel by changing one word, `.map(f)` to `.par_map(s, f)`, and the
//! closure, the items and the results may borrow, as `.map`'s do: inside a
//! [`scope`](Executor::scope), which waits for every task started in it (like
//! `std::thread::scope`), tasks may borrow anything that outlives the scope.
//!
//! ```
//! use concurrent_futures::{CpuPool, Executor, ParMapExt};
//! use std::collections::HashMap;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = CpuPool::new(2)?;
//! let table = HashMap::from([("one", 1), ("two", 2)]);
//! let words = vec!["one", "two", "three"];
//! let found: Vec<Option<i32>> = pool.scope(|s| {
//!     words.iter().par_map(s, |w| table.get(w).copied()).collect::<Result<_, _>>()
//! })?;
//! assert_eq!(found, [Some(1), Some(2), None]);
//!
//! // One task that borrows: `Scope::submit` returns an ordinary `Future`.
//! let longest = pool.scope(|s| s.submit(|| words.iter().map(|w| w.len()).max()).into_result())?;
//! assert_eq!(longest, Some(5));
//! # Ok(())
//! # }
//! ```
//!
//! Outside a scope, what a pool runs must be `'static` (it may outlive the caller's frame):
//! move owned data in.
//!
//! Submit a closure to a pool, get a [`Future`], read its result when you need it: block
//! with [`Future::result`], give up after a while with [`Future::result_timeout`], or move
//! the value out with [`Future::into_result`]. Every clone of a future is a handle to the
//! same value: any handle borrows it, only the last one moves it out (others alive:
//! [`Error::Shared`], see [`Future`]'s docs for the idioms).
//!
//! ```
//! use concurrent_futures::{CpuPool, Error, Executor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = CpuPool::new(2)?;
//! let answer = pool.submit(|| (1..=10_u64).product::<u64>());
//! // ... do something else meanwhile ...
//! assert_eq!(*answer.result()?, 3_628_800);
//! assert_eq!(answer.into_result()?, 3_628_800); // the value itself, no Clone needed
//! # Ok(())
//! # }
//! ```
//!
//! # Errors are values
//!
//! A task that panics takes nothing down: its future holds [`Error::Panicked`] with the panic
//! message, and every reader gets a copy. [`Error`] has one variant per way a result can fail:
//! cancelled, timed out, panicked, pool broken, worker process died, submitted after shutdown.
//!
//! ```
//! use concurrent_futures::{Error, Executor, IoPool};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = IoPool::new(4)?;
//! let failed = pool.submit(|| -> u32 { panic!("no luck") });
//! assert_eq!(failed.result(), Err(Error::Panicked { message: "no luck".into() }));
//! let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(200)));
//! assert_eq!(slow.result_timeout(Duration::ZERO), Err(Error::Timeout)); // it goes on
//! pool.shutdown(true, false);
//! assert_eq!(pool.submit(|| 1).result(), Err(Error::Shutdown));
//! # Ok(())
//! # }
//! ```
//!
//! # Panics in tasks
//!
//! One rule on every pool: a task's panic goes into its future, and *also* through the panic
//! hook, as any panic in Rust does, so by default it is printed on standard error with where
//! it happened (and a backtrace under `RUST_BACKTRACE=1`), even when nobody reads the future.
//! On [`CpuPool`] and [`IoPool`] that is the program's hook on the pool's thread; in a
//! [`ProcessPool`] worker std's hook prints on the worker's standard error, which is the
//! program's; on an `MpiPool` rank, the hook that rank had. CPython prints nothing and leaves
//! the exception to whoever reads the future: `print_panics(false)`, the same option on every
//! pool's builder, does that. It also covers an initializer's panic.
//!
//! ```
//! use concurrent_futures::{CpuPool, Error, Executor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let quiet = CpuPool::builder().num_threads(1).print_panics(false).build()?;
//! let failed = quiet.submit(|| -> u32 { panic!("expected, and not printed") });
//! assert!(matches!(failed.result(), Err(Error::Panicked { .. })));
//! # Ok(())
//! # }
//! ```
//!
//! On the thread pools, `print_panics(false)` works through a panic hook installed once, at the
//! first such pool, that wraps the hook already set and skips it for panics in those pools'
//! tasks; every other panic still reaches the wrapped hook. A hook set after that replaces the
//! wrapper, and the pools' panics reach it again: set your own hook before building the pool.
//! A [`ProcessPool::fork`] child keeps the program's hook.
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
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = CpuPool::new(2)?;
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
//! # Many futures
//!
//! [`wait`] splits futures into done and not done once a [`ReturnWhen`] condition holds (or a
//! timeout passes); [`as_completed`] yields them as they finish.
//!
//! ```
//! use concurrent_futures::{Error, Executor, IoPool, ReturnWhen, as_completed, wait};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = IoPool::new(4)?;
//! let futures: Vec<_> = (1..=4_u64).map(|n| pool.submit(move || n * n)).collect();
//! let split = wait(&futures, None, ReturnWhen::AllCompleted);
//! assert_eq!((split.done.len(), split.not_done.len()), (4, 0));
//! drop(split);
//! let mut sum = 0;
//! for future in as_completed(futures, Some(Duration::from_secs(10))) {
//!     sum += future?.into_result()?;
//! }
//! assert_eq!(sum, 1 + 4 + 9 + 16);
//! # Ok(())
//! # }
//! ```
//!
//! # Cancelling
//!
//! [`Future::cancel`] works until a worker starts the task; then the task runs to the end.
//! A cancelled future is done, wakes whoever waits on it, and its task never runs.
//! `shutdown(wait, cancel_futures = true)` cancels everything still queued.
//!
//! ```
//! use concurrent_futures::{Error, Executor, IoPool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = IoPool::new(1)?;
//! let (release, blocker) = std::sync::mpsc::channel::<()>();
//! let busy = pool.submit(move || blocker.recv().is_ok()); // holds the only worker
//! let queued = pool.submit(|| "never runs");
//! assert!(queued.cancel());
//! assert_eq!(queued.result(), Err(Error::Cancelled));
//! drop(release);
//! assert_eq!(busy.result(), Ok(&false));
//! # Ok(())
//! # }
//! ```
//!
//! # Choosing a backend
//!
//! | work | backend | why |
//! | --- | --- | --- |
//! | CPU-bound closures | [`CpuPool`] | rayon's work-stealing threads; a task may wait on another task of its pool without a deadlock |
//! | blocking I/O: files, sockets, sleeps, subprocesses | [`IoPool`] | plain threads, started on demand up to `max_workers` (default `min(32, cores + 4)`), retired when idle |
//! | isolation: code that may crash, leak or must not share a heap | [`ProcessPool`] (Linux) | pre-forked worker processes; a segfault fails one future, a new worker takes over |
//! | tests, debugging | [`InlineExecutor`] | runs each task in the caller's thread |
//!
//! `cargo run --release --example compare` measures them side by side on your machine.
//!
//! One name per meaning on every backend: `submit` and `map` take a closure ([`Executor`]: the
//! thread pools and [`InlineExecutor`]); `submit_fn` and `map_fn` take a plain function and a
//! serializable argument ([`FnExecutor`]: every backend, processes included), so code written
//! against `FnExecutor` runs anywhere. A [`ProcessPool`] runs a closure only through
//! `fork`, one fresh child per call.
//!
//! Every pool's `new` and `build` return `Result<_, BuildError>`: zero workers is an error
//! ([`BuildError::Zero`]), as it is CPython's `ValueError`, not a panic.
//!
//! The thread pools and everything else run wherever std does; [`ProcessPool`] and `MpiPool`
//! are Linux only (fork server, pidfds, signalfd) and are not compiled elsewhere.
//!
//! # Processes
//!
//! A [`ProcessPool`] runs a plain function (`fn(A) -> R`, with `A` and `R` serializable) in a
//! worker process: a fork of a single-threaded fork server, which is this executable started
//! afresh, so a pool can be built anywhere (in `main`, a test, a library, on any thread).
//! Workers that die are replaced; the task they held fails with [`Error::WorkerDied`].
//!
//! ```
//! # #[cfg(target_os = "linux")]
//! use concurrent_futures::{Error, FnExecutor, ProcessPool};
//!
//! fn collatz_steps(mut n: u64) -> u32 {
//!     let mut steps = 0;
//!     while n != 1 {
//!         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
//!         steps += 1;
//!     }
//!     steps
//! }
//!
//! fn crash(_: ()) -> u8 {
//!     std::process::abort()
//! }
//!
//! # #[cfg(target_os = "linux")]
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = ProcessPool::new(2)?;
//!     assert_eq!(pool.submit_fn(collatz_steps, 27).into_result()?, 111);
//!     let steps: Vec<u32> = pool.map_fn(collatz_steps, 1..=5).collect::<Result<_, _>>()?;
//!     assert_eq!(steps, [0, 1, 7, 2, 5]);
//!     assert!(matches!(pool.submit_fn(crash, ()).into_result(), Err(Error::WorkerDied { .. })));
//!     assert_eq!(pool.submit_fn(collatz_steps, 6).into_result()?, 8); // a new worker took over
//!     Ok(())
//! }
//! # #[cfg(not(target_os = "linux"))]
//! # fn main() {}
//! ```
//!
//! # Async
//!
//! A [`Future`] is not itself a `std::future::Future` but a `std::future::IntoFuture`, which
//! is what `.await` calls: `.await` it in any runtime, woken through the task's `Waker` (no
//! polling thread). `future.await` resolves to what [`Future::into_result`] gives (the value,
//! moved out of the last handle); `(&future).await` to a borrow of it, like
//! [`Future::result`], whatever other handles are alive. A function that wants a
//! `std::future::Future` itself, such as a runtime's `block_on` or `spawn`, takes
//! `future.into_future()` or `async { future.await }`, not the `Future`.
//!
//! The whole program, with a `block_on` of a dozen lines (std's `Wake` and thread parking,
//! no runtime):
//!
//! ```
//! use concurrent_futures::{CpuPool, Error, Executor};
//! use std::future::{Future, IntoFuture};
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake, Waker};
//! use std::thread::{self, Thread};
//!
//! /// Runs `future` to its end on this thread: poll it, sleep until its waker is called, again.
//! fn block_on<F: Future>(future: F) -> F::Output {
//!     struct Unpark(Thread);
//!     impl Wake for Unpark {
//!         fn wake(self: Arc<Self>) {
//!             self.0.unpark();
//!         }
//!     }
//!     let waker = Waker::from(Arc::new(Unpark(thread::current())));
//!     let mut cx = Context::from_waker(&waker);
//!     let mut future = std::pin::pin!(future);
//!     loop {
//!         if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
//!             return output;
//!         }
//!         thread::park(); // returns at once if `wake` came first
//!     }
//! }
//!
//! async fn sum_on(pool: &CpuPool) -> Result<u64, Error> {
//!     let a = pool.submit(|| (1..=100_u64).sum::<u64>());
//!     let b = pool.submit(|| (101..=200_u64).sum::<u64>());
//!     Ok(a.await? + b.await?) // each moves its value out
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = CpuPool::new(2)?;
//!     assert_eq!(block_on(sum_on(&pool))?, 20_100);
//!
//!     // A `Future` is `IntoFuture`: hand a `std::future::Future` made from it to `block_on`.
//!     let words = pool.submit(|| vec!["async", "and", "threads"]);
//!     let keep = words.clone(); // a second handle, e.g. to cancel later
//!     assert_eq!(block_on((&words).into_future())?.len(), 3); // borrows: fine while shared
//!     assert_eq!(block_on(async { (&keep).await.map(|w| w[0]) })?, "async");
//!     drop(keep);
//!     assert_eq!(block_on(words.into_future())?, ["async", "and", "threads"]); // the last one
//!     Ok(())
//! }
//! ```
//!
//! # Your own executor
//!
//! The completing side of a future is a [`Promise`]: [`Promise::run`] runs a closure and
//! completes the future with its value or its panic; a dropped promise completes it with
//! [`Error::Broken`], so nobody waits forever on lost work.
//!
//! ```
//! use concurrent_futures::{Error, Promise};
//!
//! # fn main() -> Result<(), Error> {
//! let (promise, future) = Promise::new();
//! std::thread::spawn(move || promise.run(|| "from my own thread"));
//! assert_eq!(future.into_result()?, "from my own thread");
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
//! * A [`ProcessPool`] replaces a worker that died instead of breaking the whole pool (ask for
//!   CPython's behaviour with `OnWorkerDeath::BreakPool`).
//! * A task's panic is printed through the panic hook as well as kept in its future (CPython
//!   prints nothing); `print_panics(false)` on any pool's builder turns that off (see "Panics
//!   in tasks").

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
mod scope;
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
// The pools of other processes are Linux only (fork server, pidfds, signalfd, `prctl`, the
// executable's program headers); everything above them is portable.
#[cfg(all(feature = "mpi", target_os = "linux", not(loom)))]
pub mod mpi;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod process;
#[cfg(all(target_os = "linux", not(loom)))]
mod remote;

#[cfg(not(loom))]
pub use build_error::BuildError;
#[cfg(not(loom))]
pub use cpu::{CpuPool, CpuPoolBuilder};
pub use error::Error;
pub use executor::{Executor, FnExecutor, InlineExecutor, Payload, Submitter};
pub use future::{Awaiting, AwaitingRef, Future, Promise, State};
#[cfg(not(loom))]
pub use io::{IoPool, IoPoolBuilder};
pub use map::{Chunk, Map, MapUnordered, ParMapExt, TARGET_CHUNK_TIME};
#[cfg(all(feature = "mpi", target_os = "linux", not(loom)))]
pub use mpi::MpiPool;
#[cfg(all(target_os = "linux", not(loom)))]
pub use process::ProcessPool;
#[cfg(feature = "progress")]
pub use progress::Progress;
pub use scope::Scope;
pub use wait::{AsCompleted, DoneAndNotDone, ReturnWhen, as_completed, wait};

/// Hooks for the loom models of `tests/loom_future.rs`; only in the loom build.
#[cfg(loom)]
#[doc(hidden)]
pub use sync::loom_support;
