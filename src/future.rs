//! [`Future`] and [`Promise`]: the shared completion state every executor fills and every
//! reader (`result`, [`wait`](crate::wait), [`as_completed`](crate::as_completed), `.await`)
//! reads.
//!
//! One heap allocation per future holds an atomic state word, the outcome in a `OnceLock`
//! (written once, then read without a lock), a count of live [`Future`] handles, and behind a
//! mutex the things that wait for completion: done-callbacks, listeners registered by `wait`
//! and `as_completed`, and the number of threads asleep on the condition variable.
//!
//! A completion goes through three steps, all in the completing thread:
//!
//! 1. under the lock: store the outcome, publish the state, take the callbacks and listeners,
//!    wake sleepers (`result()` callers);
//! 2. without the lock: notify the `wait`/`as_completed` listeners, run the callbacks;
//! 3. under the lock again: mark the future *settled* and wake `into_result` and `.await`.
//!
//! The split exists for [`Future::into_result`]: while callbacks run they hold a handle, so a
//! caller that woke at step 1 would see a second handle and fail for no reason of its own.
//! Waiting for step 3 makes that failure impossible.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sync::{
    Arc, AtomicU8, AtomicUsize, Mutex, OnceLock, Ordering, ThreadId, Wakeup, current_thread,
    deadline_after, expired, helping, lock, wait_until, yield_now,
};

/// Where a future is in its life.
///
/// The only moves are Pending → Running → Finished and Pending → Cancelled (a completing side
/// may also go straight from Pending to Finished, as CPython allows). Each happens at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Submitted, not started; the only state [`Future::cancel`] can leave.
    Pending,
    /// A worker has started it; it can no longer be cancelled.
    Running,
    /// Cancelled before it started. Done.
    Cancelled,
    /// Holds a value or an error. Done.
    Finished,
}

/// Rounds of looking before a blocking wait sleeps: `BUSY_STEPS` busy ones (1, 2, 4, ... spin
/// hints), then yields. Under loom, none: the model explores the sleeping path.
#[cfg(not(loom))]
const SPIN_STEPS: u32 = 24;
#[cfg(loom)]
const SPIN_STEPS: u32 = 0;
const BUSY_STEPS: u32 = 6;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;
const FINISHED: u8 = 3;

fn decode(state: u8) -> State {
    match state {
        PENDING => State::Pending,
        RUNNING => State::Running,
        CANCELLED => State::Cancelled,
        _ => State::Finished,
    }
}

/// Something outside the future that wants to hear when it is done: a `wait` call, an
/// `as_completed` iterator, an `.await`. `index` tells the listener which of its futures it is.
pub(crate) trait Listener: Send + Sync {
    /// Called once, outside the future's lock. `failed` is true when the future finished with
    /// an error (a cancel is not a failure, as in CPython's `FIRST_EXCEPTION`).
    fn notify(&self, index: usize, failed: bool);
}

/// A listener attached to one future.
pub(crate) struct Registration {
    listener: std::sync::Arc<dyn Listener>,
    index: usize,
    /// Notify after the callbacks ran (step 3) instead of at completion (step 1).
    on_settle: bool,
}

impl Registration {
    pub(crate) fn new(listener: std::sync::Arc<dyn Listener>, index: usize) -> Self {
        Registration {
            listener,
            index,
            on_settle: false,
        }
    }

    fn is(&self, listener: &std::sync::Arc<dyn Listener>, index: usize) -> bool {
        // Compare data pointers only: vtable pointers of one type may differ between codegen units.
        std::sync::Arc::as_ptr(&self.listener).cast::<()>()
            == std::sync::Arc::as_ptr(listener).cast::<()>()
            && self.index == index
    }
}

type Callback<T> = Box<dyn FnOnce(&Future<T>) + Send>;

/// What waits for a future; guarded by [`Inner::waiters`].
struct Waiters<T> {
    callbacks: Vec<Callback<T>>,
    listeners: Vec<Registration>,
    /// Threads blocked on [`Inner::wakeup`]; notifying costs a system call, so only when > 0.
    sleepers: usize,
    /// Step 3 of a completion is over: no callback of the completing thread holds a handle.
    settled: bool,
    /// The thread running the callbacks until `settled`, so that one of them asking for
    /// [`Future::into_result`] is answered at once instead of waiting for itself.
    completing: Option<ThreadId>,
}

