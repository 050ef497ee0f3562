//! The synchronisation primitives the core is built from, swapped for loom's under `cfg(loom)`,
//! and the *helping wait* every blocking wait of the crate goes through.
//!
//! Everything in `future.rs`, `wait.rs` and `job.rs` that takes a lock, waits on a condition
//! variable, touches a shared atomic or yields goes through this module, so the loom model
//! tests in `tests/loom_future.rs` check the production code itself rather than a copy of it
//! (the habit copied from tokio's `src/loom/`).
//!
//! # Helping waits
//!
//! A thread that runs a pool task ([`with_helper`]) does not just sleep when it waits: it runs
//! other pending jobs of its pool meanwhile, so that a task can wait on another task of its
//! own pool, even on a pool of one thread. When the pool has nothing to run the thread sleeps
//! on its own [`Parker`], registered both with what it waits on (a [`Wakeup`]) and with its
//! pool ([`JobSignal`]): whichever comes first, the awaited event or a new job, wakes it. No
//! polling, so a blocked task costs nothing while there is nothing to do.
//!
//! Running a job inside a wait nests it on the waiting task's stack. The nesting is bounded
//! by depth and by stack used ([`may_help`]); past the bound a wait blocks for real.
//!
//! # Time under loom
//!
//! loom's condition variables never time out, so under `cfg(loom)` a timed wait returns at
//! once (a spurious wake-up, which every caller already handles by looking again) and
//! deadlines pass when the model says so ([`loom_support::pass_deadlines`]), at whatever point
//! of the interleaving loom picks. That puts every time-out branch in reach of the models.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[cfg(loom)]
pub(crate) use loom::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence},
    },
    thread::{ThreadId, current as current_thread, yield_now},
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU8, AtomicUsize, Ordering, fence},
    },
    thread::{ThreadId, current as current_thread, yield_now},
};

#[cfg(not(loom))]
pub(crate) use std::sync::OnceLock;

/// `std::sync::OnceLock` with its publication made visible to loom: a value becomes readable
/// through a loom atomic, so a model can stop a thread between writing the value and
/// publishing something else (a state word) and see in which order the two become visible.
#[cfg(loom)]
pub(crate) struct OnceLock<T> {
    value: std::sync::OnceLock<T>,
    published: AtomicBool,
}

