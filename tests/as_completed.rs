//! CPython's `test_as_completed.py` (`AsCompletedTests`, cases 53–57 of the reference list),
//! ported case by case, then what this crate adds.
//!
//! Case 56 (`test_free_reference_yielded_future`) checks with a weakref that the generator
//! keeps no reference to what it yielded; here the same holds when `into_result` succeeds
//! on a yielded future, which it cannot while another handle is alive.

mod common;

use std::time::Duration;

use common::*;
use concurrent_futures::{AsCompleted, Error, Future, Promise, as_completed};

fn drain<T>(iter: AsCompleted<T>) -> (Vec<Future<T>>, Vec<Error>) {
    let mut futures = Vec::new();
    let mut errors = Vec::new();
    for item in iter {
        match item {
            Ok(future) => futures.push(future),
            Err(error) => errors.push(error),
        }
    }
    (futures, errors)
}

// 53
#[test]
fn no_timeout() {
    let one = completed_after(Duration::from_millis(10), Ok(1));
    let two = completed_after(Duration::from_millis(20), Ok(2));
    let all = [
        cancelled(),
        exception(),
        successful(),
        one.clone(),
        two.clone(),
    ];
    let (yielded, errors) = drain(as_completed(all.clone(), None));
    assert!(errors.is_empty());
    assert_eq!(yielded.len(), 5);
    assert!(all.iter().all(|f| yielded.contains(f)));
}

// 54
#[test]
fn future_times_out() {
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        let (_promise, running) = running();
        let done = [cancelled(), exception(), successful()];
        let mut all = done.to_vec();
        all.push(running.clone());
        let (yielded, errors) = drain(as_completed(all, Some(timeout)));
        assert_eq!(errors, [Error::Timeout]);
        assert_eq!(yielded.len(), 3);
        assert!(done.iter().all(|f| yielded.contains(f)));
        assert!(!yielded.contains(&running));
    }
}

// 55
#[test]
fn duplicate_futures() {
    let future = completed_after(Duration::from_millis(10), Ok(1));
    let (yielded, errors) = drain(as_completed(std::iter::repeat_n(future.clone(), 3), None));
    assert!(errors.is_empty());
    assert_eq!(yielded, [future]);
}

// 56
#[test]
fn free_reference_yielded_future() {
    // The blocking path: futures yielded as they complete.
    let futures: Vec<Future<String>> = (0..3)
        .map(|i| {
            let (promise, future) = Promise::new();
            std::thread::spawn(move || promise.run(move || format!("value {i}")));
            future
        })
        .collect();
    let mut iter = as_completed(futures, Some(LONG));
    let mut values = Vec::new();
    for item in iter.by_ref() {
        values.push(item.unwrap().into_result().unwrap());
    }
    values.sort();
    assert_eq!(values, ["value 0", "value 1", "value 2"]);

    // The timeout-0 path: already done futures, then the time-out.
    let (mut promise, done) = Promise::new();
    promise.set_result(String::from("done")).unwrap();
    let (_pending_promise, pending) = Promise::<String>::new();
    let mut iter = as_completed([done, pending], Some(Duration::ZERO));
    assert_eq!(
        iter.next().unwrap().unwrap().into_result(),
        Ok("done".to_string())
    );
    assert_eq!(iter.next().unwrap().err(), Some(Error::Timeout));
}

// 57: CPython says "2 (of 4) futures unfinished"; the iterator says the same in numbers.
#[test]
fn timeout_reports_unfinished_counts() {
    let (_p, pending) = pending();
    let (_r, running) = running();
    let mut iter = as_completed(
        [cancelled(), pending, running, successful()],
        Some(Duration::ZERO),
    );
    assert!(iter.next().unwrap().is_ok());
    assert!(iter.next().unwrap().is_ok());
    assert_eq!(iter.next().unwrap().err(), Some(Error::Timeout));
    assert_eq!((iter.unfinished(), iter.total()), (2, 4));
    assert!(iter.next().is_none());
    assert!(iter.next().is_none());
}

// --- What this crate adds -------------------------------------------------------------

#[test]
fn done_ones_first_then_completion_order() {
    let (mut first, first_future) = Promise::new();
    let (mut second, second_future) = Promise::new();
    let already = successful();
    let mut iter = as_completed(
        [second_future.clone(), first_future.clone(), already.clone()],
        Some(LONG),
    );
    assert_eq!(iter.next().unwrap().unwrap(), already);
    first.set_result(1).unwrap();
    second.set_result(2).unwrap();
    assert_eq!(iter.next().unwrap().unwrap(), first_future);
    assert_eq!(iter.next().unwrap().unwrap(), second_future);
    assert!(iter.next().is_none());
}

#[test]
fn a_cancelled_future_is_yielded() {
    let (_p, future) = pending();
    let canceller = future.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        canceller.cancel();
    });
    let (yielded, errors) = drain(as_completed([future], Some(LONG)));
    assert!(errors.is_empty());
    assert!(yielded[0].cancelled());
}

#[test]
fn timeout_runs_from_the_call() {
    let (_p, pending) = pending();
    let mut iter = as_completed([pending], Some(Duration::from_millis(20)));
    std::thread::sleep(Duration::from_millis(40));
    // CPython would wait another 20 ms from here; the deadline has passed already.
    let start = std::time::Instant::now();
    assert_eq!(iter.next().unwrap().err(), Some(Error::Timeout));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn ten_thousand_as_they_complete() {
    let (promises, futures): (Vec<_>, Vec<Future<u64>>) =
        (0..10_000).map(|_| Promise::new()).unzip();
    let iter = as_completed(futures, Some(LONG));
    std::thread::spawn(move || {
        for (i, promise) in promises.into_iter().enumerate() {
            promise.run(move || i as u64);
        }
    });
    let mut sum = 0;
    let mut count = 0;
    for future in iter {
        sum += future.unwrap().into_result().unwrap();
        count += 1;
    }
    assert_eq!(count, 10_000);
    assert_eq!(sum, (0..10_000).sum::<u64>());
}