impl<T> Waiters<T> {
    /// True when the current thread runs this future's callbacks: a wait for settling would
    /// wait for itself. Meaningful once the outcome is set (which is when `completing` is).
    fn in_own_callback(&self) -> bool {
        self.completing
            .is_some_and(|thread| thread == current_thread().id())
    }

    /// What an `.await` that moves the value out waits for: the completion is over, or it
    /// never will be for this thread, which [`Future::into_result`] then answers at once.
    fn settled_for_current(&self) -> bool {
        self.settled || self.in_own_callback()
    }
}

struct Inner<T> {
    /// One of PENDING, RUNNING, CANCELLED, FINISHED; written only under `waiters`' lock.
    state: AtomicU8,
    /// Set exactly once, under the lock, just before `state` becomes CANCELLED or FINISHED.
    outcome: OnceLock<Result<T, Error>>,
    /// Live [`Future`] handles (the `Promise` is not one).
    handles: AtomicUsize,
    waiters: Mutex<Waiters<T>>,
    wakeup: Wakeup,
}

impl<T> Inner<T> {
    fn new() -> Self {
        Inner {
            state: AtomicU8::new(PENDING),
            outcome: OnceLock::new(),
            handles: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters {
                callbacks: Vec::new(),
                listeners: Vec::new(),
                sleepers: 0,
                settled: false,
                completing: None,
            }),
            wakeup: Wakeup::new(),
        }
    }

    /// Moves the future from a state `from` accepts to CANCELLED or FINISHED with `outcome`,
    /// then notifies everybody (the three steps of the module docs). Returns false, dropping
    /// `outcome`, when the current state is not accepted.
    fn complete(
        this: &Arc<Self>,
        from: impl Fn(u8) -> bool,
        to: u8,
        outcome: Result<T, Error>,
    ) -> bool {
        let failed = to == FINISHED && outcome.is_err();
        let mut waiters = lock(&this.waiters);
        if !from(this.state.load(Ordering::Relaxed)) || this.outcome.set(outcome).is_err() {
            return false;
        }
        this.state.store(to, Ordering::Release);
        let callbacks = std::mem::take(&mut waiters.callbacks);
        // Settle listeners stay in the list: one may still register while callbacks run.
        let now: Vec<_> = waiters
            .listeners
            .extract_if(.., |registration| !registration.on_settle)
            .collect();
        let quiet = callbacks.is_empty() && waiters.listeners.is_empty();
        waiters.settled = quiet;
        if !callbacks.is_empty() {
            waiters.completing = Some(current_thread().id());
        }
        if waiters.sleepers > 0 {
            this.wakeup.notify_all();
        }
        drop(waiters);

        for registration in now {
            registration.listener.notify(registration.index, failed);
        }
        if quiet {
            return true;
        }
        if !callbacks.is_empty() {
            let handle = Future::from_inner(Arc::clone(this));
            for callback in callbacks {
                run_callback(&handle, callback);
            }
        }
        let mut waiters = lock(&this.waiters);
        waiters.settled = true;
        let later = std::mem::take(&mut waiters.listeners);
        if waiters.sleepers > 0 {
            this.wakeup.notify_all();
        }
        drop(waiters);
        for registration in later {
            registration.listener.notify(registration.index, failed);
        }
        true
    }

    /// Pending → Cancelled, notifying everybody; false from any other state.
    fn cancel(this: &Arc<Self>) -> bool {
        Self::complete(
            this,
            |state| state == PENDING,
            CANCELLED,
            Err(Error::Cancelled),
        )
    }

    /// Blocks until the future is done (or, with `settled`, until its completion is over) or
    /// `deadline` passes. Returns the outcome, or `None` on time-out.
    fn wait(&self, deadline: Option<Instant>, settled: bool) -> Option<&Result<T, Error>> {
        match self.wait_for(deadline, settled) {
            Waited::Done(outcome) => Some(outcome),
            Waited::TimedOut | Waited::OwnCallback => None,
        }
    }

    /// [`wait`](Self::wait), telling a time-out apart from a wait for settling made by one of
    /// the future's own callbacks, which would never end.
    fn wait_for(&self, deadline: Option<Instant>, settled: bool) -> Waited<'_, T> {
        if !self.is_done() && !expired(deadline) && !helping() {
            self.spin_briefly();
        }
        if !settled && let Some(outcome) = self.outcome.get() {
            return Waited::Done(outcome);
        }
        let mut waiters = lock(&self.waiters);
        loop {
            if let Some(outcome) = self.outcome.get() {
                if waiters.settled || !settled {
                    return Waited::Done(outcome);
                }
                if waiters.in_own_callback() {
                    return Waited::OwnCallback;
                }
            }
            if expired(deadline) {
                return Waited::TimedOut;
            }
            waiters.sleepers += 1;
            waiters = wait_until(&self.wakeup, &self.waiters, waiters, deadline);
            waiters.sleepers -= 1;
        }
    }

    /// Looks a few more times before sleeping. A task on an idle pool often finishes within
    /// microseconds, and catching that here saves a futex sleep and wake-up on this side of
    /// every round trip. After a few short busy rounds it yields instead, so that on a
    /// machine with more runnable threads than cores the completing thread gets the core.
    #[cfg_attr(
        loom,
        allow(clippy::reversed_empty_ranges, reason = "no spinning under loom")
    )]
    fn spin_briefly(&self) {
        for step in 0..SPIN_STEPS {
            if self.is_done() {
                return;
            }
            if step < BUSY_STEPS {
                for _ in 0..1 << step {
                    std::hint::spin_loop();
                }
            } else {
                yield_now();
            }
        }
    }

    fn is_done(&self) -> bool {
        self.outcome.get().is_some()
    }

    fn failed(&self) -> bool {
        self.state.load(Ordering::Acquire) == FINISHED && matches!(self.outcome.get(), Some(Err(_)))
    }
}

