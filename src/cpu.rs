//! [`CpuPool`]: an [`Executor`] for CPU-bound closures, on rayon's work-stealing threads.
//!
//! Each `submit` puts the task into the pool's own FIFO queue and spawns onto rayon a small
//! job that takes the oldest queued task and runs it. Whichever rayon job runs first, tasks
//! start in submission order, and `shutdown(cancel_futures = true)` finds every task that has
//! not started in that queue.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::build_error::BuildError;
use crate::executor::Executor;
use crate::future::Future;
use crate::job::{TaskQueue, task};
use crate::sync::{JobSignal, global_job_signal, lock, set_job_signal, with_helper};

/// Runs closures on a rayon thread pool and hands back [`Future`]s: CPython's
/// `ThreadPoolExecutor` for CPU-bound work, without the deadlock on nested waits.
///
/// The pool is either its own ([`new`](Self::new), [`builder`](Self::builder)) or rayon's
/// global pool ([`global`](Self::global)). Tasks start in submission order; a task that
/// panics leaves [`Error::Panicked`](crate::Error::Panicked) in its future and the pool
/// unharmed; a task cancelled before it starts never runs.
///
/// Dropping a pool is `shutdown(wait = true, cancel_futures = false)`: it waits for every task
/// and, for a pool of its own, joins its threads.
///
/// # Warning: a waiting task runs other tasks
///
/// When a task waits on a [`Future`] ([`Future::result`], [`wait`](crate::wait),
/// [`as_completed`](crate::as_completed), `shutdown(wait = true)`, ...) its thread does not
/// just sleep: it runs other pending jobs of the same rayon pool until the future is done,
/// like rayon's own `join` and `scope`. That is why a task can wait on another task of the
/// same pool, even on a pool of one thread, without a deadlock. It also means that the waiting
/// task's stack may run unrelated tasks in the middle of the wait: do not wait while holding a
/// lock that another task of the pool takes, or those two deadlock on the lock instead.
///
/// When the pool has nothing to run, the waiting thread sleeps, using no CPU, until the
/// future completes or a task is submitted to the pool. (Rayon jobs pushed meanwhile by
/// rayon's own `spawn`, `join` or parallel iterators do not wake it; the pool's other threads
/// run those.)
///
/// Each task run inside a wait nests on the waiting task's stack. The nesting stops at 1024
/// levels, or once half of a default thread stack (`RUST_MIN_STACK`, else 2 MiB) is used
/// since the outermost task started; a wait past that bound blocks without running anything.
/// So on a pool too small for it, a chain of tasks deeper than that bound, each waiting on
/// one queued behind it, waits forever instead of overflowing the stack.
/// A [`global`](Self::global) pool built with a smaller `stack_size` than the default is not
/// protected by the stack bound.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{CpuPool, Error, Executor};
/// use std::sync::Arc;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Arc::new(CpuPool::builder().num_threads(1).build()?);
/// let inner = Arc::clone(&pool);
/// // A task that waits on another task of its own one-thread pool still finishes.
/// let outer = pool.submit(move || inner.submit(|| 20).into_result().map(|n| n + 1));
/// assert_eq!(outer.into_result()?, Ok(21));
///
/// let failing = pool.submit(|| -> u8 { panic!("bad input") });
/// assert_eq!(failing.into_result(), Err(Error::Panicked { message: "bad input".into() }));
/// # Ok(())
/// # }
/// ```
pub struct CpuPool {
    queue: Arc<TaskQueue>,
    /// `None` for rayon's global pool, which we never tear down.
    own: Option<OwnPool>,
}

/// A rayon pool of our own, with the handles of its threads: rayon's `ThreadPool::drop` does
/// not wait for them, so we start them ourselves and join them.
struct OwnPool {
    pool: rayon::ThreadPool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes this pool's threads asleep in a helping wait when a task is submitted.
    signal: Arc<JobSignal>,
}

/// Numbers pools for the default thread names, as CPython numbers its executors.
static POOLS: AtomicUsize = AtomicUsize::new(0);

impl CpuPool {
    /// A pool of its own with `threads` threads.
    ///
    /// # Errors
    ///
    /// As [`CpuPoolBuilder::build`]: [`BuildError::Zero`] when `threads` is 0,
    /// [`BuildError::ThreadSpawn`] when the operating system refuses a thread.
    pub fn new(threads: usize) -> Result<Self, BuildError> {
        Self::builder().num_threads(threads).build()
    }

    /// An executor on rayon's global pool, shared with `par_iter` and `rayon::spawn`.
    ///
    /// Each call returns a new executor with its own queue and shutdown state; shutting one
    /// down, or dropping it, waits for its own tasks only and leaves rayon's threads alone.
    pub fn global() -> Self {
        CpuPool {
            queue: Arc::new(TaskQueue::new(true)),
            own: None,
        }
    }

    /// A builder for a pool of its own.
    pub fn builder() -> CpuPoolBuilder {
        CpuPoolBuilder::default()
    }

    /// How many threads run tasks.
    pub fn num_threads(&self) -> usize {
        match &self.own {
            Some(own) => own.pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }
}

/// Runs one pending job of the current thread's rayon pool: what a task's waits do instead of
/// sleeping.
fn help_rayon() -> bool {
    matches!(rayon::yield_now(), Some(rayon::Yield::Executed))
}

impl Executor for CpuPool {
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        let (task, future) = task(f);
        if self.queue.push(task).is_err() {
            return Future::with_error(crate::Error::Shutdown);
        }
        let queue = Arc::clone(&self.queue);
        let job = move || {
            with_helper(help_rayon, || queue.run_one());
        };
        // `spawn` rather than `spawn_fifo`: our queue already fixes the order (each rayon job
        // takes the oldest task, whichever job runs first), and `spawn_fifo`'s extra queue
        // made the 10 000-task gather of benches/pools.rs slower (5.1 ms against 3.9 ms).
        match &self.own {
            Some(own) => {
                own.pool.spawn(job);
                own.signal.job_added();
            }
            None => {
                rayon::spawn(job);
                global_job_signal().job_added();
            }
        }
        future
    }

