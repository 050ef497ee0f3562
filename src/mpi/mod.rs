//! [`MpiPool`]: the [`FnExecutor`](crate::FnExecutor) of a [`ProcessPool`](crate::ProcessPool), over the ranks of
//! an MPI job, so that a program outgrows one machine by changing the line that makes its
//! pool (feature `mpi`).
//!
//! # Starting
//!
//! The program is started by `mpirun -n N prog` (or `srun`, or `mpiexec`); every rank runs
//! `main` from the top. [`MpiPool::init`], first thing in `main`, sorts them out:
//!
//! * on rank 0 it returns the pool, whose workers are the other N − 1 ranks;
//! * on every other rank it serves tasks until rank 0's pool shuts down, then **exits the
//!   process**: code after it runs on rank 0 only. Code before it runs on every rank.
//!
//! This is the shape of `mpirun -n N python -m mpi4py.futures prog.py` and of `procspawn::init`.
//!
//! ```no_run
//! use concurrent_futures::{Error, FnExecutor, MpiPool};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = MpiPool::init()?; // worker ranks never get past this line
//!     let squares: Vec<u64> = pool.map_fn(square, 0..1000).collect::<Result<_, Error>>()?;
//!     assert_eq!(squares[999], 998_001);
//!     Ok(())
//! } // dropping the pool stops the workers and finalizes MPI on every rank
//! ```
//!
//! # How it works
//!
//! * A task travels as in a [`ProcessPool`](crate::ProcessPool): a trampoline and a function,
//!   and the argument serialized with postcard. Ranks are not forks of each other and load the
//!   executable at different addresses, so the two functions travel as offsets from an anchor
//!   in the executable. At start-up every rank hashes its executable and the ranks compare the
//!   hashes: a rank that runs other bytes fails [`init`](MpiPool::init) on every rank with
//!   [`InitError::DifferentExecutables`]. An offset never leads outside the executable, and a
//!   function that is not in it (one of a shared library) fails its future with
//!   [`Error::Serialization`] before anything is sent.
//! * One progress thread on rank 0 makes every MPI call: it sends each rank a few tasks ahead
//!   (the [pipeline depth](MpiPoolBuilder::pipeline_depth)) with non-blocking sends, collects
//!   the replies in the order they come, and completes the futures. It initializes MPI with
//!   `MPI_THREAD_FUNNELED` (one thread makes the calls) and finalizes it when the pool is
//!   dropped or shut down with `wait`.
//! * A worker rank runs its tasks one after another, on a thread with an 8 MiB stack (what a
//!   main thread has); `par_iter` in a task uses that rank's rayon pool. Idle ranks poll with
//!   a backoff that ends in 1 ms sleeps, so they cost almost nothing while rank 0 computes.
//!
//! # Faults
//!
//! | fault | that task's future | the job |
//! | --- | --- | --- |
//! | the task panics | [`Error::Panicked`]: the message, then `[on rank R (pid P, host H)]` | goes on |
//! | argument or result does not (de)serialize, or is over 2 GiB | [`Error::Serialization`] | goes on |
//! | the function is not in the executable | [`Error::Serialization`] | goes on |
//! | a rank dies (a signal, `exit`, `abort`, its host is lost) | none: the program is killed | **ends** |
//!
//! # Warning: a rank that dies ends the job
//!
//! MPI's default error handler aborts the job when a rank fails, and unlike a
//! [`ProcessPool`](crate::ProcessPool) this pool cannot replace a rank. When a worker rank dies,
//! `mpirun` kills every rank, rank 0 included, prints which rank died and how, and exits with
//! a non-zero status. Nothing is lost silently: no future gets a value it did not compute, and
//! a program that was killed cannot report success. A task that must not take the job down
//! can run in a [`ProcessPool`](crate::ProcessPool) inside the task, on the worker rank.
//!
//! The same holds for rank 0: the pool must be dropped (or shut down with `wait`) before
//! `main` returns, which happens by itself when it is a local of `main`. A program that leaves
//! through [`std::process::exit`] with the pool alive never finalizes MPI, and `mpirun` reports
//! the job as failed.
//!
//! # Running on a cluster
//!
//! The README has the details: the same executable at the same path on every host (the ranks
//! compare hashes of it), a hostfile, and `mpirun -n 64 --hostfile hosts ./prog`.

