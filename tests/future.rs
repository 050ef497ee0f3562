//! CPython's `test_future.py` (`FutureTests`, cases 22–43 of the reference list), ported case
//! by case, then the behaviour this crate adds: `into_result`, dropped promises, `.await`.
//!
//! Not ported, because they cannot apply to Rust:
//! * 31 `test_class_str`: the `str()` of Python classes.
//! * 43 `test_get_snapshot`: a private CPython method reading four fields under one lock;
//!   here the outcome is written once before the state is published, so a reader that sees
//!   `state()` Finished finds the outcome (checked in `finished_state_implies_outcome`, and
//!   exhaustively in the loom model `finished_state_implies_outcome` of `loom_future.rs`).
//!
//! CPython's `CANCELLED` and `CANCELLED_AND_NOTIFIED` states are one state here.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use common::*;
use concurrent_futures::{Error, Future, Promise, State};

type Seen = Arc<Mutex<Vec<String>>>;

/// Records what each callback saw.
fn recorder<T: Send + 'static>(
    see: impl Fn(&Future<T>) -> String + Send + 'static,
) -> (Seen, impl FnOnce(&Future<T>) + Send + 'static) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |future: &Future<T>| {
        sink.lock().unwrap().push(see(future))
    })
}

// 22
#[test]
fn done_callback_with_result() {
    let (mut promise, future) = Promise::new();
    let (seen, callback) = recorder(|f: &Future<i32>| format!("{:?}", f.result()));
    future.add_done_callback(callback);
    assert!(seen.lock().unwrap().is_empty());
    promise.set_result(5).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["Ok(5)"]);
}

// 23
#[test]
fn done_callback_with_exception() {
    let (mut promise, future) = Promise::<i32>::new();
    let (seen, callback) = recorder(|f: &Future<i32>| format!("{:?}", f.exception()));
    future.add_done_callback(callback);
    promise
        .set_error(Error::Panicked {
            message: "test".into(),
        })
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [r#"Ok(Some(Panicked { message: "test" }))"#]
    );
}

// 24
#[test]
fn done_callback_with_cancel() {
    let (_promise, future) = Promise::<i32>::new();
    let (seen, callback) = recorder(|f: &Future<i32>| f.cancelled().to_string());
    future.add_done_callback(callback);
    assert!(future.cancel());
    assert_eq!(*seen.lock().unwrap(), ["true"]);
}

// 25
#[test]
fn done_callback_raises() {
    capture_log();
    let (mut promise, future) = Promise::<i32>::new();
    let raising_was_called = Arc::new(AtomicUsize::new(0));
    let flag = raising_was_called.clone();
    future.add_done_callback(move |_| {
        flag.fetch_add(1, Ordering::SeqCst);
        panic!("doh! first");
    });
    let (seen, callback) = recorder(|f: &Future<i32>| format!("{:?}", f.result()));
    future.add_done_callback(callback);
    promise.set_result(5).unwrap();
    assert_eq!(raising_was_called.load(Ordering::SeqCst), 1);
    assert_eq!(*seen.lock().unwrap(), ["Ok(5)"]);
    let lines = logged("doh! first");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("ERROR exception calling callback for"),
        "{lines:?}"
    );
}

// 26
#[test]
fn done_callback_already_successful() {
    let (mut promise, future) = Promise::new();
    promise.set_result(5).unwrap();
    let (seen, callback) = recorder(|f: &Future<i32>| format!("{:?}", f.result()));
    future.add_done_callback(callback);
    assert_eq!(*seen.lock().unwrap(), ["Ok(5)"]);
}

// 27
#[test]
fn done_callback_already_failed() {
    let (mut promise, future) = Promise::<i32>::new();
    promise
        .set_error(Error::Panicked {
            message: "test".into(),
        })
        .unwrap();
    let (seen, callback) = recorder(|f: &Future<i32>| format!("{:?}", f.exception()));
    future.add_done_callback(callback);
    assert_eq!(
        *seen.lock().unwrap(),
        [r#"Ok(Some(Panicked { message: "test" }))"#]
    );
}

// 28
#[test]
fn done_callback_already_cancelled() {
    let future = cancelled();
    let (seen, callback) = recorder(|f: &Future<i32>| f.cancelled().to_string());
    future.add_done_callback(callback);
    assert_eq!(*seen.lock().unwrap(), ["true"]);
}

// 29
#[test]
fn done_callback_raises_already_succeeded() {
    capture_log();
    let future = successful();
    future.add_done_callback(|_| panic!("doh! already"));
    let lines = logged("doh! already");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("exception calling callback for Future"),
        "{lines:?}"
    );
}