    /// See [`Executor::shutdown`]. Called from one of this pool's own tasks, `wait` is
    /// ignored: the task would wait for itself.
    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.queue.shut_down(cancel_futures);
        if wait {
            self.queue.wait_until_finished();
        }
    }

    /// The number of threads, as [`num_threads`](CpuPool::num_threads).
    fn max_workers(&self) -> usize {
        self.num_threads()
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
        let Some(own) = self.own.take() else {
            return;
        };
        let on_own_thread = own.pool.current_thread_index().is_some();
        let threads = std::mem::take(&mut *lock(&own.threads));
        // Dropping rayon's pool tells its threads to exit once idle; then they can be joined,
        // except from one of them, which would wait for itself.
        drop(own.pool);
        if !on_own_thread {
            for thread in threads {
                // A thread can only end by panicking outside a task, which rayon turns into an
                // abort; there is nothing to report.
                let _ = thread.join();
            }
        }
    }
}

impl fmt::Debug for CpuPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuPool")
            .field("global", &self.own.is_none())
            .field("num_threads", &self.num_threads())
            .field("queue", &self.queue)
            .finish()
    }
}

type NameFn = Box<dyn FnMut(usize) -> String>;

/// Configures a [`CpuPool`] of its own; made by [`CpuPool::builder`].
///
/// # Examples
///
/// ```
/// use concurrent_futures::{CpuPool, Executor};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = CpuPool::builder()
///     .num_threads(2)
///     .thread_name(|index| format!("crunch-{index}"))
///     .build()?;
/// let name = pool.submit(|| std::thread::current().name().map(String::from));
/// assert!(name.into_result()?.unwrap().starts_with("crunch-"));
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct CpuPoolBuilder {
    num_threads: Option<usize>,
    thread_name: Option<NameFn>,
    /// The opposite of `print_panics`, so that the derived default prints.
    silent_panics: bool,
}

impl CpuPoolBuilder {
    /// The number of threads; the default is the number of CPUs rayon sees
    /// (`RAYON_NUM_THREADS` or the available parallelism).
    pub fn num_threads(mut self, threads: usize) -> Self {
        self.num_threads = Some(threads);
        self
    }

    /// Names thread `index` (0-based) `name(index)`; the default is `CpuPool-<k>_<index>`,
    /// with `k` counting the pools of the process.
    pub fn thread_name(mut self, name: impl FnMut(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(name));
        self
    }

    /// Whether a task's panic also goes through the panic hook, which prints it on standard
    /// error (`true`, the default), or only into its future as
    /// [`Error::Panicked`](crate::Error::Panicked) (`false`, CPython's way). The same option,
    /// with the same default, exists on every pool; see the crate docs, "Panics in tasks".
    pub fn print_panics(mut self, print: bool) -> Self {
        self.silent_panics = !print;
        self
    }

    /// Starts the pool's threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] (`num_threads`) when asked for zero threads,
    /// [`BuildError::ThreadSpawn`] when the operating system refuses a thread.
    pub fn build(self) -> Result<CpuPool, BuildError> {
        let mut builder = rayon::ThreadPoolBuilder::new();
        match self.num_threads {
            Some(0) => {
                return Err(BuildError::Zero {
                    option: "num_threads",
                });
            }
            Some(threads) => builder = builder.num_threads(threads),
            None => {}
        }
        let name = self.thread_name.unwrap_or_else(|| {
            let pool = POOLS.fetch_add(1, Ordering::Relaxed);
            Box::new(move |index| format!("CpuPool-{pool}_{index}"))
        });
        let threads = Arc::new(Mutex::new(Vec::new()));
        let spawn_error: Arc<Mutex<Option<io::Error>>> = Arc::default();
        let (handles, error_slot) = (Arc::clone(&threads), Arc::clone(&spawn_error));
        let signal = Arc::new(JobSignal::new());
        let thread_signal = Arc::clone(&signal);
        let built = builder
            .thread_name(name)
            .spawn_handler(move |thread| {
                let mut std_builder = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    std_builder = std_builder.name(name.to_owned());
                }
                let signal = Arc::clone(&thread_signal);
                let run = move || {
                    set_job_signal(signal);
                    thread.run();
                };
                match std_builder.spawn(run) {
                    Ok(handle) => {
                        lock(&handles).push(handle);
                        Ok(())
                    }
                    Err(error) => {
                        let kind = error.kind();
                        *lock(&error_slot) = Some(error);
                        Err(io::Error::from(kind))
                    }
                }
            })
            .build();
        match built {
            Ok(pool) => {
                let threads = Mutex::new(std::mem::take(&mut *lock(&threads)));
                Ok(CpuPool {
                    queue: Arc::new(TaskQueue::new(!self.silent_panics)),
                    own: Some(OwnPool {
                        pool,
                        threads,
                        signal,
                    }),
                })
            }
            Err(error) => {
                let source = lock(&spawn_error)
                    .take()
                    .unwrap_or_else(|| io::Error::other(error.to_string()));
                Err(BuildError::ThreadSpawn(source))
            }
        }
    }
}

impl fmt::Debug for CpuPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuPoolBuilder")
            .field("num_threads", &self.num_threads)
            .field(
                "thread_name",
                &self.thread_name.as_ref().map(|_| "Fn(usize) -> String"),
            )
            .field("print_panics", &!self.silent_panics)
            .finish()
    }
}