#[cfg(loom)]
impl<T> OnceLock<T> {
    pub(crate) fn new() -> Self {
        OnceLock {
            value: std::sync::OnceLock::new(),
            published: AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        if self.published.load(Ordering::Acquire) {
            self.value.get()
        } else {
            None
        }
    }

    pub(crate) fn set(&self, value: T) -> Result<(), T> {
        self.value.set(value)?;
        self.published.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }
}

/// Locks `mutex`, ignoring poisoning.
///
/// No code of ours panics while it holds one of these locks (callbacks and user closures
/// always run after the guard is dropped), so a poisoned lock still guards a consistent value.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Something a blocked wait can do instead of sleeping: run one pending job of the pool the
/// current thread belongs to. Returns true if it ran one, false if the pool had nothing.
pub(crate) type Helper = fn() -> bool;

/// How deep helping waits may nest on one thread: each level is a task running inside
/// another task's wait. A backstop behind the stack budget (a level takes about 1 KiB of
/// stack in a release build, 3 KiB in a debug one), high enough for deep divide-and-conquer
/// waits on a pool of one thread, which nest one level per task started and not finished.
const MAX_HELP_DEPTH: usize = 1024;

/// The stack size of a thread started without an explicit size, as std computes it.
const DEFAULT_STACK: usize = 2 << 20;

macro_rules! thread_locals {
    ($($(#[$attr:meta])* $name:ident: $t:ty = $init:expr;)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $($(#[$attr])* static $name: $t = const { $init };)* }
        #[cfg(loom)]
        loom::thread_local! { $($(#[$attr])* static $name: $t = $init;)* }
    };
}

thread_locals! {
    HELPER: Cell<Option<Helper>> = Cell::new(None);
    /// Helping waits running a job on this thread right now.
    DEPTH: Cell<usize> = Cell::new(0);
    /// An address near the top of this thread's stack, taken when the outermost task started.
    STACK_TOP: Cell<usize> = Cell::new(0);
    /// Where this thread's pool announces new jobs; `None`: rayon's global pool.
    SIGNAL: std::cell::RefCell<Option<Arc<JobSignal>>> = std::cell::RefCell::new(None);
    /// This thread's parker, made on its first helping sleep.
    PARKER: std::cell::RefCell<Option<Arc<Parker>>> = std::cell::RefCell::new(None);
}

/// An address in the caller's frame, to measure how much stack lies between two calls.
#[inline(always)]
fn stack_address() -> usize {
    let marker = 0_u8;
    std::hint::black_box(std::ptr::addr_of!(marker)) as usize
}

/// Runs `f` with `helper` installed for this thread: every wait of this crate that blocks
/// inside `f` runs the pool's other jobs meanwhile. This is how a CPU pool task that waits on
/// another task of the same pool avoids deadlock, even on a pool of one thread.
pub(crate) fn with_helper<R>(helper: Helper, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Helper>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HELPER.with(|slot| slot.set(self.0));
        }
    }
    let _restore = Restore(HELPER.with(|slot| slot.replace(Some(helper))));
    if _restore.0.is_none() {
        STACK_TOP.with(|top| top.set(stack_address()));
    }
    f()
}

/// Makes `signal` the place where this thread hears of its pool's new jobs, for the rest of
/// the thread's life: called once by each thread of a pool of its own.
pub(crate) fn set_job_signal(signal: Arc<JobSignal>) {
    SIGNAL.with(|slot| *slot.borrow_mut() = Some(signal));
}

/// True on a thread with a [`Helper`] installed: its waits run jobs rather than spin.
pub(crate) fn helping() -> bool {
    HELPER.with(Cell::get).is_some()
}

/// How much stack the nested jobs of helping waits may use: half of what a pool thread has
/// by default (`RUST_MIN_STACK`, else std's 2 MiB), leaving the rest to the innermost task.
fn stack_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let size = std::env::var("RUST_MIN_STACK")
            .ok()
            .and_then(|size| size.parse().ok())
            .unwrap_or(DEFAULT_STACK);
        size / 2
    })
}

/// True while one more job may nest on this thread's stack: fewer than [`MAX_HELP_DEPTH`]
/// levels, and less than [`stack_budget`] used since the outermost task started.
fn may_help() -> bool {
    let used = STACK_TOP.with(Cell::get).abs_diff(stack_address());
    DEPTH.with(Cell::get) < MAX_HELP_DEPTH && used < stack_budget()
}

/// Runs one job of the pool through `helper`, one level deeper.
fn help(helper: Helper) -> bool {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let _leave = Leave;
    helper()
}

/// One thread's place to sleep: a flag and a condition variable. Anyone holding the `Arc` can
/// wake it, and a wake-up that comes before the sleep is kept, not lost.
pub(crate) struct Parker {
    woken: Mutex<bool>,
    condvar: Condvar,
}

impl Parker {
    fn current() -> Arc<Parker> {
        PARKER.with(|slot| {
            slot.borrow_mut()
                .get_or_insert_with(|| {
                    Arc::new(Parker {
                        woken: Mutex::new(false),
                        condvar: Condvar::new(),
                    })
                })
                .clone()
        })
    }

    fn reset(&self) {
        *lock(&self.woken) = false;
    }

    fn unpark(&self) {
        *lock(&self.woken) = true;
        self.condvar.notify_one();
    }

    /// Sleeps until woken (the flag is left set) or until `deadline` passes.
    fn park(&self, deadline: Option<Instant>) {
        let mut woken = lock(&self.woken);
        while !*woken && !expired(deadline) {
            woken = timed_wait(&self.condvar, &self.woken, woken, deadline);
        }
    }
}

/// A set of parked helping threads to wake all at once; `count` lets the waking side skip the
/// lock when the set is empty, the usual case.
struct Parked {
    parkers: Mutex<Vec<Arc<Parker>>>,
    count: AtomicUsize,
}

impl Parked {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Parked {
            parkers: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Parked {
            parkers: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        }
    }

    fn add(&self, parker: &Arc<Parker>) {
        let mut parkers = lock(&self.parkers);
        parkers.push(Arc::clone(parker));
        self.count.store(parkers.len(), Ordering::SeqCst);
    }

    fn remove(&self, parker: &Arc<Parker>) {
        let mut parkers = lock(&self.parkers);
        if let Some(at) = parkers.iter().position(|p| Arc::ptr_eq(p, parker)) {
            parkers.swap_remove(at);
        }
        self.count.store(parkers.len(), Ordering::SeqCst);
    }

    fn wake_all(&self) {
        if self.count.load(Ordering::Relaxed) > 0 {
            for parker in lock(&self.parkers).iter() {
                parker.unpark();
            }
        }
    }
}

/// A condition variable that also wakes the helping threads parked on behalf of a wait on it.
///
/// Like a condition variable it is paired with a mutex; it must be notified with that mutex
/// held (every notifier of the crate does), which is what makes a helper's registration,
/// made under the same mutex, impossible to miss.
pub(crate) struct Wakeup {
    condvar: Condvar,
    helpers: Parked,
}

impl Wakeup {
    pub(crate) fn new() -> Self {
        Wakeup {
            condvar: Condvar::new(),
            helpers: Parked::new(),
        }
    }

