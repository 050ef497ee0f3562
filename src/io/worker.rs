//! The inside of an [`IoPool`](super::IoPool): the state its threads share, when a new thread
//! starts, how an idle one sleeps, wakes and retires.
//!
//! # Who is idle
//!
//! CPython's rule is that a submit starts a thread only when no idle thread can take the job.
//! `Threads::idle` counts idle threads nobody has counted on yet; a submit that finds one
//! *claims* it (`idle -= 1`, `claimed += 1`) instead of starting a thread, and any thread
//! that leaves the idle state takes back a claim if there is one, else its own idle count. So
//! `idle + claimed` is always the number of threads in the idle state, and two submits never
//! count on the same thread.
//!
//! A task that ends with the queue empty announces its thread idle *before* its future
//! completes: the submitter it wakes would otherwise often find no idle thread yet and start a
//! second one, which is how sequential submit-and-wait calls use exactly one thread.
//!
//! # Not losing a wake-up
//!
//! The queue and the counts are read without the lock on the hot paths, so both sides write
//! first and read second, with a `SeqCst` fence between: a submit pushes, then reads `idle`
//! and `count`; a thread going idle or retiring writes `idle` and `count`, then looks at the
//! queue. At least one of the two sees the other.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::job::{TaskQueue, with_print_panics};
use crate::sync::lock;

/// A thread initializer, its error already turned into words.
pub(super) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// How long an idle thread checks the queue before it goes to sleep: long enough to catch the
/// next submit of a caller that submits, waits and submits again, short enough not to matter.
const SPIN: Duration = Duration::from_micros(50);

pub(super) struct Config {
    pub(super) max_workers: usize,
    pub(super) prefix: String,
    pub(super) initializer: Option<Initializer>,
    pub(super) keep_alive: Duration,
    /// Whether the tasks' and the initializer's panics go through the panic hook.
    pub(super) print_panics: bool,
}

pub(super) struct Shared {
    pub(super) queue: TaskQueue,
    pub(super) config: Config,
    /// Why the pool is broken, once an initializer failed.
    broken: OnceLock<String>,
    threads: Mutex<Threads>,
    /// Mirrors of `Threads::idle`, `Threads::count` and `Threads::sleeping`, for the
    /// lock-free path of a submit.
    idle: AtomicUsize,
    count: AtomicUsize,
    sleeping: AtomicUsize,
    wake: Condvar,
}

#[derive(Default)]
struct Threads {
    count: usize,
    idle: usize,
    claimed: usize,
    sleeping: usize,
    /// Running threads by index (the `N` of their name).
    running: HashMap<usize, JoinHandle<()>>,
    /// Threads that retired and are about to end, to join later.
    retired: Vec<JoinHandle<()>>,
}

impl Threads {
    /// This thread leaves the idle state: take back a claim, else its own idle count.
    fn leave_idle(&mut self, shared: &Shared) {
        if self.claimed > 0 {
            self.claimed -= 1;
        } else {
            self.idle -= 1;
            shared.idle.store(self.idle, Ordering::SeqCst);
        }
    }

    fn enter_idle(&mut self, shared: &Shared) {
        self.idle += 1;
        shared.idle.store(self.idle, Ordering::SeqCst);
    }
}

std::thread_local! {
    /// The pool this thread works for; set once, when a worker starts.
    static POOL: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
    /// Set when the task that just ran announced this thread idle.
    static ANNOUNCED: Cell<bool> = const { Cell::new(false) };
}

/// Dropped at the end of every task (also when it panics), before its future completes:
/// announces the thread idle if the queue is empty. See the module docs.
pub(super) struct AnnounceIdle;

impl Drop for AnnounceIdle {
    fn drop(&mut self) {
        POOL.with(|pool| {
            if let Some(shared) = pool.borrow().as_ref()
                && !ANNOUNCED.get()
                && shared.queue.is_empty()
            {
                lock(&shared.threads).enter_idle(shared);
                ANNOUNCED.set(true);
            }
        });
    }
}