// 30: Debug is the repr.
#[test]
fn debug_names_state_and_outcome() {
    let (_p, pending) = pending();
    let (_r, running) = running();
    assert_eq!(format!("{pending:?}"), "Future { state: Pending }");
    assert_eq!(format!("{running:?}"), "Future { state: Running }");
    assert_eq!(format!("{:?}", cancelled()), "Future { state: Cancelled }");
    assert_eq!(
        format!("{:?}", exception()),
        r#"Future { state: Finished, raised: Broken { reason: "OSError" } }"#
    );
    assert_eq!(
        format!("{:?}", successful()),
        r#"Future { state: Finished, outcome: "returned" }"#
    );
}

// 32
#[test]
fn cancel() {
    let (_p, f1) = pending();
    let (_r, f2) = running();
    let f3 = cancelled();
    let f5 = exception();
    let f6 = successful();

    assert!(f1.cancel());
    assert_eq!(f1.state(), State::Cancelled);
    assert!(!f2.cancel());
    assert_eq!(f2.state(), State::Running);
    assert!(f3.cancel());
    assert_eq!(f3.state(), State::Cancelled);
    assert!(!f5.cancel());
    assert_eq!(f5.state(), State::Finished);
    assert!(!f6.cancel());
    assert_eq!(f6.state(), State::Finished);
}

// 33, 34, 35
#[test]
fn predicates_over_every_state() {
    let (_p, pending) = pending();
    let (_r, running) = running();
    let table = [
        (&pending, false, false, false),
        (&running, false, false, true),
        (&cancelled(), true, true, false),
        (&exception(), false, true, false),
        (&successful(), false, true, false),
    ];
    for (future, is_cancelled, is_done, is_running) in table {
        assert_eq!(future.cancelled(), is_cancelled, "{future:?}");
        assert_eq!(future.done(), is_done, "{future:?}");
        assert_eq!(future.running(), is_running, "{future:?}");
    }
}

// 36
#[test]
fn result_with_timeout() {
    let (_p, pending) = pending();
    let (_r, running) = running();
    let zero = Duration::ZERO;
    assert_eq!(pending.result_timeout(zero), Err(Error::Timeout));
    assert_eq!(running.result_timeout(zero), Err(Error::Timeout));
    assert_eq!(cancelled().result_timeout(zero), Err(Error::Cancelled));
    assert_eq!(exception().result_timeout(zero), Err(os_error()));
    assert_eq!(successful().result_timeout(zero), Ok(&42));
}

// 37
#[test]
fn result_with_success() {
    let future = completed_after(Duration::from_millis(100), Ok(42));
    assert_eq!(future.result_timeout(LONG), Ok(&42));
}

// 38: cancel() must wake result() waiters.
#[test]
fn result_with_cancel() {
    let (_promise, future) = Promise::<i32>::new();
    let canceller = future.clone();
    let (started, waiting) = mpsc::channel();
    let waiter = thread::spawn(move || {
        started.send(()).unwrap();
        future.result_timeout(LONG).cloned()
    });
    waiting.recv().unwrap();
    thread::sleep(Duration::from_millis(50));
    assert!(canceller.cancel());
    assert_eq!(waiter.join().unwrap(), Err(Error::Cancelled));
}

// 39
#[test]
fn exception_with_timeout() {
    let (_p, pending) = pending();
    let (_r, running) = running();
    let zero = Duration::ZERO;
    assert_eq!(pending.exception_timeout(zero), Err(Error::Timeout));
    assert_eq!(running.exception_timeout(zero), Err(Error::Timeout));
    assert_eq!(cancelled().exception_timeout(zero), Err(Error::Cancelled));
    assert_eq!(exception().exception_timeout(zero), Ok(Some(os_error())));
    assert_eq!(successful().exception_timeout(zero), Ok(None));
}

// 40
#[test]
fn exception_with_success() {
    let future = completed_after(Duration::from_millis(100), Err(os_error()));
    assert_eq!(future.exception_timeout(LONG), Ok(Some(os_error())));
    assert_eq!(future.exception(), Ok(Some(os_error())));
}

// 41
#[test]
fn multiple_set_result() {
    let (mut promise, future) = Promise::new();
    promise.set_result(1).unwrap();
    assert_eq!(promise.set_result(2), Err(Error::InvalidState));
    assert_eq!(promise.set_error(os_error()), Err(Error::InvalidState));
    assert_eq!(future.result(), Ok(&1));
    assert!(future.done());
}

// 42
#[test]
fn multiple_set_exception() {
    let (mut promise, future) = Promise::<i32>::new();
    promise.set_error(os_error()).unwrap();
    assert_eq!(promise.set_error(Error::Timeout), Err(Error::InvalidState));
    assert_eq!(promise.set_result(2), Err(Error::InvalidState));
    assert_eq!(future.exception(), Ok(Some(os_error())));
}

