//! Loom models of the races that matter in the `Future` state machine. The crate's own code
//! runs here: under `cfg(loom)`, `src/sync.rs` swaps its locks, condition variables and atomics
//! for loom's, and loom tries every interleaving.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_future` (`.ci/run` does).

#![cfg(loom)]

use std::time::Duration;

use concurrent_futures::{Error, Promise, ReturnWhen, State, wait};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const HOUR: Duration = Duration::from_secs(3600);

/// A cancel and a worker's start race: exactly one wins, and the loser sees it.
#[test]
fn cancel_vs_start() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let canceller = future.clone();
        let cancel = thread::spawn(move || canceller.cancel());
        let started = promise.set_running_or_notify_cancel().unwrap();
        let cancelled = cancel.join().unwrap();
        assert_ne!(started, cancelled, "exactly one of start and cancel wins");
        if started {
            promise.set_result(1).unwrap();
            assert_eq!(future.result(), Ok(&1));
        } else {
            assert_eq!(promise.set_result(1), Err(Error::InvalidState));
            assert_eq!(future.state(), State::Cancelled);
            assert_eq!(future.result(), Err(Error::Cancelled));
        }
    });
}

/// A callback registered while the future completes runs exactly once and sees the value,
/// whichever thread ends up running it.
#[test]
fn completion_vs_callback_registration() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let completer = thread::spawn(move || promise.set_result(5).unwrap());
        let counter = calls.clone();
        future.add_done_callback(move |f| {
            assert_eq!(f.result(), Ok(&5));
            counter.fetch_add(1, Ordering::SeqCst);
        });
        completer.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    });
}

/// A timed wait racing the completion never misses the wake-up.
#[test]
fn completion_vs_timed_wait() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let completer = thread::spawn(move || promise.set_result(7).unwrap());
        assert_eq!(future.result_timeout(HOUR), Ok(&7));
        completer.join().unwrap();
    });
}

/// A cancel wakes a thread blocked in `result`.
#[test]
fn cancel_wakes_a_blocked_waiter() {
    loom::model(|| {
        let (_promise, future) = Promise::<u32>::new();
        let waiter = future.clone();
        let blocked = thread::spawn(move || waiter.result().cloned());
        assert!(future.cancel());
        assert_eq!(blocked.join().unwrap(), Err(Error::Cancelled));
    });
}

/// `into_result` racing a completion that still runs callbacks never fails spuriously.
#[test]
fn into_result_vs_settle() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        future.add_done_callback(|f| assert!(f.done()));
        let completer = thread::spawn(move || promise.set_result(9).unwrap());
        assert_eq!(future.into_result(), Ok(9));
        completer.join().unwrap();
    });
}

/// `wait` attaching its listener while the future completes neither hangs nor misses it.
#[test]
fn completion_vs_wait_registration() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let completer = thread::spawn(move || promise.set_result(3).unwrap());
        let split = wait(
            std::slice::from_ref(&future),
            None,
            ReturnWhen::AllCompleted,
        );
        assert_eq!(split.done.len(), 1);
        completer.join().unwrap();
    });
}
