//! [`ProcessPool`]: plain functions run in pre-forked worker processes fed through pipes, for
//! isolation and crash containment; and [`ProcessPool::fork`], one fresh child per closure.
//!
//! # How it works
//!
//! * A task is a function plus its argument serialized with postcard. The function travels as
//!   its offset from an anchor in this executable, which names it in the workers too; the
//!   worker calls a trampoline monomorphised for the argument and result types and sends back
//!   the result's bytes, or the panic message (with the worker's backtrace when
//!   `RUST_BACKTRACE` is set). So the function must be in the executable: one from a shared
//!   library gets [`Error::Serialization`].
//! * Workers are forked by a *fork server*: this executable run again (`/proc/self/exe`) by
//!   the first [`build`](ProcessPoolBuilder::build) (or [`init`]), from any thread, which this
//!   crate turns into the server before `main` would start. The server never runs a thread,
//!   so no worker is ever a fork of a process that runs threads (Python 3.14's `forkserver`
//!   design). It reaps the workers and reports how each one ended; if it dies, the pools it
//!   served break and the next pool built starts a new one.
//! * Each worker has its own request and result pipes. One manager thread per pool sends
//!   tasks, a few at a time per worker (the pipeline depth), reads results, and watches for
//!   deaths, all with `poll` and non-blocking writes, so a dying worker never blocks it.
//! * Each task runs inside a rayon pool built in the worker, so `par_iter` in a task works
//!   (the program's global rayon pool has no threads in a fork).
//! * Nothing outlives the program, whichever thread started it: the fork server watches a
//!   pidfd of the program and kills its workers when the program ends, the workers die with
//!   the server (`PR_SET_PDEATHSIG`), and [`fork`](ProcessPool::fork) children are killed by
//!   the kernel when the program's end of a pipe they watch closes. Every child starts with
//!   only stdin, stdout, stderr and its own pipes: none holds another pool's pipes.
//!
//! # Faults
//!
//! | fault | that task's future | the pool |
//! | --- | --- | --- |
//! | the task panics | [`Error::Panicked`] with the worker's message | goes on |
//! | argument or result does not (de)serialize, on either side | [`Error::Serialization`] | goes on |
//! | the worker dies (`exit`, `abort`, a signal, killed from outside) | [`Error::WorkerDied`] | [`OnWorkerDeath`]: replaced, or broken |
//! | the task runs past [`task_timeout`](ProcessPoolBuilder::task_timeout) | [`Error::TaskTimeout`] | its worker is killed and replaced |
//! | the initializer panics | [`Error::Broken`] | broken |
//!
//! A broken pool fails every unfinished task and every later submit with [`Error::Broken`].
//! With [`OnWorkerDeath::Respawn`], the tasks a dead worker had received but not started are
//! not lost: they run on another worker.
//!
//! # Examples
//!
//! ```
//! use concurrent_futures::{Error, FnExecutor, ProcessPool};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = ProcessPool::new(2)?;
//!     let futures: Vec<_> = (0..10).map(|x| pool.submit_fn(square, x)).collect();
//!     let total: u64 = futures.into_iter().map(|f| f.into_result()).sum::<Result<_, Error>>()?;
//!     assert_eq!(total, 285);
//!     Ok(())
//! }
//! ```
//!
//! # Warning: what a worker sees
//!
//! A worker is a copy of the program *as it is at start-up*, before `main` and before the
//! program's own constructors (`.init_array`, `#[ctor]`): statics at their initial values, no
//! file the program opened, no library it loaded with `dlopen`, the environment and current
//! directory as they were when the fork server started. Pass what a task needs in its
//! argument, or set it up in an [`initializer`](ProcessPoolBuilder::initializer). Values must round-trip through postcard,
//! which is not self-describing: `#[serde(untagged)]`, `flatten` and `serde_json::Value` do
//! not. postcard also drops the text of a custom `Serialize`/`Deserialize` error, so an
//! [`Error::Serialization`] says which value failed on which side, not why.

mod control;
mod manager;
mod server;
mod sys;
mod worker;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::build_error::BuildError;
use crate::error::Error;
use crate::executor::Payload;
use crate::future::{Future, Promise};

use crate::remote::image::Image;
use crate::remote::wire;
use crate::remote::{self, Dispatch, Slot, Typed};
use manager::{Config, ForkJob, Shared, State, Task};