/// How [`Inner::wait_for`] ended.
enum Waited<'a, T> {
    Done(&'a Result<T, Error>),
    TimedOut,
    /// Asked to wait for settling from one of the future's own done-callbacks.
    OwnCallback,
}

fn run_callback<T>(future: &Future<T>, callback: Callback<T>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| callback(future))) {
        log::error!(
            "exception calling callback for {future:?}: {}",
            Error::from_panic(payload)
        );
    }
}

/// A handle to the result of work that may not have finished yet.
///
/// Executors return one from `submit`; [`Promise::new`] makes one for work you complete
/// yourself. Handles are cheap to clone and all see the same state; a `Future<T>` is `Send` and
/// `Sync` when `T` is.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Promise, State};
///
/// # fn main() -> Result<(), Error> {
/// let (promise, future) = Promise::new();
/// std::thread::spawn(move || promise.run(|| 6 * 7));
/// assert_eq!(*future.result()?, 42);
/// assert_eq!(future.state(), State::Finished);
/// # Ok(())
/// # }
/// ```
///
/// # Borrowing or moving the value
///
/// Every handle can borrow the value: [`result`](Self::result) (`.cloned()` for a `Clone`
/// value) and `(&future).await`. Moving it out, with [`into_result`](Self::into_result) or
/// `future.await`, needs the last handle, and answers [`Error::Shared`] while other handles
/// are alive: a clone kept to cancel later, a copy used as a map key, the futures of `wait`'s
/// split. Nothing is lost then; borrow instead, or drop the other handles first.
///
/// ```
/// use concurrent_futures::{Error, Promise};
///
/// # fn main() -> Result<(), Error> {
/// let (promise, future) = Promise::new();
/// let to_cancel = future.clone(); // kept to cancel later: a second handle
/// promise.run(|| String::from("done"));
/// assert_eq!(future.result().cloned()?, "done"); // borrow, clone if needed
/// let Err(shared) = future.clone().into_result() else { unreachable!() };
/// assert_eq!(shared, Error::Shared { others: 2 }); // `future` and `to_cancel`
/// drop(to_cancel);
/// assert_eq!(future.into_result()?, "done"); // the last handle moves it out
/// # Ok(())
/// # }
/// ```
///
/// # `.await`
///
/// `Future` is not itself a `std::future::Future`: it is
/// [`IntoFuture`](std::future::IntoFuture), which is what `.await` calls. `future.await` gives
/// what [`into_result`](Self::into_result) gives; `(&future).await` gives a `Result<&T, _>`,
/// whatever other handles are alive. A function that takes a `std::future::Future` (a
/// `block_on`, `spawn`, `select`) needs `future.into_future()` or `async { future.await }`;
/// the crate docs' Async section shows a whole program.
///
/// ```
/// use concurrent_futures::{Error, Promise};
/// use std::future::IntoFuture;
///
/// fn needs_a_std_future<F: std::future::Future>(f: F) -> F { f }
///
/// let (promise, future) = Promise::<u8>::new();
/// let borrowed = needs_a_std_future((&future).into_future()); // an `AwaitingRef<'_, u8>`
/// let in_block = needs_a_std_future(async { (&future).await.copied() });
/// drop((borrowed, in_block));
/// let _owned = needs_a_std_future(future.into_future()); // an `Awaiting<u8>`
/// # drop(promise);
/// ```
pub struct Future<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Future<T> {
    fn from_inner(inner: Arc<Inner<T>>) -> Self {
        inner.handles.fetch_add(1, Ordering::Relaxed);
        Future { inner }
    }