    pub(crate) fn notify_one(&self) {
        self.condvar.notify_one();
        self.helpers.wake_all();
    }

    pub(crate) fn notify_all(&self) {
        self.condvar.notify_all();
        self.helpers.wake_all();
    }
}

/// Where a pool announces new jobs to its threads asleep in helping waits.
pub(crate) struct JobSignal {
    helpers: Parked,
}

impl JobSignal {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        JobSignal {
            helpers: Parked::new(),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        JobSignal {
            helpers: Parked::new(),
        }
    }

    /// Wakes the pool's helping sleepers, if any, after a job was queued: on the submit path
    /// a fence and a load, no lock unless somebody sleeps.
    pub(crate) fn job_added(&self) {
        // Pairs with the fence in `park_helper`: either this load sees the sleeper's
        // registration, or the sleeper's look for work sees the job queued before the fence.
        fence(Ordering::SeqCst);
        self.helpers.wake_all();
    }
}

#[cfg(not(loom))]
static GLOBAL_SIGNAL: JobSignal = JobSignal::new();

#[cfg(loom)]
loom::lazy_static! {
    static ref GLOBAL_SIGNAL: JobSignal = JobSignal::new();
}

/// Where rayon's global pool, shared by every `CpuPool::global()`, announces new jobs.
pub(crate) fn global_job_signal() -> &'static JobSignal {
    &GLOBAL_SIGNAL
}

/// Waits on `wakeup` (paired with `mutex`, which `guard` locks) until notified or until
/// `deadline` passes (`None`: no deadline).
///
/// Returns the guard again; the caller re-checks its condition, so spurious wake-ups, time-outs
/// and helping are all just another turn of its loop. On a thread with a [`Helper`] installed
/// the wait runs one pending job of the pool instead if there is one, and otherwise sleeps
/// until notified, until the pool gets a job, or until the deadline (see the module docs).
pub(crate) fn wait_until<'a, T>(
    wakeup: &Wakeup,
    mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> MutexGuard<'a, T> {
    match HELPER.with(Cell::get) {
        Some(helper) if may_help() => park_helper(helper, wakeup, mutex, guard, deadline),
        _ => timed_wait(&wakeup.condvar, mutex, guard, deadline),
    }
}

fn park_helper<'a, T>(
    helper: Helper,
    wakeup: &Wakeup,
    mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> MutexGuard<'a, T> {
    let parker = Parker::current();
    let own_signal = SIGNAL.with(|slot| slot.borrow().clone());
    let signal = match &own_signal {
        Some(signal) => signal,
        None => global_job_signal(),
    };
    /// Takes the parker off both lists however the wait ends (a job run here may unwind).
    struct Registered<'w> {
        parker: Arc<Parker>,
        lists: [&'w Parked; 2],
    }
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            for list in self.lists {
                list.remove(&self.parker);
            }
        }
    }
    parker.reset();
    // Registered while the caller's lock is held, so every notify after its last look wakes us.
    wakeup.helpers.add(&parker);
    drop(guard);
    signal.helpers.add(&parker);
    let registered = Registered {
        parker,
        lists: [&signal.helpers, &wakeup.helpers],
    };
    // Pairs with the fence in `JobSignal::job_added` (see there).
    fence(Ordering::SeqCst);
    if !help(helper) {
        registered.parker.park(deadline);
    }
    drop(registered);
    lock(mutex)
}

/// Waits on `condvar` without helping, until notified or until `deadline`.
#[cfg(not(loom))]
fn timed_wait<'a, T>(
    condvar: &Condvar,
    _mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> MutexGuard<'a, T> {
    match deadline {
        None => condvar
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0
        }
    }
}

/// Under loom a timed wait may time out at any moment: it lets go of the lock, lets the other
/// threads run, and returns; the caller looks again and sees the deadline pass whenever the
/// model passes it.
#[cfg(loom)]
fn timed_wait<'a, T>(
    condvar: &Condvar,
    mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> MutexGuard<'a, T> {
    match deadline {
        None => condvar
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Some(_) => {
            drop(guard);
            yield_now();
            lock(mutex)
        }
    }
}