mod backoff;
mod client;
mod image;
mod send;
mod server;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ::mpi::environment::Threading;
use ::mpi::traits::{Communicator, CommunicatorCollectives};

use crate::error::Error;
use crate::remote::{self, Dispatch, Slot, wire};

use crate::remote::image::Image;
use client::{Client, Shared, Task};

/// Rank 0 → worker: a task's request frame.
const TASK: i32 = 1;
/// Rank 0 → worker: no more tasks; an empty message.
const STOP: i32 = 2;
/// Worker → rank 0: a reply frame.
const REPLY: i32 = 3;

/// The stack of the thread that runs tasks on a worker rank: what a main thread gets.
const WORKER_STACK: usize = 8 << 20;

/// Why [`MpiPool::init`] failed. Every rank of the job gets the same error, so a program
/// that returns it from `main` ends on every rank.
///
/// Not a [`BuildError`](crate::BuildError), which every other pool's `new` and `build` return:
/// `init` does more than make a pool in this process. It initializes MPI, once per process,
/// and the ranks of the whole job agree on a verdict, so most of its failures are about the
/// job (MPI already initialized, one rank only, ranks running different executables, no thread
/// support) and come out the same on every rank; none of them can happen to a pool of threads
/// or forked workers, and none of `BuildError`'s process variants (fork server, pipes) can
/// happen here.
#[derive(Debug)]
#[non_exhaustive]
pub enum InitError {
    /// MPI was already initialized in this process: by an earlier `init` (MPI can be
    /// initialized once per process, so a pool cannot be made again after one has shut down)
    /// or by another library.
    AlreadyInitialized,
    /// The MPI library cannot let a thread other than `main` make its calls
    /// (`MPI_THREAD_FUNNELED`); it provides only `MPI_THREAD_SINGLE`.
    NoThreadSupport,
    /// The job has a single rank, so there is no rank to send work to: start the program
    /// with `mpirun -n N`, N at least 2.
    TooFewRanks,
    /// These ranks run an executable whose bytes differ from rank 0's (or they could not read
    /// theirs, or locate it in memory), so an offset would name other code there. Every host
    /// must run the same build.
    DifferentExecutables {
        /// The ranks that differ from rank 0.
        ranks: Vec<i32>,
    },
    /// [`pipeline_depth`](MpiPoolBuilder::pipeline_depth) was 0.
    ZeroPipelineDepth,
    /// The thread that makes the MPI calls could not be started.
    Thread(io::Error),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::AlreadyInitialized => {
                f.write_str("MPI was already initialized in this process")
            }
            InitError::NoThreadSupport => f.write_str(
                "the MPI library provides only MPI_THREAD_SINGLE; MpiPool needs MPI_THREAD_FUNNELED",
            ),
            InitError::TooFewRanks => f.write_str(
                "the MPI job has one rank and so no workers: start it with `mpirun -n N`, N >= 2",
            ),
            InitError::DifferentExecutables { ranks } => write!(
                f,
                "ranks {ranks:?} do not run the same executable as rank 0; every host must run \
                 the same build"
            ),
            InitError::ZeroPipelineDepth => f.write_str("pipeline_depth must be at least 1"),
            InitError::Thread(error) => write!(f, "could not start the MPI thread: {error}"),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Thread(error) => Some(error),
            _ => None,
        }
    }
}

/// Configures an [`MpiPool`]; made by [`MpiPool::builder`].
#[derive(Clone, Debug)]
pub struct MpiPoolBuilder {
    pipeline_depth: usize,
    print_panics: bool,
}

impl MpiPoolBuilder {
    /// How many tasks each worker rank may have been sent ahead of its replies (default 2),
    /// so that it finds the next task waiting when it finishes one. Tasks sent to a rank are
    /// marked running and can no longer be cancelled.
    pub fn pipeline_depth(mut self, depth: usize) -> Self {
        self.pipeline_depth = depth;
        self
    }