/// How long the manager (while results are due) and an idle worker poll without sleeping.
/// On the VM this was measured on, waking a sleeping thread on the other core costs about
/// 40 µs, several times a whole round trip; polling a little first, yielding the CPU at each
/// turn so that a busy machine loses nothing, avoids most of those wake-ups.
const SPIN: Duration = Duration::from_micros(50);

/// Starts the fork server now instead of at the first [`ProcessPoolBuilder::build`]; optional,
/// from any thread, at any time. Calling it again does nothing while the server runs.
///
/// Every worker of every [`ProcessPool`] is forked from this server, which is this executable
/// run again and taken over by this crate before its `main`: a copy of the program as it is
/// at start-up, whatever threads the program runs now. Starting it early only moves the cost
/// of that start (an `exec`, a few milliseconds) out of the first `build`.
///
/// # Errors
///
/// [`BuildError::ForkServerStart`] if the server cannot be started (the `exec` of
/// `/proc/self/exe`) or ends before it is ready, [`BuildError::ForkServerTimeout`] if it is not
/// ready within 30 s, [`BuildError::Pipe`] if its socket cannot be made, and
/// [`BuildError::NotInExecutable`] if this crate is linked into a shared library rather than
/// the executable (the server runs the executable).
pub fn init() -> Result<(), BuildError> {
    server::start()
}

/// What a pool does when a worker dies unexpectedly (a signal, `exit`, `abort`, killed from
/// outside); the task it was running fails with [`Error::WorkerDied`] either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnWorkerDeath {
    /// Start a new worker in its place and go on. Safe because each worker has its own pipes:
    /// a death cannot leave another worker's channel half-written.
    #[default]
    Respawn,
    /// Break the pool, as CPython does: every unfinished task and every later submit get
    /// [`Error::Broken`].
    BreakPool,
}

/// Configures a [`ProcessPool`]; made by [`ProcessPool::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::process::OnWorkerDeath;
/// use concurrent_futures::{Error, FnExecutor, ProcessPool};
///
/// fn stuck(_: ()) -> u8 {
///     loop {
///         std::thread::sleep(Duration::from_secs(1));
///     }
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let pool = ProcessPool::builder()
///         .max_workers(2)
///         .max_tasks_per_child(100)
///         .task_timeout(Duration::from_millis(200))
///         .on_worker_death(OnWorkerDeath::Respawn)
///         .build()?;
///     assert_eq!(pool.submit_fn(stuck, ()).into_result(), Err(Error::TaskTimeout));
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    initializer: Option<fn()>,
    max_tasks_per_child: Option<usize>,
    task_timeout: Option<Duration>,
    on_worker_death: OnWorkerDeath,
    pipeline_depth: usize,
    worker_threads: Option<usize>,
    max_frame_bytes: usize,
    print_panics: bool,
}

/// The default [`max_frame_bytes`](ProcessPoolBuilder::max_frame_bytes): 1 GiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 30;

impl ProcessPoolBuilder {
    /// The number of worker processes; by default the available parallelism.
    pub fn max_workers(mut self, workers: usize) -> Self {
        self.max_workers = Some(workers);
        self
    }