    /// Cancels the future if it has not started.
    ///
    /// Returns true when the future is now cancelled (also when it already was), false when it
    /// is running or finished, in which case nothing changes. A successful cancel wakes every
    /// waiter, counts as done for [`wait`](crate::wait) and [`as_completed`](crate::as_completed)
    /// at once, and runs the done-callbacks in this thread.
    pub fn cancel(&self) -> bool {
        Inner::cancel(&self.inner) || self.cancelled()
    }

    /// True if the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.state() == State::Cancelled
    }

    /// True while a worker runs it.
    pub fn running(&self) -> bool {
        self.state() == State::Running
    }

    /// True once it is cancelled or finished.
    pub fn done(&self) -> bool {
        self.inner.is_done()
    }

    /// The current state.
    pub fn state(&self) -> State {
        decode(self.inner.state.load(Ordering::Acquire))
    }

    /// Blocks until the future is done and borrows its value. Call it as often as you like.
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] if it was cancelled, otherwise the error it finished with
    /// ([`Error::Panicked`] when the task panicked, [`Error::Broken`] when its completing side
    /// was dropped, and so on).
    ///
    /// # Warning: blocking
    ///
    /// This parks the calling thread. Called from a task on a pool whose workers are all
    /// blocked the same way, it waits forever, as in CPython; the CPU pool avoids that by
    /// running other work while it waits, the I/O pool does not.
    pub fn result(&self) -> Result<&T, Error> {
        as_value(self.inner.wait(None, false))
    }

    /// [`result`](Self::result), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `timeout` passed first (the work goes on; ask again later), or
    /// any error [`result`](Self::result) returns.
    pub fn result_timeout(&self, timeout: Duration) -> Result<&T, Error> {
        as_value(self.inner.wait(deadline_after(timeout), false))
    }

    /// Blocks until done and returns the error it finished with, `Ok(None)` on success
    /// (CPython's `exception()`).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`] if it was cancelled.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        self.as_exception(self.inner.wait(None, false))
    }

    /// [`exception`](Self::exception), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `timeout` passed first, [`Error::Cancelled`] if it was cancelled.
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<Error>, Error> {
        self.as_exception(self.inner.wait(deadline_after(timeout), false))
    }

    fn as_exception(&self, outcome: Option<&Result<T, Error>>) -> Result<Option<Error>, Error> {
        match outcome {
            None => Err(Error::Timeout),
            Some(Ok(_)) => Ok(None),
            Some(Err(_)) if self.cancelled() => Err(Error::Cancelled),
            Some(Err(error)) => Ok(Some(error.clone())),
        }
    }

    /// Blocks until done and moves the value out, with no `T: Clone` needed.
    ///
    /// That is possible only when this is the last handle: the one `submit` returned, or the
    /// one [`as_completed`](crate::as_completed) yielded, with no clone of it left alive.
    /// Callbacks still running in the completing thread do not count: this waits for them.
    /// With other handles alive it answers [`Error::Shared`] and the value stays; borrow it
    /// with [`result`](Self::result) (`.cloned()` for a `Clone` value) or `(&future).await`,
    /// or drop the other handles first. A future that failed gives its error either way.
    ///
    /// # Errors
    ///
    /// [`Error::Shared`] when other handles are alive (nothing is lost: they can still read
    /// the value), [`Error::InOwnCallback`] when called from one of this future's own
    /// done-callbacks (which share it; at once, instead of waiting for itself), or the error
    /// the future finished with, as for [`result`](Self::result).
    ///
    /// # Examples
    ///
    /// Python's `{executor.submit(f, item): item}` followed by `as_completed`: the map's keys
    /// are handles too, so take the future out of the map before moving its value out.
    ///
    /// ```
    /// use concurrent_futures::{CpuPool, Executor, Future, as_completed};
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = CpuPool::new(2)?;
    /// let mut words: HashMap<Future<String>, &str> = ["tea", "rust"]
    ///     .into_iter()
    ///     .map(|word| (pool.submit(move || word.to_uppercase()), word))
    ///     .collect();
    /// let mut shouted = Vec::new();
    /// let pending: Vec<_> = words.keys().cloned().collect();
    /// for future in as_completed(pending, Some(Duration::from_secs(30))) {
    ///     let future = future?;
    ///     let word = words.remove(&future).expect("every future is a key"); // drops the key
    ///     shouted.push((word, future.into_result()?)); // the last handle now
    /// }
    /// shouted.sort();
    /// assert_eq!(shouted, [("rust", "RUST".to_string()), ("tea", "TEA".to_string())]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With another handle alive the error says so, and the value stays for the others:
    ///
    /// ```
    /// use concurrent_futures::{Error, Promise};
    ///
    /// # fn main() -> Result<(), Error> {
    /// let (promise, future) = Promise::new();
    /// promise.run(|| String::from("owned"));
    /// let other = future.clone();
    /// assert_eq!(other.into_result(), Err(Error::Shared { others: 1 }));
    /// let value: String = future.into_result()?;
    /// assert_eq!(value, "owned");
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_result(self) -> Result<T, Error> {
        match self.inner.wait_for(None, true) {
            Waited::Done(Err(error)) => return Err(error.clone()),
            // The callback holds a handle to this future, so this cannot be the last one; an
            // error needs no moving, so it is answered as anywhere else.
            Waited::OwnCallback => {
                return Err(match self.inner.outcome.get() {
                    Some(Err(error)) => error.clone(),
                    _ => Error::InOwnCallback,
                });
            }
            Waited::Done(Ok(_)) | Waited::TimedOut => {}
        }
        let handles = self.inner.handles.load(Ordering::Acquire);
        if handles != 1 {
            return Err(Error::Shared {
                others: handles - 1,
            });
        }
        let mut inner = Arc::clone(&self.inner);
        drop(self);
        // No handle is left, so nobody can make a new one. The only other owner can be the
        // completing `Promise`, which settled and is now a few instructions from dropping its
        // reference: yield until it has.
        loop {
            match Arc::try_unwrap(inner) {
                Ok(inner) => {
                    return inner
                        .outcome
                        .into_inner()
                        .unwrap_or(Err(Error::InvalidState));
                }
                Err(shared) => {
                    inner = shared;
                    yield_now();
                }
            }
        }
    }

    /// Calls `f` with this future once it is done.
    ///
    /// Callbacks run in registration order in the thread that completes the future, outside
    /// any lock (so they may call [`result`](Self::result)); on a future that is already done
    /// `f` runs at once in this thread. A panicking callback is caught and reported through
    /// `log::error!`; the others still run. A callback borrows the value with
    /// [`result`](Self::result); [`into_result`](Self::into_result) there answers
    /// [`Error::InOwnCallback`], since the callbacks share the future while they run.
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<T>) + Send + 'static) {
        let mut waiters = lock(&self.inner.waiters);
        if !self.inner.is_done() {
            waiters.callbacks.push(Box::new(f));
            return;
        }
        drop(waiters);
        run_callback(self, Box::new(f));
    }

    /// A future already finished with `error`: what `submit` returns when an executor is
    /// shut down or broken.
    pub(crate) fn with_error(error: Error) -> Self {
        let (mut promise, future) = Promise::new();
        // A fresh promise is pending, so this cannot fail.
        let _ = promise.set_error(error);
        future
    }

    /// Blocks until the completion is over (callbacks included) or `deadline` passes; true if
    /// it is over, or if [`into_result`](Self::into_result) would answer at once anyway.
    pub(crate) fn wait_settled(&self, deadline: Option<Instant>) -> bool {
        !matches!(self.inner.wait_for(deadline, true), Waited::TimedOut)
    }

    /// Identity of the shared state: equal for clones of one future.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// True if it finished with an error (not cancelled).
    pub(crate) fn failed(&self) -> bool {
        self.inner.failed()
    }

    /// Attaches `registration` unless the future is already done (settled, or never to be
    /// for this thread, for a settle registration); returns whether it was attached.
    pub(crate) fn register(&self, registration: Registration) -> bool {
        let mut waiters = lock(&self.inner.waiters);
        let done = if registration.on_settle {
            waiters.settled_for_current()
        } else {
            self.inner.is_done()
        };
        if !done {
            waiters.listeners.push(registration);
        }
        !done
    }

    /// Removes a registration made by [`register`](Self::register), if it is still there.
    pub(crate) fn deregister(&self, listener: &std::sync::Arc<dyn Listener>, index: usize) {
        let mut waiters = lock(&self.inner.waiters);
        if let Some(position) = waiters.listeners.iter().position(|r| r.is(listener, index)) {
            waiters.listeners.swap_remove(position);
        }
    }

    /// Listeners attached now: for the unit tests and the loom models, which check that
    /// waits detach.
    #[cfg(any(test, loom))]
    pub(crate) fn listener_count(&self) -> usize {
        lock(&self.inner.waiters).listeners.len()
    }
}

