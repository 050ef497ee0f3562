//! What the thread pools share: a submitted closure with its promise, type-erased so that a
//! pool can queue it ([`Task`]), and the first-in first-out queue that holds tasks until a
//! worker takes them, counts what is unfinished and knows whether the pool was shut down
//! ([`TaskQueue`]).
//!
//! It also holds the thread pools' side of the rule for a task's panic (see
//! [`print_panics`](crate::CpuPoolBuilder::print_panics)): a thread that runs a task of a
//! queue built with `print_panics(false)` is marked, and the panic hook installed by
//! [`silence_marked_panics`] skips the hook it wraps for panics on a marked thread.
//!
//! The pools keep their own queue, rather than leaving the order to rayon or to a channel,
//! because `shutdown(cancel_futures = true)` must find every task that has not started, and a
//! queue it can drain is the cheapest place to find them.

use std::cell::Cell;
use std::fmt;
use std::sync::Once;

use crossbeam_deque::{Injector, Steal};

use crate::error::Error;
use crate::future::{Future, Promise};
use crate::sync::{Mutex, Wakeup, lock, wait_until};

/// A submitted closure that can be run, cancelled or failed, once.
pub(crate) trait Task: Send {
    /// Runs it, unless its future was cancelled meanwhile.
    fn run(self: Box<Self>);
    /// Cancels its future; the closure is dropped unrun.
    fn cancel(self: Box<Self>);
    /// Finishes its future with `error`; the closure is dropped unrun.
    fn fail(self: Box<Self>, error: Error);
}

/// A closure and the promise it completes (which can also cancel it while it waits in a
/// queue).
struct Job<F, T> {
    promise: Promise<T>,
    work: F,
}

impl<F, T> Task for Job<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send + Sync,
{
    fn run(self: Box<Self>) {
        let Job { promise, work } = *self;
        promise.run(work);
    }

    fn cancel(self: Box<Self>) {
        let Job { mut promise, .. } = *self;
        // False only when the user cancelled it first, which is as good.
        promise.cancel();
    }

    fn fail(self: Box<Self>, error: Error) {
        let Job { mut promise, .. } = *self;
        // Fails only when the future was cancelled meanwhile, which is as good.
        let _ = promise.set_error(error);
    }
}

/// Wraps `work` into a task and returns it with the future it will complete.
pub(crate) fn task<F, T>(work: F) -> (Box<dyn Task>, Future<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + Sync + 'static,
{
    let (promise, future) = Promise::new();
    (Box::new(Job { promise, work }), future)
}

/// A FIFO queue of tasks with the two counts a shutdown needs: whether it happened, and how
/// many accepted tasks are not finished yet.
pub(crate) struct TaskQueue {
    tasks: Injector<Box<dyn Task>>,
    /// Bit 0: shut down. The rest: accepted tasks not yet run, cancelled or failed, times two.
    /// One word, so that a submit that raced with a shutdown is either counted before the
    /// shutdown looked (and waited for) or sees the flag and is refused, never half of each.
    state: std::sync::atomic::AtomicUsize,
    /// Wakes `wait_until_finished` callers; only touched once the queue is shut down.
    finished_lock: Mutex<()>,
    finished: Wakeup,
    /// Whether a panic in one of its tasks goes through the panic hook (the default) or not.
    print_panics: bool,
}

std::thread_local! {
    /// The queue whose task this thread is running (its address), 0 for none.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread runs a task whose panics must not reach the panic hook.
    static SILENT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's panics kept from the panic hook (`print == false`) or not, and
/// restores the previous choice afterwards, also when `f` unwinds. The pools that build with
/// `print_panics(false)` have called [`silence_marked_panics`] before any task runs.
pub(crate) fn with_print_panics<R>(print: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SILENT.with(|silent| silent.set(self.0));
        }
    }
    let _restore = Restore(SILENT.with(|silent| silent.replace(!print)));
    f()
}

/// Installs, once per process, a panic hook that wraps the current one and skips it for a
/// panic on a thread marked by [`with_print_panics`]. Wrapping, not replacing: every other
/// panic still reaches the hook that was there. A hook set later replaces this one, and the
/// pools' panics print again through it.
pub(crate) fn silence_marked_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while this thread's locals are being destroyed still prints.
            if !SILENT.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
}