/// The instant `timeout` from now, or `None` (wait forever) when that is not representable.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// True once `deadline` has passed; never for `None`.
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    #[cfg(loom)]
    if deadline.is_some() && loom_support::deadlines_passed() {
        return true;
    }
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// What the loom models need beyond the public API: a clock they can move and a pool whose
/// waits help, built on the same [`wait_until`] and [`JobSignal`] as `CpuPool`.
#[cfg(loom)]
pub mod loom_support {
    use super::{Arc, AtomicBool, JobSignal, Mutex, Ordering, lock, with_helper};
    use std::collections::VecDeque;

    loom::lazy_static! {
        static ref PASSED: AtomicBool = AtomicBool::new(false);
    }

    loom::thread_local! {
        static POOL: std::cell::RefCell<Option<std::sync::Arc<Pool>>> = std::cell::RefCell::new(None);
    }

    /// From now on every deadline of the model has passed (real ones too short to wait for
    /// pass by the real clock anyway).
    pub fn pass_deadlines() {
        PASSED.store(true, Ordering::SeqCst);
    }

    pub(crate) fn deadlines_passed() -> bool {
        PASSED.load(Ordering::SeqCst)
    }

    /// How many `wait` and `as_completed` listeners `future` holds.
    pub fn listener_count<T>(future: &crate::Future<T>) -> usize {
        future.listener_count()
    }

    type Job = Box<dyn FnOnce() + Send>;

    /// A pool whose workers are the model's threads that call [`work`](Pool::work): a
    /// queue, and the same job signal and helping waits as a `CpuPool`.
    pub struct Pool {
        jobs: Mutex<VecDeque<Job>>,
        signal: Arc<JobSignal>,
    }

    impl std::fmt::Debug for Pool {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Pool").finish_non_exhaustive()
        }
    }

    impl Pool {
        /// An empty pool.
        pub fn new() -> std::sync::Arc<Pool> {
            std::sync::Arc::new(Pool {
                jobs: Mutex::new(VecDeque::new()),
                signal: Arc::new(JobSignal::new()),
            })
        }

        /// Queues `job` and tells the pool's sleeping helpers, as `CpuPool::submit` does.
        pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
            lock(&self.jobs).push_back(Box::new(job));
            self.signal.job_added();
        }

        /// Runs `f` on this thread as a task of the pool: its waits help.
        pub fn work<R>(self: &std::sync::Arc<Self>, f: impl FnOnce() -> R) -> R {
            /// Empties the thread-locals when `work` ends, even by a panic: loom cannot switch
            /// threads inside the destructors it runs when a thread ends (it hangs), nor drop
            /// its objects after a failed model (it aborts).
            struct Leave;
            impl Drop for Leave {
                fn drop(&mut self) {
                    POOL.with(|pool| pool.borrow_mut().take());
                    super::SIGNAL.with(|slot| slot.borrow_mut().take());
                    super::PARKER.with(|slot| slot.borrow_mut().take());
                }
            }
            POOL.with(|pool| *pool.borrow_mut() = Some(self.clone()));
            super::set_job_signal(self.signal.clone());
            let _leave = Leave;
            with_helper(run_one, f)
        }

        fn run_one(&self) -> bool {
            let job = lock(&self.jobs).pop_front();
            job.map(|job| job()).is_some()
        }
    }

    fn run_one() -> bool {
        let pool = POOL.with(|pool| pool.borrow().clone());
        pool.is_some_and(|pool| pool.run_one())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::with_helper;
    use crate::{Future, Promise, ReturnWhen, as_completed, wait};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    std::thread_local! {
        static JOBS: RefCell<VecDeque<Box<dyn FnOnce()>>> = RefCell::new(VecDeque::new());
    }

    /// A one-thread "pool": its queue is a thread-local, its helper runs the next job.
    fn run_one() -> bool {
        let job = JOBS.with(|jobs| jobs.borrow_mut().pop_front());
        job.map(|job| job()).is_some()
    }

    fn queued(value: u32) -> Future<u32> {
        let (promise, future) = Promise::new();
        JOBS.with(|jobs| {
            jobs.borrow_mut()
                .push_back(Box::new(move || promise.run(|| value)))
        });
        future
    }

    #[test]
    fn a_helping_wait_runs_the_job_it_waits_for_on_the_same_thread() {
        let future = queued(7);
        assert_eq!(with_helper(run_one, || future.result().copied()), Ok(7));

        let futures = vec![queued(1), queued(2)];
        let split = with_helper(run_one, || wait(&futures, None, ReturnWhen::AllCompleted));
        assert_eq!(split.done.len(), 2);

        let futures = vec![queued(3), queued(4)];
        let sum: u32 = with_helper(run_one, || {
            as_completed(futures, None)
                .map(|f| *f.unwrap().result().unwrap())
                .sum()
        });
        assert_eq!(sum, 7);
    }
}