fn as_value<T>(outcome: Option<&Result<T, Error>>) -> Result<&T, Error> {
    match outcome {
        None => Err(Error::Timeout),
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(error.clone()),
    }
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future::from_inner(Arc::clone(&self.inner))
    }
}

/// Handles are equal when they are clones of one future (identity, like Python's futures in a
/// set), whatever the value inside.
impl<T> PartialEq for Future<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T> Eq for Future<T> {}

impl<T> std::hash::Hash for Future<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        self.inner.handles.fetch_sub(1, Ordering::Release);
    }
}

impl<T> fmt::Debug for Future<T> {
    /// `Future { state: Finished, outcome: "returned" }`, after CPython's repr: the outcome says
    /// whether a finished future returned a value or which error it holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Future");
        out.field("state", &self.state());
        match self.inner.outcome.get() {
            Some(Ok(_)) => out.field("outcome", &"returned"),
            Some(Err(error)) if !self.cancelled() => out.field("raised", error),
            _ => &mut out,
        };
        out.finish()
    }
}

/// `future.await` in any async runtime: resolves to [`Future::into_result`]'s answer once the
/// future is settled, woken through the task's `Waker` (no polling thread, no runtime needed).
///
/// Like `into_result`, it moves the value out, so it answers [`Error::Shared`] when another
/// handle is alive; `(&future).await` borrows instead (see the `IntoFuture` for `&Future`).
impl<T> std::future::IntoFuture for Future<T> {
    type Output = Result<T, Error>;
    type IntoFuture = Awaiting<T>;

