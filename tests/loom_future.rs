//! Loom models of the races that matter in the `Future` state machine. The crate's own code
//! runs here: under `cfg(loom)`, `src/sync.rs` swaps its locks, condition variables and atomics
//! for loom's, and loom tries every interleaving.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_future` (`.ci/run` does).

#![cfg(loom)]

use std::future::IntoFuture;
use std::time::Duration;

use concurrent_futures::{Error, Promise, ReturnWhen, State, as_completed, loom_support, wait};
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

/// A minimal `block_on` for the models: poll, park until the waker unparks this thread. A
/// lost wake-up leaves every thread blocked, which loom reports.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// `future.await` racing a completion that still runs callbacks: woken once it is settled,
/// never too early (which would fail with `Error::Shared`), never missed.
#[test]
fn await_vs_settle() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        future.add_done_callback(|f| assert!(f.done()));
        let completer = thread::spawn(move || promise.set_result(9).unwrap());
        assert_eq!(block_on(future.into_future()), Ok(9));
        completer.join().unwrap();
    });
}

/// `(&future).await`, with another handle alive, racing the completion: never misses it,
/// and leaves no listener behind.
#[test]
fn borrowed_await_vs_completion() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let kept = future.clone();
        let completer = thread::spawn(move || promise.set_result(4).unwrap());
        assert_eq!(block_on((&future).into_future()), Ok(&4));
        completer.join().unwrap();
        assert_eq!(loom_support::listener_count(&kept), 0);
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

/// The outcome is visible before the state says Finished. A reader that takes no lock
/// (`state`, then `done`) must never see Finished without the outcome; loom stops the
/// completing thread between any two of its steps, so publishing the state first fails here.
#[test]
fn finished_state_implies_outcome() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let reader = future.clone();
        let completer = thread::spawn(move || promise.set_result(1).unwrap());
        // Looks until it sees Finished, so that loom tries the look at every step of the
        // completion (a single look before the completion starts finds nothing to check).
        while reader.state() != State::Finished {
            thread::yield_now();
        }
        assert!(reader.done(), "Finished before the outcome was written");
        assert_eq!(
            format!("{reader:?}"),
            r#"Future { state: Finished, outcome: "returned" }"#
        );
        completer.join().unwrap();
        assert_eq!(future.result(), Ok(&1));
    });
}

/// A timed wait that nothing completes returns once its deadline passes, wherever in the
/// wait that happens.
#[test]
fn timed_wait_returns_when_the_deadline_passes() {
    loom::model(|| {
        let (_promise, future) = Promise::<u32>::new();
        let timer = thread::spawn(loom_support::pass_deadlines);
        assert_eq!(future.result_timeout(HOUR), Err(Error::Timeout));
        timer.join().unwrap();
    });
}

/// A future completed before the deadline passes is never a time-out, wherever the wait
/// is when the two happen (the wait looks at the outcome and at the clock under the lock the
/// completion takes). A racing time-out is fine either way.
#[test]
fn completion_before_the_deadline_is_never_a_timeout() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let completer = thread::spawn(move || {
            promise.set_result(7).unwrap();
            loom_support::pass_deadlines();
        });
        assert_eq!(future.result_timeout(HOUR), Ok(&7));
        completer.join().unwrap();
    });
}

/// `wait` and `as_completed` timing out while the future completes: each answers
/// consistently and leaves no listener behind on the future.
#[test]
fn wait_and_as_completed_time_out_vs_completion() {
    loom::model(|| {
        let (mut promise, future) = Promise::<u32>::new();
        let completer = thread::spawn(move || promise.set_result(3).unwrap());
        let timer = thread::spawn(loom_support::pass_deadlines);
        let split = wait(
            std::slice::from_ref(&future),
            Some(HOUR),
            ReturnWhen::AllCompleted,
        );
        assert_eq!(split.done.len() + split.not_done.len(), 1);
        assert!(split.done.iter().all(|f| f.done()));
        drop(split);
        assert_eq!(
            loom_support::listener_count(&future),
            0,
            "wait left a listener"
        );

        let mut completed = as_completed([future.clone()], Some(HOUR));
        match completed.next() {
            Some(Ok(yielded)) => assert_eq!(yielded.result(), Ok(&3)),
            Some(Err(error)) => {
                assert_eq!(error, Error::Timeout);
                assert_eq!(completed.unfinished(), 1);
            }
            None => panic!("as_completed ended without an answer"),
        }
        assert!(completed.next().is_none());
        assert_eq!(
            loom_support::listener_count(&future),
            0,
            "as_completed left a listener"
        );
        drop(completed);
        completer.join().unwrap();
        timer.join().unwrap();
    });
}

/// A pool thread asleep in a helping wait wakes up for a job submitted to its pool and runs
/// it, here the very job that completes what it waits for (no other thread would run it).
#[test]
fn helping_wait_wakes_for_a_new_job() {
    loom::model(|| {
        let pool = loom_support::Pool::new();
        let (promise, future) = Promise::<u32>::new();
        let worker_pool = pool.clone();
        let worker = thread::spawn(move || worker_pool.work(|| future.result().copied()));
        pool.submit(move || promise.run(|| 3));
        assert_eq!(worker.join().unwrap(), Ok(3));
    });
}

/// A pool thread asleep in a helping wait wakes up when its future completes elsewhere, also
/// when it waits for the callbacks to finish (`into_result`) or on many futures (`wait`).
#[test]
fn helping_wait_wakes_when_its_future_completes() {
    loom::model(|| {
        let pool = loom_support::Pool::new();
        let (mut promise, future) = Promise::<u32>::new();
        future.add_done_callback(|f| assert!(f.done()));
        let waited = future.clone();
        let worker_pool = pool.clone();
        let worker = thread::spawn(move || {
            worker_pool.work(|| {
                let split = wait(
                    std::slice::from_ref(&waited),
                    None,
                    ReturnWhen::AllCompleted,
                );
                assert_eq!(split.done.len(), 1);
                drop(split);
                drop(waited);
                future.into_result()
            })
        });
        promise.set_result(5).unwrap();
        assert_eq!(worker.join().unwrap(), Ok(5));
    });
}

/// A pool thread asleep in a helping wait with a deadline returns when the deadline passes,
/// with nothing completing and no job coming.
#[test]
fn helping_wait_times_out() {
    loom::model(|| {
        let pool = loom_support::Pool::new();
        let (_promise, future) = Promise::<u32>::new();
        let timer = thread::spawn(loom_support::pass_deadlines);
        let result = pool.work(|| future.result_timeout(HOUR).copied());
        assert_eq!(result, Err(Error::Timeout));
        timer.join().unwrap();
    });
}