    /// A function each worker runs once before its first task. If it panics, the pool breaks:
    /// every task gets [`Error::Broken`] with the panic message.
    pub fn initializer(mut self, initializer: fn()) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// Replaces a worker after it has run `tasks` tasks (CPython's `max_tasks_per_child`),
    /// to bound what a leaking task can accumulate. The replacement is forked from the fork
    /// server, never from this program's threads.
    pub fn max_tasks_per_child(mut self, tasks: usize) -> Self {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// Kills the worker of a task that has run longer than `limit` and gives that task
    /// [`Error::TaskTimeout`]; a new worker takes its place. Applies to [`ProcessPool::fork`]
    /// children too. Unlike [`Future::result_timeout`], which only stops waiting, this stops
    /// the work.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// What to do when a worker dies unexpectedly; [`OnWorkerDeath::Respawn`] by default.
    pub fn on_worker_death(mut self, policy: OnWorkerDeath) -> Self {
        self.on_worker_death = policy;
        self
    }

    /// How many tasks each worker may have been sent ahead of its results (default 2), so
    /// that it finds the next task waiting when it finishes one. Tasks sent to a worker are
    /// marked running and can no longer be cancelled; a long task holds up the ones sent after
    /// it to the same worker.
    pub fn pipeline_depth(mut self, depth: usize) -> Self {
        self.pipeline_depth = depth;
        self
    }

    /// The number of threads of each worker's rayon pool, in which its tasks run (so a
    /// `par_iter` in a task uses them). By default the available parallelism divided by the
    /// number of workers, at least 1: a pool of N workers on N cores then runs N threads in
    /// all, not N² that would fight over the cores.
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads);
        self
    }

    /// The largest message either way between the pool and a worker or `fork` child: a task's
    /// serialized argument or result plus a header of a few dozen bytes. Default
    /// [`DEFAULT_MAX_FRAME_BYTES`] (1 GiB).
    ///
    /// A message's length travels in front of it, and a length larger than this is taken for
    /// what it almost certainly is, a corrupt channel (a task that wrote on its worker's pipe):
    /// the worker is killed and replaced and its task fails with [`Error::WorkerDied`], where
    /// waiting for the bytes promised would hang every later task of that worker. A task
    /// whose argument is over the limit fails with [`Error::Serialization`] and is not sent;
    /// one whose result is over it fails the same way, and its worker goes on. 1 GiB is far
    /// above what is sensible to copy through a pipe (a message is serialized and held whole
    /// on both sides), yet catches the random lengths of a corrupt prefix, which are mostly
    /// larger; lower it to fail sooner, raise it (up to 4 GiB, the most a length can say) for
    /// larger values.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Whether a panic in a worker (in a task or the initializer) also goes through the
    /// worker's panic hook, std's, which prints it on the worker's standard error, the
    /// program's (`true`, the default), or only into the task's future as
    /// [`Error::Panicked`] (`false`, CPython's way). The same option, with the same default,
    /// exists on every pool; see the crate docs, "Panics in tasks". [`ProcessPool::fork`]
    /// children keep the program's own hook.
    pub fn print_panics(mut self, print: bool) -> Self {
        self.print_panics = print;
        self
    }

    /// Starts the fork server if needed, then the pool: its manager thread and its workers.
    ///
    /// # Errors
    ///
    /// [`BuildError::Zero`] naming the option when `max_workers`, `max_tasks_per_child`,
    /// `pipeline_depth`, `worker_threads` or `max_frame_bytes` is 0;
    /// [`BuildError::InitializerNotInExecutable`] when the initializer is not a function of the
    /// executable; as [`init`] if the fork server cannot be started; [`BuildError::Pipe`] if the
    /// pool's channel to the server or its eventfd cannot be made;
    /// [`BuildError::ThreadSpawn`] if the manager thread cannot be started. A worker that
    /// cannot be forked later breaks the pool instead.
    pub fn build(self) -> Result<ProcessPool, BuildError> {
        let workers = match self.max_workers {
            Some(workers) => workers,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        for (option, value) in [
            ("max_workers", Some(workers)),
            ("max_tasks_per_child", self.max_tasks_per_child),
            ("pipeline_depth", Some(self.pipeline_depth)),
            ("worker_threads", self.worker_threads),
            ("max_frame_bytes", Some(self.max_frame_bytes)),
        ] {
            if value == Some(0) {
                return Err(BuildError::Zero { option });
            }
        }
        let image = server::image()?;
        let initializer = match self.initializer {
            None => 0,
            Some(f) => image
                .offset_of(f as usize)
                .ok_or(BuildError::InitializerNotInExecutable)?,
        };
        let channel = server::connect()?;
        let config = Config {
            workers,
            initializer,
            max_tasks_per_child: self.max_tasks_per_child,
            task_timeout: self.task_timeout,
            on_worker_death: self.on_worker_death,
            pipeline_depth: self.pipeline_depth,
            worker_threads: self.worker_threads.unwrap_or_else(|| {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                (cores / workers).max(1)
            }),
            max_frame_bytes: self.max_frame_bytes,
            print_panics: self.print_panics,
        };
        let (shared, manager) = manager::new(channel, config).map_err(BuildError::Pipe)?;
        let handle = std::thread::Builder::new()
            .name("process-pool-manager".into())
            .spawn(move || manager.run())
            .map_err(BuildError::ThreadSpawn)?;
        Ok(ProcessPool {
            shared,
            manager: Mutex::new(Some(handle)),
            next_id: AtomicU64::new(0),
            workers,
            image,
        })
    }
}