    fn into_future(self) -> Awaiting<T> {
        Awaiting {
            future: Some(self),
            slot: AwaitSlot(None),
        }
    }
}

/// `(&future).await`: borrows the value once the future is done, like [`Future::result`]
/// without blocking, whatever other handles are alive; woken through the task's `Waker`.
///
/// # Soundness
///
/// The `&'a T` points into the outcome, which lives in the shared allocation, is written
/// once before anyone can read it, and is never written again. Only [`Future::into_result`]
/// moves it out, and only through `Arc::try_unwrap` on that allocation, which fails while any
/// other `Arc` of it exists. Every handle holds one, and the handle borrowed here cannot be
/// dropped or moved (into `into_result`, say) while `'a` lasts; so for all of `'a` the value
/// stays where the reference points and the allocation stays alive. (Before it gets that
/// far, `into_result` sees the borrowed handle in the count of handles and answers
/// [`Error::Shared`] without touching the value.) It is the argument that makes
/// [`Future::result`]'s `&T` sound, with the borrow held across polls instead of one call.
impl<'a, T> std::future::IntoFuture for &'a Future<T> {
    type Output = Result<&'a T, Error>;
    type IntoFuture = AwaitingRef<'a, T>;

    fn into_future(self) -> AwaitingRef<'a, T> {
        AwaitingRef {
            future: self,
            slot: AwaitSlot(None),
        }
    }
}

