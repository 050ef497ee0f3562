//! [`IoPool`]: an [`Executor`] for blocking work on plain OS threads, started on demand and
//! retired when idle. The threads' side lives in `worker.rs`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::build_error::BuildError;
use crate::error::Error;
use crate::executor::Executor;
use crate::future::Future;
use crate::job::task;

mod worker;

use worker::{AnnounceIdle, Config, Initializer, Shared};

/// Numbers pools for the default thread name prefix, as CPython numbers its executors.
static POOLS: AtomicUsize = AtomicUsize::new(0);

/// Runs blocking closures (files, sockets, subprocesses, sleeps) on plain threads and hands
/// back [`Future`]s: CPython's `ThreadPoolExecutor`.
///
/// Tasks wait in one FIFO queue. A submit starts a new thread only when no idle thread can
/// take the task, up to `max_workers`; a thread idle for `keep_alive` ends. Tasks start in
/// submission order; a task that panics leaves [`Error::Panicked`] in its future and the
/// thread unharmed; a task cancelled before it starts never runs.
///
/// Dropping the pool is `shutdown(wait = true, cancel_futures = false)`: queued tasks still
/// run, then every thread is joined.
///
/// # Warning: waiting inside a task
///
/// A task that waits on another task of the same pool blocks its thread, exactly as in
/// CPython: when every thread waits that way, nothing runs the tasks they wait for. Use
/// [`CpuPool`](crate::CpuPool) for work that waits on work of its own pool.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, IoPool};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = IoPool::new(4)?;
/// let futures: Vec<_> = (0..8_u64)
///     .map(|n| pool.submit(move || {
///         std::thread::sleep(Duration::from_millis(10));
///         n * 2
///     }))
///     .collect();
/// let mut total = 0;
/// for future in futures {
///     total += future.into_result()?;
/// }
/// assert_eq!(total, 56);
/// pool.shutdown(true, false);
/// assert_eq!(pool.submit(|| 1).into_result(), Err(Error::Shutdown));
/// # Ok(())
/// # }
/// ```
pub struct IoPool {
    shared: Arc<Shared>,
}

impl IoPool {
    /// A pool of at most `max_workers` threads, with the default name prefix and keep-alive.
    ///
    /// # Errors
    ///
    /// As [`IoPoolBuilder::build`]: [`BuildError::Zero`] when `max_workers` is 0.
    pub fn new(max_workers: usize) -> Result<Self, BuildError> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder, with CPython's defaults.
    pub fn builder() -> IoPoolBuilder {
        IoPoolBuilder::default()
    }
}

impl Executor for IoPool {
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        if let Some(error) = self.shared.broken() {
            return Future::with_error(error);
        }
        let (task, future) = task(move || {
            let _idle = AnnounceIdle;
            f()
        });
        if self.shared.queue.push(task).is_err() {
            return Future::with_error(Error::Shutdown);
        }
        // An initializer may have failed while we queued: do not leave the task behind.
        self.shared.fail_queued();
        self.shared.dispatch();
        future
    }

    /// See [`Executor::shutdown`]. Called from one of this pool's own tasks, `wait` does not
    /// wait for that task or its thread.
    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.shared.queue.shut_down(cancel_futures);
        self.shared.wake_all();
        if wait {
            self.shared.queue.wait_until_finished();
            self.shared.join_all();
        }
    }

    /// The most threads this pool runs at once.
    fn max_workers(&self) -> usize {
        self.shared.config.max_workers
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl fmt::Debug for IoPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoPool")
            .field("max_workers", &self.shared.config.max_workers)
            .field("thread_name_prefix", &self.shared.config.prefix)
            .field("keep_alive", &self.shared.config.keep_alive)
            .field("queue", &self.shared.queue)
            .finish()
    }
}

/// Configures an [`IoPool`]; made by [`IoPool::builder`].
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Executor, IoPool};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = IoPool::builder()
///     .max_workers(2)
///     .thread_name_prefix("fetch")
///     .keep_alive(Duration::from_secs(1))
///     .initializer(|| std::env::var("PATH").map(drop))
///     .build()?;
/// let name = pool.submit(|| std::thread::current().name().map(String::from));
/// assert_eq!(name.into_result()?.as_deref(), Some("fetch_0"));
///
/// let broken = IoPool::builder().initializer(|| Err("no database")).build()?;
/// let Err(Error::Broken { reason }) = broken.submit(|| ()).into_result() else {
///     panic!("the initializer failed, so the pool is broken");
/// };
/// assert!(reason.contains("no database"));
/// # Ok(())
/// # }
/// ```
pub struct IoPoolBuilder {
    max_workers: usize,
    prefix: Option<String>,
    initializer: Option<Initializer>,
    keep_alive: Duration,
    print_panics: bool,
}

impl Default for IoPoolBuilder {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        IoPoolBuilder {
            max_workers: (cores + 4).min(32),
            prefix: None,
            initializer: None,
            keep_alive: Duration::from_secs(10),
            print_panics: true,
        }
    }
}

impl IoPoolBuilder {
    /// The most threads the pool runs at once; the default is `min(32, cores + 4)`, as in
    /// CPython.
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self
    }

    /// Names the threads `<prefix>_N`, N from 0 to `max_workers - 1`; the default prefix is
    /// `IoPool-<k>`, with `k` counting the pools of the process.
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Runs `initializer` in each new thread before its first task.
    ///
    /// If it fails (returns `Err` or panics) the pool is broken, as in CPython: every queued
    /// task and every later submit gets [`Error::Broken`] naming the initializer's error.
    pub fn initializer<E: fmt::Display>(
        mut self,
        initializer: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.initializer = Some(Arc::new(move || {
            initializer().map_err(|error| error.to_string())
        }));
        self
    }

    /// How long a thread stays idle before it ends; the default is 10 s, as in tokio's
    /// blocking pool.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Whether a task's panic (or the initializer's) also goes through the panic hook, which
    /// prints it on standard error (`true`, the default), or only into its future as
    /// [`Error::Panicked`] (`false`, CPython's way). The same option, with the same default,
    /// exists on every pool; see the crate docs, "Panics in tasks".
    pub fn print_panics(mut self, print: bool) -> Self {
        self.print_panics = print;
        self
    }

    /// Makes the pool. No thread starts before the first submit.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] (`max_workers`) when `max_workers` is 0. No thread starts here, so
    /// none can fail to; when a thread cannot be started later and no other thread of the
    /// pool is alive, the queued tasks fail with [`Error::Broken`].
    pub fn build(self) -> Result<IoPool, BuildError> {
        if self.max_workers == 0 {
            return Err(BuildError::Zero {
                option: "max_workers",
            });
        }
        let prefix = self
            .prefix
            .unwrap_or_else(|| format!("IoPool-{}", POOLS.fetch_add(1, Ordering::Relaxed)));
        let config = Config {
            max_workers: self.max_workers,
            prefix,
            initializer: self.initializer,
            keep_alive: self.keep_alive,
            print_panics: self.print_panics,
        };
        Ok(IoPool {
            shared: Arc::new(Shared::new(config)),
        })
    }
}

impl fmt::Debug for IoPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.prefix)
            .field("initializer", &self.initializer.as_ref().map(|_| "Fn"))
            .field("keep_alive", &self.keep_alive)
            .field("print_panics", &self.print_panics)
            .finish()
    }
}