/// A pool of worker processes that run plain functions on serialized arguments.
///
/// See the [module docs](self) for how it works and what each fault does. Dropping the pool
/// shuts it down with `wait = true`: queued tasks run, then the workers exit and are reaped.
///
/// It implements [`FnExecutor`](crate::FnExecutor) but not [`Executor`](crate::Executor): a
/// worker process can be sent a function pointer and bytes, not a closure. So a plain function
/// and its serializable argument go through [`submit_fn`](crate::FnExecutor::submit_fn) and
/// [`map_fn`](crate::FnExecutor::map_fn), as on every other pool, and a closure through
/// [`fork`](ProcessPool::fork). A function that captures nothing can be written as a closure
/// (`pool.submit_fn(|x: u64| x * 2, 21)`): it coerces to a `fn`. After
/// [`shutdown`](Self::shutdown) a submitted task's future holds [`Error::Shutdown`], on a
/// broken pool [`Error::Broken`]; an argument that does not serialize gives
/// [`Error::Serialization`], and nothing is sent.
///
/// # Warning: callbacks
///
/// The pool's manager thread completes the futures, so it runs their done-callbacks
/// ([`Future::add_done_callback`]). While a callback runs, no result of this pool is read and
/// no task is sent: keep callbacks short, and never wait in one on this pool's work.
///
/// # One name per meaning
///
/// `submit` means "run this closure" on every backend, so a `ProcessPool` has none: the
/// compiler points to `submit_fn` instead.
///
/// ```compile_fail,E0599
/// use concurrent_futures::ProcessPool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ProcessPool::new(1).unwrap();
/// let _ = pool.submit(square, 3); // error: no method `submit`; help: `submit_fn`
/// ```
pub struct ProcessPool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
    workers: usize,
    /// How this program names its functions to the workers.
    image: Image,
}

impl ProcessPool {
    /// A pool of `workers` processes with default settings.
    ///
    /// # Errors
    ///
    /// As [`ProcessPoolBuilder::build`]: [`BuildError::Zero`] when `workers` is 0, the
    /// `ForkServer*` variants when the fork server cannot be started, [`BuildError::Pipe`] or
    /// [`BuildError::ThreadSpawn`] when the system refuses a pipe or the manager thread.
    pub fn new(workers: usize) -> Result<ProcessPool, BuildError> {
        Self::builder().max_workers(workers).build()
    }