const SHUT_DOWN: usize = 1;
const ONE_TASK: usize = 2;

impl TaskQueue {
    /// An empty queue whose tasks' panics go through the panic hook if `print_panics`.
    pub(crate) fn new(print_panics: bool) -> Self {
        if !print_panics {
            silence_marked_panics();
        }
        TaskQueue {
            tasks: Injector::new(),
            state: std::sync::atomic::AtomicUsize::new(0),
            finished_lock: Mutex::new(()),
            finished: Wakeup::new(),
            print_panics,
        }
    }

    /// Queues `task`, or hands it back when the queue is shut down.
    pub(crate) fn push(&self, task: Box<dyn Task>) -> Result<(), Box<dyn Task>> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.state.fetch_add(ONE_TASK, SeqCst) & SHUT_DOWN != 0 {
            self.finish_one();
            return Err(task);
        }
        self.tasks.push(task);
        Ok(())
    }

    /// Takes the oldest task, if any. The caller must call [`finish_one`](Self::finish_one)
    /// once it has run, cancelled or failed it.
    pub(crate) fn pop(&self) -> Option<Box<dyn Task>> {
        loop {
            match self.tasks.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Runs the oldest task, if any; returns whether there was one.
    pub(crate) fn run_one(&self) -> bool {
        let Some(task) = self.pop() else {
            return false;
        };
        self.run(task);
        true
    }

    /// Runs a popped task, marking this thread as running one of this queue's tasks meanwhile.
    pub(crate) fn run(&self, task: Box<dyn Task>) {
        struct Restore(usize);
        impl Drop for Restore {
            fn drop(&mut self) {
                RUNNING.with(|running| running.set(self.0));
            }
        }
        let _restore = Restore(RUNNING.with(|running| running.replace(self.id())));
        with_print_panics(self.print_panics, || task.run());
        self.finish_one();
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Counts one popped task as done.
    pub(crate) fn finish_one(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.state.fetch_sub(ONE_TASK, SeqCst) == ONE_TASK | SHUT_DOWN {
            // Taking the lock orders this wake-up after a waiter's last look at the count.
            let _guard = lock(&self.finished_lock);
            self.finished.notify_all();
        }
    }

    /// Refuses every later push, and with `cancel` cancels every queued task.
    ///
    /// A push that raced with this call and was counted first still queues its task after the
    /// cancelling pass: it counts as submitted before the shutdown and runs.
    pub(crate) fn shut_down(&self, cancel: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.fetch_or(SHUT_DOWN, SeqCst);
        if cancel {
            while let Some(task) = self.pop() {
                task.cancel();
                self.finish_one();
            }
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.load(SeqCst) & SHUT_DOWN != 0
    }

    /// Fails every queued task with `error`.
    pub(crate) fn fail_all(&self, error: &Error) {
        while let Some(task) = self.pop() {
            task.fail(error.clone());
            self.finish_one();
        }
    }

    /// Blocks until every accepted task is finished. Only meaningful after
    /// [`shut_down`](Self::shut_down): before it, new tasks may keep coming.
    ///
    /// Returns at once when called from inside one of this queue's tasks, which would
    /// otherwise wait for itself. Like every wait of the crate, it runs other jobs of the
    /// caller's pool meanwhile when called from a `CpuPool` task, so that the tasks it waits
    /// for can run even when they queue behind the caller on the same threads.
    pub(crate) fn wait_until_finished(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if RUNNING.with(Cell::get) == self.id() {
            return;
        }
        let mut guard = lock(&self.finished_lock);
        while self.state.load(SeqCst) >= ONE_TASK {
            guard = wait_until(&self.finished, &self.finished_lock, guard, None);
        }
    }
}

impl fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::sync::atomic::Ordering::SeqCst;
        let state = self.state.load(SeqCst);
        f.debug_struct("TaskQueue")
            .field("shut_down", &(state & SHUT_DOWN != 0))
            .field("unfinished", &(state / ONE_TASK))
            .finish()
    }
}