    /// Whether a task's panic also goes through the worker rank's panic hook (the one the
    /// program had when it called `init`, std's by default), which prints it on that rank's
    /// standard error (`true`, the default), or only into its future as
    /// [`Error::Panicked`](crate::Error::Panicked) (`false`, CPython's way). Every rank runs
    /// the builder, so every rank sees the same choice. The same option, with the same
    /// default, exists on every pool; see the crate docs, "Panics in tasks".
    pub fn print_panics(mut self, print: bool) -> Self {
        self.print_panics = print;
        self
    }

    /// Initializes MPI and, on rank 0, returns the pool; on every other rank, serves tasks
    /// until the pool shuts down and exits the process. See the [module docs](self).
    ///
    /// # Errors
    ///
    /// An [`InitError`], the same on every rank.
    pub fn init(self) -> Result<MpiPool, InitError> {
        if self.pipeline_depth == 0 {
            return Err(InitError::ZeroPipelineDepth);
        }
        let shared = Arc::new(Shared::default());
        let (role_sender, role) = mpsc::channel();
        let for_thread = Arc::clone(&shared);
        let depth = self.pipeline_depth;
        let print_panics = self.print_panics;
        let thread = std::thread::Builder::new()
            .name("mpi".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let (universe, image) = match start() {
                    Ok(started) => started,
                    Err(error) => return drop(role_sender.send(Err(error))),
                };
                let world = universe.world();
                if world.rank() == 0 {
                    let workers = usize::try_from(world.size() - 1).unwrap_or(0);
                    let _ = role_sender.send(Ok(Some((workers, image))));
                    Client::new(universe, for_thread, depth).run();
                } else {
                    let _ = role_sender.send(Ok(None));
                    server::serve(&world, image, print_panics);
                }
            })
            .map_err(InitError::Thread)?;
        match role.recv() {
            Ok(Ok(Some((workers, image)))) => Ok(MpiPool {
                shared,
                progress: Mutex::new(Some(thread)),
                next_id: AtomicU64::new(0),
                workers,
                image,
            }),
            Ok(Ok(None)) => {
                // A worker rank: the thread serves until rank 0 says stop, finalizes MPI,
                // and this process has nothing else to do. A panic there (a bug of this
                // crate) leaves MPI unfinalized, and mpirun reports the job as failed.
                let code = if thread.join().is_ok() { 0 } else { 101 };
                std::process::exit(code)
            }
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(mpsc::RecvError) => {
                // The thread panicked before saying which rank this is: a bug of this crate,
                // already reported by the panic hook.
                let _ = thread.join();
                Err(InitError::Thread(io::Error::other(
                    "the MPI thread panicked while starting",
                )))
            }
        }
    }
}

/// Initializes MPI on this thread and checks, together with the other ranks, that the job can
/// run a pool: more than one rank, all running this executable, and thread support. Every rank
/// reaches the same verdict; on failure MPI is finalized again.
fn start() -> Result<(::mpi::environment::Universe, Image), InitError> {
    let (universe, threading) = ::mpi::initialize_with_threading(Threading::Funneled)
        .ok_or(InitError::AlreadyInitialized)?;
    let image = Image::locate();
    // 0 stands for "cannot tell", which never matches rank 0 (nor itself: rank 0's own 0
    // fails every rank).
    let hash = image
        .and_then(|_| image::executable_hash().ok())
        .unwrap_or(0);
    let world = universe.world();
    let mut hashes = vec![0_u64; usize::try_from(world.size()).unwrap_or(1)];
    world.all_gather_into(&hash, &mut hashes[..]);
    let differ: Vec<i32> = (0..world.size())
        .zip(&hashes)
        .filter(|&(_, &h)| h == 0 || h != hashes[0])
        .map(|(rank, _)| rank)
        .collect();
    if !differ.is_empty() {
        return Err(InitError::DifferentExecutables { ranks: differ });
    }
    if world.size() < 2 {
        return Err(InitError::TooFewRanks);
    }
    if matches!(threading, Threading::Single) {
        return Err(InitError::NoThreadSupport);
    }
    let image = image.expect("a rank without an image hashes to 0 and fails above");
    Ok((universe, image))
}