impl Shared {
    pub(super) fn new(config: Config) -> Self {
        Shared {
            queue: TaskQueue::new(config.print_panics),
            config,
            broken: OnceLock::new(),
            threads: Mutex::new(Threads::default()),
            idle: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            wake: Condvar::new(),
        }
    }

    /// The error every task of a broken pool gets.
    pub(super) fn broken(&self) -> Option<Error> {
        self.broken.get().map(|reason| Error::Broken {
            reason: reason.clone(),
        })
    }

    /// Makes sure a thread will take the task just queued: claim an idle one, or start one if
    /// there are fewer than `max_workers`; else a busy one takes it when its turn comes.
    pub(super) fn dispatch(self: &Arc<Self>) {
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) == 0
            && self.count.load(Ordering::SeqCst) >= self.config.max_workers
            && self.sleeping.load(Ordering::SeqCst) == 0
        {
            return;
        }
        let mut threads = lock(&self.threads);
        if threads.idle > 0 {
            threads.idle -= 1;
            self.idle.store(threads.idle, Ordering::SeqCst);
            threads.claimed += 1;
            if threads.sleeping > 0 {
                self.wake.notify_one();
            }
        } else if threads.count < self.config.max_workers {
            self.spawn(threads);
        } else if threads.sleeping > 0 {
            // A thread a submit claimed earlier may have found that task taken by a busy
            // thread and gone to sleep, still counted as claimed: no idle thread is left to
            // claim, yet one sleeps. Without this wake-up the pool ran on fewer threads than
            // it has (after one 10 000-task burst, a 2-worker pool used one thread until
            // keep-alive woke the other).
            self.wake.notify_one();
        }
    }

    fn spawn(self: &Arc<Self>, mut threads: MutexGuard<'_, Threads>) {
        let index = (0..)
            .find(|i| !threads.running.contains_key(i))
            .unwrap_or(0);
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("{}_{index}", self.config.prefix))
            .spawn(move || work(shared, index));
        match spawned {
            Ok(handle) => {
                threads.count += 1;
                self.count.store(threads.count, Ordering::SeqCst);
                threads.running.insert(index, handle);
                let retired = std::mem::take(&mut threads.retired);
                drop(threads);
                join(retired);
            }
            // With other threads alive the task waits for one of them, as in tokio's blocking
            // pool; with none, nothing would ever run it.
            Err(error) if threads.count == 0 => {
                drop(threads);
                let reason = format!("could not start a worker thread: {error}");
                self.queue.fail_all(&Error::Broken { reason });
            }
            Err(_) => {}
        }
    }

    /// Breaks the pool for good: queued and later tasks get [`Error::Broken`].
    fn break_pool(&self, error: &str) {
        log::error!("IoPool thread initializer failed: {error}");
        let _ = self.broken.set(format!(
            "a thread initializer failed, the pool is not usable anymore: {error}"
        ));
        self.fail_queued();
        let _threads = lock(&self.threads);
        self.wake.notify_all();
    }

    /// Fails whatever is queued, if the pool is broken.
    pub(super) fn fail_queued(&self) {
        if let Some(error) = self.broken() {
            self.queue.fail_all(&error);
        }
    }

    /// Wakes every sleeping thread, so that they see a shutdown.
    pub(super) fn wake_all(&self) {
        let _threads = lock(&self.threads);
        self.wake.notify_all();
    }

    /// Joins every thread, except the calling one if it is a worker.
    pub(super) fn join_all(&self) {
        let mut threads = lock(&self.threads);
        let mut handles: Vec<_> = threads.running.drain().map(|(_, handle)| handle).collect();
        handles.append(&mut threads.retired);
        drop(threads);
        let me = std::thread::current().id();
        let (mine, others): (Vec<_>, Vec<_>) =
            handles.into_iter().partition(|h| h.thread().id() == me);
        join(others);
        // Our own handle goes back, to be dropped (detached) with the pool.
        lock(&self.threads).retired.extend(mine);
    }

    /// Waits in the idle state until there is work, keep-alive runs out with nobody counting on
    /// this thread, or the pool shut down with nothing left to run.
    fn idle(&self, announced: bool) -> Next {
        if !announced {
            lock(&self.threads).enter_idle(self);
        }
        fence(Ordering::SeqCst);
        let spin_until = Instant::now() + SPIN;
        while self.queue.is_empty() && !self.queue.is_shut_down() && Instant::now() < spin_until {
            std::thread::yield_now();
        }
        let keep_until = Instant::now().checked_add(self.config.keep_alive);
        let mut threads = lock(&self.threads);
        loop {
            if !self.queue.is_empty() || self.broken.get().is_some() {
                threads.leave_idle(self);
                return Next::Work;
            }
            if self.queue.is_shut_down() {
                threads.leave_idle(self);
                return Next::Exit;
            }
            let left = keep_until.map(|until| until.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                if threads.claimed > 0 {
                    threads.claimed -= 1;
                    return Next::Work;
                }
                // Retire: write the counts first, then look at the queue once more.
                threads.idle -= 1;
                threads.count -= 1;
                self.idle.store(threads.idle, Ordering::SeqCst);
                self.count.store(threads.count, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if self.queue.is_empty() {
                    return Next::Retire;
                }
                threads.count += 1;
                self.count.store(threads.count, Ordering::SeqCst);
                return Next::Work;
            }
            threads.sleeping += 1;
            self.sleeping.store(threads.sleeping, Ordering::SeqCst);
            // Look once more after saying we sleep: a submit that pushed before seeing
            // `sleeping` is seen here, and one that pushes later sees `sleeping` and wakes us
            // (it takes the lock we hold until `wait` releases it, so its wake-up is not lost).
            fence(Ordering::SeqCst);
            if !self.queue.is_empty() {
                threads.sleeping -= 1;
                self.sleeping.store(threads.sleeping, Ordering::SeqCst);
                continue;
            }
            threads = match left {
                Some(left) => {
                    self.wake
                        .wait_timeout(threads, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
                None => self
                    .wake
                    .wait(threads)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
            threads.sleeping -= 1;
            self.sleeping.store(threads.sleeping, Ordering::SeqCst);
        }
    }

    /// Takes this thread off the books; its handle waits among the retired to be joined.
    fn retire(&self, index: usize, counted: bool) {
        let mut threads = lock(&self.threads);
        if counted {
            threads.count -= 1;
            self.count.store(threads.count, Ordering::SeqCst);
        }
        if let Some(handle) = threads.running.remove(&index) {
            threads.retired.push(handle);
        }
    }
}

/// What an idle thread does next.
enum Next {
    /// Look at the queue again.
    Work,
    /// Keep-alive ran out; the thread is already off the counts.
    Retire,
    /// The pool is shut down and the queue is empty.
    Exit,
}

fn join(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        // Tasks run under catch_unwind, so a worker never panics; nothing to report.
        let _ = handle.join();
    }
}

/// A worker thread's life: the initializer, then tasks until it retires.
fn work(shared: Arc<Shared>, index: usize) {
    if let Some(initializer) = &shared.config.initializer {
        let outcome = with_print_panics(shared.config.print_panics, || {
            catch_unwind(AssertUnwindSafe(|| initializer()))
        })
        .unwrap_or_else(|payload| Err(Error::from_panic(payload).to_string()));
        if let Err(error) = outcome {
            shared.retire(index, true);
            shared.break_pool(&error);
            return;
        }
    }
    POOL.with(|pool| *pool.borrow_mut() = Some(Arc::clone(&shared)));
    let mut announced = false;
    loop {
        if shared.broken.get().is_some() {
            if announced {
                lock(&shared.threads).leave_idle(&shared);
            }
            shared.fail_queued();
            break;
        }
        if let Some(task) = shared.queue.pop() {
            if announced {
                lock(&shared.threads).leave_idle(&shared);
            }
            shared.queue.run(task);
            announced = ANNOUNCED.take();
            continue;
        }
        match shared.idle(announced) {
            Next::Work => announced = false,
            Next::Retire => {
                shared.retire(index, false);
                return;
            }
            Next::Exit => break,
        }
    }
    shared.retire(index, true);
}