// --- What this crate adds -------------------------------------------------------------

#[test]
fn set_result_on_a_cancelled_future_keeps_it_cancelled() {
    let (mut promise, future) = Promise::new();
    assert!(future.cancel());
    assert_eq!(promise.set_running_or_notify_cancel(), Ok(false));
    assert_eq!(promise.set_result(1), Err(Error::InvalidState));
    assert_eq!(future.result(), Err(Error::Cancelled));
}

#[test]
fn set_running_twice_is_invalid() {
    let (mut promise, future) = running();
    assert_eq!(
        promise.set_running_or_notify_cancel(),
        Err(Error::InvalidState)
    );
    assert!(!future.cancel());
    promise.set_result(3).unwrap();
    assert_eq!(
        promise.set_running_or_notify_cancel(),
        Err(Error::InvalidState)
    );
}

/// The outcome is written before the state says Finished: a reader that sees the state
/// finds the outcome. Read without the future's lock (`done` and `Debug` take none), since the
/// lock would hide the bug (the completing side writes both under it); many rounds, each with
/// a reader spinning on the state while the completion happens.
#[test]
fn finished_state_implies_outcome() {
    let (to_reader, futures) = mpsc::channel::<Future<i32>>();
    let spinning = Arc::new(AtomicUsize::new(0));
    let reader_spinning = spinning.clone();
    let reader = thread::spawn(move || {
        let mut torn = 0;
        for future in futures {
            reader_spinning.fetch_add(1, Ordering::SeqCst);
            while future.state() != State::Finished {
                std::hint::spin_loop();
            }
            let outcome = format!("{future:?}");
            if !future.done() || !outcome.contains("returned") {
                torn += 1;
            }
        }
        torn
    });
    for round in 1..=ROUNDS {
        let (promise, future) = Promise::new();
        to_reader.send(future).unwrap();
        while spinning.load(Ordering::SeqCst) < round {
            std::hint::spin_loop();
        }
        promise.run(|| 9);
    }
    drop(to_reader);
    assert_eq!(
        reader.join().unwrap(),
        0,
        "rounds where Finished was visible before the outcome"
    );
}

const ROUNDS: usize = 5_000;

#[test]
fn dropped_promise_breaks_its_future() {
    let (promise, future) = Promise::<i32>::new();
    let waiter = thread::spawn(move || future.result_timeout(LONG).cloned());
    thread::sleep(Duration::from_millis(20));
    drop(promise);
    match waiter.join().unwrap() {
        Err(Error::Broken { reason }) => assert!(reason.contains("dropped"), "{reason}"),
        other => panic!("expected Broken, got {other:?}"),
    }
}

#[test]
fn dropped_promise_of_a_cancelled_future_changes_nothing() {
    let (promise, future) = Promise::<i32>::new();
    assert!(future.cancel());
    drop(promise);
    assert_eq!(future.result(), Err(Error::Cancelled));
}

#[test]
fn run_turns_a_panic_into_an_error() {
    let (promise, future) = Promise::<i32>::new();
    promise.run(|| panic!("task {} failed", 3));
    assert_eq!(
        future.result(),
        Err(Error::Panicked {
            message: "task 3 failed".into()
        })
    );
    assert_eq!(
        future.exception(),
        Ok(Some(Error::Panicked {
            message: "task 3 failed".into()
        }))
    );
}