/// The `std::future::Future` that `.await` on a [`Future`] polls.
pub struct Awaiting<T> {
    /// `None` once it returned `Ready`.
    future: Option<Future<T>>,
    slot: AwaitSlot,
}

/// The `std::future::Future` that `.await` on a `&`[`Future`] polls: resolves to a borrow of
/// the value (or the error) once the future is done.
pub struct AwaitingRef<'a, T> {
    future: &'a Future<T>,
    slot: AwaitSlot,
}

/// Holds the latest `Waker` of the task awaiting a future.
struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    fn set(&self, waker: &Waker) {
        let mut slot = lock(&self.0);
        if !slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

impl Listener for WakerSlot {
    fn notify(&self, _index: usize, _failed: bool) {
        let waker = lock(&self.0).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// An await's registration on its future: attached at the first `Pending`, detached when the
/// await ends or is dropped, so a dropped await leaves no `Waker` behind.
struct AwaitSlot(Option<std::sync::Arc<WakerSlot>>);

impl AwaitSlot {
    /// True once `future` is done (with `on_settle`, once its completion is over); otherwise
    /// leaves `cx`'s waker registered to be woken when that happens.
    fn poll_ready<T>(&mut self, future: &Future<T>, on_settle: bool, cx: &Context<'_>) -> bool {
        let ready = match &self.0 {
            // Store the new waker first, then look: a completion in between either finds the
            // new waker or is seen here.
            Some(slot) => {
                slot.set(cx.waker());
                if on_settle {
                    lock(&future.inner.waiters).settled_for_current()
                } else {
                    future.inner.is_done()
                }
            }
            None => {
                let slot = std::sync::Arc::new(WakerSlot(Mutex::new(Some(cx.waker().clone()))));
                let registration = Registration {
                    listener: slot.clone(),
                    index: 0,
                    on_settle,
                };
                let attached = future.register(registration);
                if attached {
                    self.0 = Some(slot);
                }
                !attached
            }
        };
        if ready {
            // Fired, or about to be by the completing thread, which takes it off the future.
            self.0 = None;
        }
        ready
    }

    fn detach<T>(&mut self, future: &Future<T>) {
        if let Some(slot) = self.0.take() {
            let listener: std::sync::Arc<dyn Listener> = slot;
            future.deregister(&listener, 0);
        }
    }
}

impl<T> std::future::Future for Awaiting<T> {
    type Output = Result<T, Error>;

    /// # Panics
    ///
    /// If polled again after it returned `Ready` (the value has been moved out).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(future) = this.future.take() else {
            panic!("`Awaiting` polled after it returned `Ready`");
        };
        if this.slot.poll_ready(&future, true, cx) {
            return Poll::Ready(future.into_result());
        }
        this.future = Some(future);
        Poll::Pending
    }
}

impl<'a, T> std::future::Future for AwaitingRef<'a, T> {
    type Output = Result<&'a T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future: &'a Future<T> = self.future;
        if self.slot.poll_ready(future, false, cx) {
            Poll::Ready(as_value(future.inner.outcome.get()))
        } else {
            Poll::Pending
        }
    }
}

impl<T> Drop for Awaiting<T> {
    fn drop(&mut self) {
        if let Some(future) = &self.future {
            self.slot.detach(future);
        }
    }
}

impl<T> Drop for AwaitingRef<'_, T> {
    fn drop(&mut self) {
        self.slot.detach(self.future);
    }
}

impl<T> fmt::Debug for Awaiting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Awaiting")
            .field("future", &self.future)
            .finish()
    }
}

impl<T> fmt::Debug for AwaitingRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingRef")
            .field("future", self.future)
            .finish()
    }
}

/// The completing side of a [`Future`]: what an executor (or your own code) uses to start it,
/// fill it, or fail it.
///
/// Completing methods take `&mut self` and answer [`Error::InvalidState`] when the future is
/// already done, keeping the first outcome. A `Promise` dropped before it completed its future
/// completes it with [`Error::Broken`], so nobody waits forever on lost work.
///
/// # Examples
///
/// ```
/// use concurrent_futures::{Error, Promise};
///
/// let (mut promise, future) = Promise::new();
/// assert_eq!(promise.set_running_or_notify_cancel(), Ok(true));
/// promise.set_result(1)?;
/// assert_eq!(promise.set_result(2), Err(Error::InvalidState));
/// assert_eq!(future.result(), Ok(&1));
/// # Ok::<(), Error>(())
/// ```
pub struct Promise<T> {
    /// `None` once this promise completed its future, so that it no longer keeps the state
    /// alive (and [`Future::into_result`] can take the value).
    inner: Option<Arc<Inner<T>>>,
}