/// A pool of the other ranks of an MPI job, which run plain functions on serialized arguments.
///
/// Made on rank 0 by [`MpiPool::init`]; see the [module docs](self) for how ranks are started,
/// how tasks travel and what each fault does. Dropping it shuts it down with `wait = true`:
/// queued tasks run, the worker ranks exit, and MPI is finalized.
///
/// Tasks go through [`FnExecutor`](crate::FnExecutor) (`submit_fn`, `map_fn`): a plain
/// function of this executable and a serializable argument. After
/// [`shutdown`](Self::shutdown) a submitted task's future holds [`Error::Shutdown`]; an
/// argument that does not serialize gives [`Error::Serialization`], and nothing is sent.
///
/// # Warning: callbacks
///
/// Rank 0's progress thread completes the futures, so it runs their done-callbacks
/// ([`Future::add_done_callback`](crate::Future::add_done_callback)). While a callback runs,
/// no reply is read and no task is sent: keep callbacks short, and never wait in one on this
/// pool's work.
pub struct MpiPool {
    shared: Arc<Shared>,
    progress: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
    workers: usize,
    image: Image,
}

impl MpiPool {
    /// [`MpiPoolBuilder::init`] with default settings: on rank 0 the pool, on the other ranks
    /// serves tasks and exits.
    ///
    /// # Errors
    ///
    /// An [`InitError`], the same on every rank.
    pub fn init() -> Result<MpiPool, InitError> {
        Self::builder().init()
    }

    /// A builder with default settings.
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder {
            pipeline_depth: 2,
            print_panics: true,
        }
    }

    /// The number of worker ranks: the job's size minus rank 0.
    pub fn max_workers(&self) -> usize {
        self.workers
    }

    /// Stops taking work, as [`Executor::shutdown`](crate::Executor::shutdown): later submits
    /// give [`Error::Shutdown`]; with `cancel_futures` the tasks not yet sent to a rank are
    /// cancelled; the rest run. Once they have, the worker ranks exit and MPI is finalized;
    /// with `wait`, this returns after that.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let mut state = self.shared.lock();
        state.shutdown = true;
        let cancelled = if cancel_futures {
            std::mem::take(&mut state.queue)
        } else {
            Default::default()
        };
        self.shared.notify(state);
        for task in cancelled {
            task.slot.cancel();
        }
        if wait {
            let thread = self
                .progress
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(thread) = thread {
                // The progress thread catches nothing a task can throw at it; a panic there
                // is a bug of this crate, already reported by the panic hook.
                let _ = thread.join();
            }
        }
    }
}

impl Dispatch for MpiPool {
    /// The ranks load the executable at addresses of their own: the functions travel as
    /// offsets in it.
    fn dispatch(
        &self,
        trampoline: wire::Trampoline,
        func: usize,
        arg: Vec<u8>,
        slot: Box<dyn Slot>,
    ) {
        let (trampoline, func) =
            match self
                .image
                .offsets_of(trampoline as usize, func, "on another rank")
            {
                Ok(offsets) => offsets,
                Err(error) => return slot.finish(Err(error)),
            };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::request_frame(id, trampoline, func, arg).and_then(|frame| {
            if send::fits(frame.len()) {
                Ok(frame)
            } else {
                Err(Error::Serialization {
                    message: format!(
                        "the argument is too large for one MPI message ({} bytes)",
                        frame.len() - wire::REQUEST_ROOM
                    ),
                })
            }
        });
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return slot.finish(Err(error)),
        };
        let mut state = self.shared.lock();
        if state.shutdown {
            drop(state);
            return slot.finish(Err(Error::Shutdown));
        }
        state.queue.push_back(Task { id, frame, slot });
        self.shared.notify(state);
    }
}

remote::fn_executor_over_dispatch!(MpiPool);

impl Drop for MpiPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl fmt::Debug for MpiPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("MpiPool")
            .field("max_workers", &self.workers)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}