    /// A builder with default settings.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            max_workers: None,
            initializer: None,
            max_tasks_per_child: None,
            task_timeout: None,
            on_worker_death: OnWorkerDeath::Respawn,
            pipeline_depth: 2,
            worker_threads: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            print_panics: true,
        }
    }

    /// The number of worker processes the pool keeps.
    pub fn max_workers(&self) -> usize {
        self.workers
    }

    fn enqueue(&self, task: Task) {
        let mut state = self.shared.lock();
        if let Some(error) = refusal(&state) {
            drop(state);
            task.slot.finish(Err(error));
            return;
        }
        state.queue.push_back(task);
        drop(state);
        self.shared.wake();
    }

    /// Runs `f` in a fresh child forked from this process for this one call, and returns the
    /// future of its result: isolation for a closure that captures anything, even borrows
    /// (the child has its own copy of them). Only the result travels, serialized.
    ///
    /// The child is not one of the pool's workers and does not count against `max_workers`;
    /// the pool's [`task_timeout`](ProcessPoolBuilder::task_timeout) applies to it, and the
    /// pool waits for it on shutdown. A panic gives [`Error::Panicked`], a crash
    /// [`Error::WorkerDied`].
    ///
    /// # Warning: cost
    ///
    /// A fork copies the page tables of this whole process, so its cost grows with resident
    /// memory: about 0.2 ms for a small program and 18 ms per call at 500 MB resident on the
    /// machine this was measured on. For many small tasks use
    /// [`submit_fn`](crate::FnExecutor::submit_fn).
    ///
    /// # Warning: file descriptors
    ///
    /// The child keeps only stdin, stdout and stderr of this program's open files (and its own
    /// result pipe): it holds no copy of another pool's pipes, nor of a pipe or socket whose
    /// end of file someone waits for. A file or socket the closure uses must be opened inside
    /// it; one it captures is closed in the child (and dropping a captured `File` there aborts
    /// the child in a debug build: an I/O-safety check).
    ///
    /// The child dies with this program, whichever thread forked it: the kernel kills it when
    /// the program's end of a pipe it watches closes. A process the program forks by other
    /// means (not `exec`) holds a copy of that end, and keeps the children alive while it runs.
    ///
    /// # Warning: threads
    ///
    /// The child is a fork of *this* process, threads and all, but only the calling thread
    /// runs in it: a lock another thread held at that moment stays locked in the child (glibc
    /// resets its allocator, so allocating is fine). The closure must not wait on such locks
    /// or threads: stdout while another thread prints, your own mutexes, rayon's global pool.
    /// Give it a [`task_timeout`](ProcessPoolBuilder::task_timeout) if in doubt, not too
    /// short: a panic in the child runs this program's panic hook there, and with
    /// `RUST_BACKTRACE` set, symbolizing the backtrace can take a good part of a second.
    ///
    /// # Examples
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPool};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let pool = ProcessPool::new(1)?;
    ///     let words = vec!["isolated", "child"];
    ///     let joined = pool.fork(|| words.join(" ")); // borrows `words`: the child has a copy
    ///     assert_eq!(joined.into_result()?, "isolated child");
    ///     let crash = pool.fork(|| -> u8 { std::process::abort() });
    ///     assert!(matches!(crash.into_result(), Err(Error::WorkerDied { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn fork<F, R>(&self, f: F) -> Future<R>
    where
        F: FnOnce() -> R,
        R: Payload,
    {
        let (promise, future) = Promise::new();
        let mut slot: Box<dyn Slot> = Box::new(Typed::plain(promise));
        {
            let mut state = self.shared.lock();
            if let Some(error) = refusal(&state) {
                drop(state);
                slot.finish(Err(error));
                return future;
            }
            state.forking += 1;
        }
        // Nobody else holds the promise yet, so it cannot have been cancelled.
        slot.start();
        let forked = fork_child(f);
        let mut state = self.shared.lock();
        state.forking -= 1;
        match forked {
            Ok((pid, pidfd, result)) => state.forks.push(ForkJob {
                pid,
                pidfd,
                result,
                slot,
                started: Instant::now(),
                timed_out: false,
            }),
            Err(error) => {
                drop(state);
                slot.finish(Err(Error::Broken {
                    reason: format!("could not fork a child: {error}"),
                }));
                self.shared.wake();
                return future;
            }
        }
        drop(state);
        self.shared.wake();
        future
    }

    /// Stops taking work, as [`Executor::shutdown`](crate::Executor::shutdown): later submits
    /// give [`Error::Shutdown`]; with `cancel_futures` the tasks not yet sent to a worker are
    /// cancelled; the rest run, then the workers exit. With `wait`, returns once they have all
    /// exited and been reaped.
    ///
    /// # Warning: blocking
    ///
    /// With `wait` (and so when the pool is dropped), a task that never ends keeps this call
    /// waiting, as in CPython; give the pool a
    /// [`task_timeout`](ProcessPoolBuilder::task_timeout), or call
    /// [`kill_workers`](Self::kill_workers) first.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let cancelled = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            if cancel_futures {
                std::mem::take(&mut state.queue)
            } else {
                Default::default()
            }
        };
        for task in cancelled {
            task.slot.cancel();
        }
        self.shared.wake();
        if wait {
            let handle = self
                .manager
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(handle) = handle {
                // The manager catches nothing a task can throw at it; a panic there is a bug
                // of this crate, already reported by the panic hook.
                let _ = handle.join();
            }
        }
    }

    /// Shuts down without waiting, cancels what has not been sent to a worker, and sends
    /// SIGTERM to every worker and `fork` child (CPython 3.14's `terminate_workers`). Tasks
    /// they were running get [`Error::WorkerDied`]. Harmless on a pool that is already shut
    /// down, broken, or whose workers have not started yet.
    ///
    /// It does not wait: a worker that ignores SIGTERM keeps running until dropping the pool
    /// (which waits for it) or [`kill_workers`](Self::kill_workers).
    pub fn terminate_workers(&self) {
        self.force(libc::SIGTERM);
    }

    /// [`terminate_workers`](Self::terminate_workers) with SIGKILL, which no process can
    /// ignore (CPython 3.14's `kill_workers`).
    pub fn kill_workers(&self) {
        self.force(libc::SIGKILL);
    }

    fn force(&self, signal: libc::c_int) {
        let cancelled = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            state.force = Some(signal);
            std::mem::take(&mut state.queue)
        };
        for task in cancelled {
            task.slot.cancel();
        }
        self.shared.wake();
    }
}

/// Why a new task cannot be taken, if it cannot: broken first, as CPython checks.
fn refusal(state: &State) -> Option<Error> {
    if let Some(reason) = &state.broken {
        Some(Error::Broken {
            reason: reason.clone(),
        })
    } else if state.shutdown {
        Some(Error::Shutdown)
    } else {
        None
    }
}

