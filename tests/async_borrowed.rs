//! `(&future).await` (issue 12, item 1): awaiting a future without owning its last handle.
//! It borrows the value like `result()`, so other handles may be alive; a dropped await
//! leaves no waker on the future.

mod common;

use std::future::{Future as _, IntoFuture};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::*;
use concurrent_futures::{CpuPool, Error, Executor, Promise};

#[test]
fn await_on_a_borrowed_future_while_another_handle_is_alive() {
    let future = completed_after(Duration::from_millis(50), Ok(7));
    let kept = future.clone();
    let (output, wakes) = block_on(async { (&future).await.copied() });
    assert_eq!(output, Ok(7));
    assert_eq!(wakes, 1, "woken exactly once, by the completion");
    // Both handles still read the value, and the last one can still move it out.
    assert_eq!(block_on((&kept).into_future()).0, Ok(&7));
    drop(kept);
    assert_eq!(future.into_result(), Ok(7));
}

#[test]
fn borrowed_awaits_on_many_threads_at_once() {
    let (release, gate) = mpsc::channel::<()>();
    let pool = CpuPool::new(2).unwrap();
    let future = pool.submit(move || {
        gate.recv_timeout(LONG).unwrap();
        String::from("shared")
    });
    let lengths = thread::scope(|scope| {
        let awaiting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| block_on(async { (&future).await.map(String::len) }).0))
            .collect();
        thread::sleep(Duration::from_millis(50));
        release.send(()).unwrap();
        awaiting
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(lengths, vec![Ok(6); 4]);
    assert_eq!(future.into_result(), Ok(String::from("shared")));
}

#[test]
fn borrowed_await_gives_errors() {
    assert_eq!(
        block_on((&cancelled()).into_future()).0,
        Err(Error::Cancelled)
    );
    assert_eq!(block_on((&exception()).into_future()).0, Err(os_error()));
    let failing = completed_after(Duration::from_millis(20), Err(Error::Timeout));
    assert_eq!(block_on((&failing).into_future()).0, Err(Error::Timeout));
}

/// An await dropped before the future completes takes its waker off the future, owned or
/// borrowed: the waker is not kept (its `Arc` is ours alone again) and never called.
#[test]
fn dropping_an_await_mid_way_leaves_no_waker_registered() {
    let (mut promise, future) = Promise::<u32>::new();
    let signal = signal();
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    {
        let mut borrowed = pin!((&future).into_future());
        assert!(borrowed.as_mut().poll(&mut cx).is_pending());
        assert!(borrowed.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            Arc::strong_count(&signal),
            3,
            "ours, the waker's, and one kept by the future"
        );
    }
    assert_eq!(
        Arc::strong_count(&signal),
        2,
        "the dropped await kept a waker"
    );
    {
        let mut owned = pin!(future.clone().into_future());
        assert!(owned.as_mut().poll(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&signal), 3);
    }
    assert_eq!(
        Arc::strong_count(&signal),
        2,
        "the dropped await kept a waker"
    );
    promise.set_result(1).unwrap();
    assert_eq!(
        signal.wakes.load(Ordering::SeqCst),
        0,
        "a dropped await was woken"
    );
    assert_eq!(future.result(), Ok(&1));
}

/// An await that finds the future done answers at the first poll and registers nothing.
#[test]
fn borrowed_await_on_a_done_future_is_ready_at_once() {
    let future = successful();
    let signal = signal();
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut borrowed = pin!((&future).into_future());
    assert_eq!(borrowed.as_mut().poll(&mut cx), Poll::Ready(Ok(&42)));
    assert_eq!(Arc::strong_count(&signal), 2);
}
