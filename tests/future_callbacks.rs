//! Done-callbacks that read their own future back: what they may and may not get.

mod common;

use std::future::IntoFuture;
use std::sync::mpsc;
use std::thread;

use common::{LONG, block_on};
use concurrent_futures::{CpuPool, Error, Executor, Promise};

/// Issue 11, item 15: `into_result` on a clone inside the future's own done-callback cannot
/// take the value (the callback's handle is alive), and must say so at once instead of
/// waiting for the callbacks to finish, which would be waiting for itself. Issue 12, item 1:
/// it says where it was called and what to do.
#[test]
fn into_result_inside_its_own_done_callback_answers_at_once() {
    let (mut promise, future) = Promise::<u32>::new();
    let (report, reported) = mpsc::channel();
    future.add_done_callback(move |own| {
        report.send(own.clone().into_result()).unwrap();
    });
    // Completed on a thread of its own, so that a hang fails this test instead of hanging it.
    let completer = thread::spawn(move || promise.set_result(4).unwrap());
    let answer = reported.recv_timeout(LONG);
    assert_eq!(
        answer,
        Ok(Err(Error::InOwnCallback)),
        "into_result inside the callback hung or answered wrong"
    );
    let message = answer.unwrap().unwrap_err().to_string();
    assert!(
        message.contains("inside its own done-callback") && message.contains("`result()`"),
        "{message}"
    );
    completer.join().unwrap();
    assert_eq!(future.into_result(), Ok(4));
}

/// The same on a pool thread, which the hang used to take with it; a failed future gives its
/// error (no value to move, so nothing to refuse), and the pool goes on running tasks.
#[test]
fn into_result_inside_its_own_done_callback_on_a_pool_thread() {
    let pool = CpuPool::new(1).unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let (report, reported) = mpsc::channel();
    let failing = pool.submit(move || -> u32 {
        gate.recv().unwrap();
        panic!("no value")
    });
    failing.add_done_callback(move |own| {
        report.send(own.clone().into_result()).unwrap();
    });
    release.send(()).unwrap();
    let answer = reported.recv_timeout(LONG);
    let expected = Error::Panicked {
        message: "no value".into(),
    };
    if answer != Ok(Err(expected)) {
        // Dropping the pool would wait for the hung task forever.
        std::mem::forget(pool);
        panic!("into_result inside the callback hung or answered wrong: {answer:?}");
    }
    assert_eq!(pool.submit(|| 2).result_timeout(LONG), Ok(&2));
}

/// Issue 12, item 1: `.await` on a clone inside the future's own done-callback (here through
/// a `block_on`) answers like `into_result`, at once, instead of waiting for itself; a
/// borrowed `.await` there reads the value.
#[test]
fn await_inside_its_own_done_callback_answers_at_once() {
    let (mut promise, future) = Promise::<u32>::new();
    let (report, reported) = mpsc::channel();
    future.add_done_callback(move |own| {
        let owned = block_on(own.clone().into_future()).0;
        let borrowed = block_on(own.into_future()).0.copied();
        report.send((owned, borrowed)).unwrap();
    });
    let completer = thread::spawn(move || promise.set_result(4).unwrap());
    assert_eq!(
        reported.recv_timeout(LONG),
        Ok((Err(Error::InOwnCallback), Ok(4))),
        "the awaits inside the callback hung or answered wrong"
    );
    completer.join().unwrap();
    assert_eq!(future.into_result(), Ok(4));
}