#[test]
fn run_skips_cancelled_work() {
    let (promise, future) = Promise::<i32>::new();
    assert!(future.cancel());
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    promise.run(move || counter.fetch_add(1, Ordering::SeqCst) as i32);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn callbacks_run_once_in_order_in_the_completing_thread() {
    let (promise, future) = Promise::<i32>::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5 {
        let order = order.clone();
        future.add_done_callback(move |_| order.lock().unwrap().push((i, thread::current().id())));
    }
    let completer = thread::spawn(move || {
        promise.run(|| 1);
        thread::current().id()
    });
    let completer_id = completer.join().unwrap();
    let order = order.lock().unwrap();
    assert_eq!(
        order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(order.iter().all(|(_, id)| *id == completer_id));
    // Already done: runs at once, here.
    let here = Arc::new(Mutex::new(None));
    let slot = here.clone();
    future.add_done_callback(move |_| *slot.lock().unwrap() = Some(thread::current().id()));
    assert_eq!(*here.lock().unwrap(), Some(thread::current().id()));
}

#[test]
fn a_callback_may_read_the_result_and_add_callbacks() {
    let (promise, future) = Promise::<i32>::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    future.add_done_callback(move |f| {
        sink.lock().unwrap().push(*f.result().unwrap());
        let sink = sink.clone();
        f.add_done_callback(move |f| sink.lock().unwrap().push(*f.result().unwrap() + 1));
    });
    promise.run(|| 10);
    assert_eq!(*seen.lock().unwrap(), [10, 11]);
}

#[test]
fn into_result_moves_a_value_that_is_not_clone() {
    struct NotClone(String);
    let (promise, future) = Promise::new();
    thread::spawn(move || promise.run(|| NotClone("moved".into())));
    assert_eq!(future.into_result().map(|v| v.0), Ok("moved".to_string()));
}

/// Issue 12, item 1: the error says that other handles are alive, how many, and what to do;
/// the value stays for them.
#[test]
fn into_result_with_other_handles_alive_says_so_and_loses_nothing() {
    let (promise, future) = Promise::new();
    promise.run(|| vec![1, 2, 3]);
    let other = future.clone();
    let error = future.clone().into_result().unwrap_err();
    assert_eq!(error, Error::Shared { others: 2 });
    assert_eq!(
        error.to_string(),
        "cannot move the value out of the future: 2 other handles to it are alive; drop them \
         first, or borrow the value with `result()` or `(&future).await`"
    );
    let error = future.into_result().unwrap_err();
    assert_eq!(error, Error::Shared { others: 1 });
    assert!(
        error
            .to_string()
            .contains("1 other handle to it is alive; drop it first"),
        "{error}"
    );
    assert_eq!(other.result().cloned(), Ok(vec![1, 2, 3]));
    assert_eq!(other.into_result(), Ok(vec![1, 2, 3]));
}

/// Issue 12, item 1: `.await` on an owned future moves the value out like `into_result`,
/// and says the same when another handle is alive.
#[test]
fn await_with_another_handle_alive_says_so() {
    let future = successful();
    let other = future.clone();
    assert_eq!(
        block_on(async move { future.await }).0,
        Err(Error::Shared { others: 1 })
    );
    assert_eq!(block_on(async move { other.await }).0, Ok(42));
}

/// Issue 12, item 1: `InvalidState` keeps CPython's meaning, a promise completing a future
/// that is already done, and its message says that.
#[test]
fn invalid_state_is_a_second_completion() {
    let (mut promise, _future) = Promise::new();
    promise.set_result(1).unwrap();
    let error = promise.set_result(2).unwrap_err();
    assert_eq!(error, Error::InvalidState);
    assert_eq!(
        error.to_string(),
        "the future is already running or done; the first outcome stays"
    );
}

#[test]
fn into_result_of_a_failed_future_gives_the_error_even_when_shared() {
    let failed = exception();
    let _other = failed.clone();
    assert_eq!(failed.into_result(), Err(os_error()));
    assert_eq!(cancelled().into_result(), Err(Error::Cancelled));
}

/// While the completing thread runs callbacks it holds a handle; `into_result` must wait for
/// them rather than fail. Repeated to catch the race.
#[test]
fn into_result_never_fails_because_callbacks_are_still_running() {
    for round in 0..500 {
        let (promise, future) = Promise::new();
        future.add_done_callback(|f| {
            let _ = f.result();
            thread::yield_now();
        });
        let completer = thread::spawn(move || promise.run(|| round));
        assert_eq!(future.into_result(), Ok(round), "round {round}");
        completer.join().unwrap();
    }
}

#[test]
fn future_is_send_and_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Future<Vec<u8>>>();
    assert_send_sync::<Promise<Vec<u8>>>();
    assert_eq!(
        std::mem::size_of::<Future<[u8; 1024]>>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn await_resolves_through_the_waker() {
    let future = completed_after(Duration::from_millis(50), Ok(7));
    let (output, wakes) = block_on(async move { future.await });
    assert_eq!(output, Ok(7));
    assert_eq!(wakes, 1, "woken exactly once, by the completion");
}

#[test]
fn await_gives_errors_and_ready_values() {
    assert_eq!(block_on(async { successful().await }).0, Ok(42));
    assert_eq!(
        block_on(async { cancelled().await }).0,
        Err(Error::Cancelled)
    );
    let future = completed_after(Duration::from_millis(20), Err(os_error()));
    assert_eq!(block_on(async move { future.await }).0, Err(os_error()));
}

#[test]
fn await_waits_for_callbacks_before_moving_the_value_out() {
    let (promise, future) = Promise::new();
    let (entered, in_callback) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    future.add_done_callback(move |_| {
        entered.send(()).unwrap();
        released.recv_timeout(LONG).unwrap();
    });
    let completer = thread::spawn(move || promise.run(|| String::from("late")));
    in_callback.recv_timeout(LONG).unwrap();
    let awaiter = thread::spawn(move || block_on(async move { future.await }).0);
    thread::sleep(Duration::from_millis(50));
    release.send(()).unwrap();
    assert_eq!(awaiter.join().unwrap(), Ok("late".to_string()));
    completer.join().unwrap();
}