impl<T> Promise<T> {
    /// A new pending future and the promise that completes it.
    pub fn new() -> (Promise<T>, Future<T>) {
        let inner = Arc::new(Inner::new());
        let future = Future::from_inner(Arc::clone(&inner));
        (Promise { inner: Some(inner) }, future)
    }

    /// Marks the future running, unless it was cancelled (CPython's method of the same name).
    ///
    /// Returns `Ok(true)` when the work should start now, `Ok(false)` when the future was
    /// cancelled and the work must be skipped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the future is already running or finished.
    pub fn set_running_or_notify_cancel(&mut self) -> Result<bool, Error> {
        let Some(inner) = &self.inner else {
            return Err(Error::InvalidState);
        };
        let _waiters = lock(&inner.waiters);
        match inner.state.load(Ordering::Relaxed) {
            PENDING => {
                inner.state.store(RUNNING, Ordering::Release);
                Ok(true)
            }
            CANCELLED => Ok(false),
            _ => Err(Error::InvalidState),
        }
    }

    /// Finishes the future with `value`, waking waiters and running callbacks in this thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the future is already done (cancelled or finished); the
    /// first outcome stays and `value` is dropped.
    pub fn set_result(&mut self, value: T) -> Result<(), Error> {
        self.finish(Ok(value))
    }

    /// Finishes the future with `error`, waking waiters and running callbacks in this thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] when the future is already done.
    pub fn set_error(&mut self, error: Error) -> Result<(), Error> {
        self.finish(Err(error))
    }

    /// Runs `work` and finishes the future with what it returns, or with [`Error::Panicked`]
    /// if it panics; skips it if the future was cancelled. This is how the executors of this
    /// crate run a task, and the simplest way to complete a future from your own thread.
    pub fn run(mut self, work: impl FnOnce() -> T) {
        if self.set_running_or_notify_cancel() != Ok(true) {
            return;
        }
        let outcome = catch_unwind(AssertUnwindSafe(work)).map_err(Error::from_panic);
        // Cannot fail: only this promise leaves RUNNING.
        let _ = self.finish(outcome);
    }

    /// Cancels the future while it is still pending, as [`Future::cancel`] would, for an
    /// executor that drops queued work (`shutdown` with `cancel_futures`) and holds only the
    /// promise. Returns true if the future is cancelled now; on false nothing changed.
    #[cfg_attr(
        loom,
        allow(dead_code, reason = "its users, the pools, are not built under loom")
    )]
    pub(crate) fn cancel(&mut self) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let cancelled = Inner::cancel(inner);
        if cancelled {
            self.inner = None;
        }
        cancelled
    }

    fn finish(&mut self, outcome: Result<T, Error>) -> Result<(), Error> {
        let inner = self.inner.take().ok_or(Error::InvalidState)?;
        if Inner::complete(
            &inner,
            |state| state == PENDING || state == RUNNING,
            FINISHED,
            outcome,
        ) {
            Ok(())
        } else {
            Err(Error::InvalidState)
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let broken = Error::Broken {
                reason: "the promise was dropped before it completed its future".into(),
            };
            // Fails only if the future was cancelled, which is fine.
            let _ = self.finish(Err(broken));
        }
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self
            .inner
            .as_ref()
            .map(|inner| decode(inner.state.load(Ordering::Acquire)));
        f.debug_struct("Promise").field("state", &state).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Promise;
    use std::future::{Future as _, IntoFuture};
    use std::task::{Context, Waker};

    #[test]
    fn dropping_an_unfinished_await_detaches_it() {
        let (mut promise, future) = Promise::<i32>::new();
        let mut awaiting = Box::pin(future.clone().into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(awaiting.as_mut().poll(&mut cx).is_pending());
        assert!(awaiting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            future.listener_count(),
            1,
            "one registration, however often polled"
        );
        drop(awaiting);
        assert_eq!(future.listener_count(), 0);
        promise.set_result(1).unwrap();
        assert_eq!(future.result(), Ok(&1));
    }
}