/// The pipe whose write end only the program holds, so that its end of file, which comes when
/// the program is gone, tells the kernel to kill the `fork` children.
///
/// Why a pipe: a `fork` child must die with the program, not with the thread that forked it
/// (which `PR_SET_PDEATHSIG` would do: it fires when the forking *thread* ends, and
/// `ProcessPool::fork` may be called from a thread that ends long before the child), and it
/// cannot watch anything itself while it runs the closure. A pipe's readers that asked for
/// `O_ASYNC` get a signal when its last writer closes, and `F_SETSIG` makes that signal
/// SIGKILL: the kernel then kills each child the moment the program's fds close, however the
/// program ends. Each child closes its own copy of the write end at once (see `fork_child`).
struct Lifeline {
    /// The process that made it: a fork of that process inherits the record, not the role.
    owner: i32,
    read: std::os::fd::OwnedFd,
    _write: std::os::fd::OwnedFd,
}

static LIFELINE: std::sync::OnceLock<Option<Lifeline>> = std::sync::OnceLock::new();

/// The read end of this program's lifeline, made at the first call; `None` if it could not be
/// made or was inherited from the process this one is a fork of.
fn lifeline() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    let lifeline = LIFELINE.get_or_init(|| {
        let (read, write) = sys::pipe().ok()?;
        Some(Lifeline {
            owner: sys::getpid(),
            read,
            _write: write,
        })
    });
    lifeline
        .as_ref()
        .filter(|lifeline| lifeline.owner == sys::getpid())
        .map(|lifeline| lifeline.read.as_raw_fd())
}

/// Forks a child that runs `f`, writes its reply frame and exits; returns its pid, a pidfd
/// and the read end of its result pipe.
fn fork_child<F, R>(f: F) -> io::Result<(i32, std::os::fd::OwnedFd, std::os::fd::OwnedFd)>
where
    F: FnOnce() -> R,
    R: Payload,
{
    use std::os::fd::AsRawFd;
    let lifeline = lifeline();
    let (read, write) = sys::pipe()?;
    // SAFETY: the child runs `f`, serializes its result, writes it to a pipe it owns and
    // leaves through `exit_now`; the locks other threads may hold are the caller's
    // responsibility, as `ProcessPool::fork` documents (a hang, bounded by `task_timeout`).
    // The fds it closes are never used again: nothing in it returns into code that owns them,
    // and what the closure captured is its own to use or not, as `fork` documents.
    match unsafe { sys::fork() }? {
        sys::Forked::Child => {
            drop(read);
            // Before closing the inherited write end, so that if the program is already gone,
            // closing that last copy is what kills this child.
            let watch = lifeline.and_then(|fd| sys::die_when_writers_close(fd).ok());
            let watched = watch.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            sys::close_fds_except(&[write.as_raw_fd(), watched]);
            let reply = match wire::run_and_encode(f) {
                Ok(bytes) => wire::Reply::Value(bytes),
                Err(failure) => wire::Reply::Failed(failure),
            };
            let _ = sys::write_all(&write, &wire::reply_frame(0, &reply));
            sys::exit_now(0)
        }
        sys::Forked::Parent(pid) => {
            drop(write);
            let watched = sys::set_nonblocking(&read).and_then(|()| sys::pidfd_open(pid));
            match watched {
                Ok(pidfd) => Ok((pid, pidfd, read)),
                Err(error) => {
                    sys::kill(pid, libc::SIGKILL);
                    sys::reap(pid, true);
                    Err(error)
                }
            }
        }
    }
}

remote::fn_executor_over_dispatch!(ProcessPool);

impl Dispatch for ProcessPool {
    /// Workers are forks of the fork server, which runs this executable at other addresses,
    /// so the functions travel as offsets in the executable.
    fn dispatch(
        &self,
        trampoline: wire::Trampoline,
        func: usize,
        arg: Vec<u8>,
        slot: Box<dyn Slot>,
    ) {
        if let Some(error) = refusal(&self.shared.lock()) {
            slot.finish(Err(error));
            return;
        }
        let (trampoline, func) =
            match self
                .image
                .offsets_of(trampoline as usize, func, "in a worker")
            {
                Ok(offsets) => offsets,
                Err(error) => return slot.finish(Err(error)),
            };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match wire::request_frame(id, trampoline, func, arg) {
            Ok(frame) => self.enqueue(Task { id, frame, slot }),
            Err(error) => slot.finish(Err(error)),
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ProcessPool")
            .field("max_workers", &self.workers)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .field("broken", &state.broken)
            .finish()
    }
}
