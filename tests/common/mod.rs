//! Fixtures shared by the ported CPython tests: futures in each state (CPython's
//! `create_future` helpers in `util.py`), a background completer, a logger that keeps
//! what the crate logs so tests can read it, and a minimal `block_on` for `.await`.

#![allow(dead_code)] // each test binary uses its own subset

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, Future, Promise};

/// A bound for every wait that should succeed: long enough for the slowest machine.
pub const LONG: Duration = Duration::from_secs(30);

/// CPython's `PENDING_FUTURE`. The promise is returned so that the future stays pending.
pub fn pending() -> (Promise<i32>, Future<i32>) {
    Promise::new()
}

/// CPython's `RUNNING_FUTURE`.
pub fn running() -> (Promise<i32>, Future<i32>) {
    let (mut promise, future) = Promise::new();
    assert_eq!(promise.set_running_or_notify_cancel(), Ok(true));
    (promise, future)
}

/// CPython's `CANCELLED_FUTURE` and `CANCELLED_AND_NOTIFIED_FUTURE`: here one state, done and
/// notified at once.
pub fn cancelled() -> Future<i32> {
    let (_promise, future) = Promise::new();
    assert!(future.cancel());
    future
}

/// CPython's `EXCEPTION_FUTURE` (`OSError()` there).
pub fn exception() -> Future<i32> {
    let (mut promise, future) = Promise::new();
    promise.set_error(os_error()).unwrap();
    future
}

/// The error `exception()` holds.
pub fn os_error() -> Error {
    Error::Broken {
        reason: "OSError".into(),
    }
}

/// CPython's `SUCCESSFUL_FUTURE` (42).
pub fn successful() -> Future<i32> {
    let (mut promise, future) = Promise::new();
    promise.set_result(42).unwrap();
    future
}

/// A future completed from another thread after `delay` with `outcome`.
pub fn completed_after(delay: Duration, outcome: Result<i32, Error>) -> Future<i32> {
    let (mut promise, future) = Promise::new();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        promise.set_running_or_notify_cancel().unwrap();
        match outcome {
            Ok(value) => promise.set_result(value),
            Err(error) => promise.set_error(error),
        }
        .unwrap();
    });
    future
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LOG.lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

/// Starts capturing log records (idempotent).
pub fn capture_log() {
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The captured records that contain `needle`.
pub fn logged(needle: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(needle))
        .cloned()
        .collect()
}

/// An executor written outside the crate: one new thread per task. It proves the traits can be
/// implemented by users, and gives tests real concurrency without a pool.
#[derive(Debug, Default)]
pub struct ThreadPerTask {
    shut_down: std::sync::atomic::AtomicBool,
}

impl concurrent_futures::Executor for ThreadPerTask {
    fn submit<F, T>(&self, f: F) -> Future<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        let (mut promise, future) = Promise::new();
        if self.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            promise.set_error(Error::Shutdown).unwrap();
        } else {
            std::thread::spawn(move || promise.run(f));
        }
        future
    }

    fn shutdown(&self, _wait: bool, _cancel_futures: bool) {
        self.shut_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn max_workers(&self) -> usize {
        4
    }
}

/// Unparks the thread that made it and counts the wake-ups.
pub struct Unpark {
    thread: thread::Thread,
    /// Wake-ups so far.
    pub wakes: AtomicUsize,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A fresh waker target for the current thread.
pub fn signal() -> Arc<Unpark> {
    Arc::new(Unpark {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    })
}

/// A minimal `block_on`: poll, park until woken, repeat. Gives up after `LONG` without a
/// wake-up, so a lost wake-up fails the test instead of hanging it. Returns the output and
/// the number of wake-ups.
pub fn block_on<F: std::future::Future>(future: F) -> (F::Output, usize) {
    let signal = signal();
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, signal.wakes.load(Ordering::SeqCst));
        }
        let before = signal.wakes.load(Ordering::SeqCst);
        thread::park_timeout(LONG);
        assert!(
            signal.wakes.load(Ordering::SeqCst) > before,
            "no wake-up within {LONG:?}"
        );
    }
}
