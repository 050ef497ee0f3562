//! CPython's `map` tests from `executor.py` (cases 3–16 of the reference list), ported case
//! by case, then the rules this crate adds. Pools are exercised in `tests/map_properties.rs`.
//!
//! Not ported: 8 (`buffersize` of a wrong type: a compile error here) and 15 (`map` with no
//! iterable: Rust has no such call; an empty input is case 14).
//!
//! Deliberate difference: CPython's `map` submits `buffersize` tasks at the call; ours pulls
//! nothing before the first `next()` (case 16 is adapted to that).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use concurrent_futures::{Error, Executor, FnExecutor, InlineExecutor, ParMapExt};

fn pow((base, exp): (u64, u32)) -> u64 {
    base.pow(exp)
}

// 3
#[test]
fn map_equals_the_sequential_map() {
    let executor = ThreadPerTask::default();
    let expected: Vec<u64> = (0..10).zip(0..10).map(pow).collect();
    for chunksize in [1, 3] {
        let got: Vec<u64> = executor
            .map(pow, (0..10).zip(0..10))
            .chunksize(chunksize)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, expected);
    }
    let got: Vec<u64> = executor
        .map_fn(pow, (0..10).zip(0..10))
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, expected);
}

fn divmod((a, b): (i32, i32)) -> (i32, i32) {
    (a / b, a % b)
}

// 4 (CPython main: the iterator goes on after a failing item; errors are per item in chunks)
#[test]
fn map_exception_stays_at_its_position() {
    let executor = ThreadPerTask::default();
    for chunksize in [1, 3] {
        let got: Vec<_> = executor
            .map(divmod, [1, 1, 1, 1].into_iter().zip([2, 3, 0, 5]))
            .chunksize(chunksize)
            .collect();
        assert_eq!(got[0], Ok((0, 1)));
        assert_eq!(got[1], Ok((0, 1)));
        assert!(
            matches!(&got[2], Err(Error::Panicked { message }) if message.contains("divide by zero")),
            "{got:?}"
        );
        assert_eq!(got[3], Ok((0, 1)));
        assert_eq!(got.len(), 4);
    }
}

// 5: what the callable returns, a time-out included, is an item, not the map's deadline.
#[test]
fn a_timeout_from_the_callable_is_an_ordinary_result() {
    let executor = ThreadPerTask::default();
    let got: Vec<_> = executor
        .map(
            |x: u32| if x == 1 { Err(Error::Timeout) } else { Ok(x) },
            0..3,
        )
        .timeout(LONG)
        .collect();
    assert_eq!(got, [Ok(Ok(0)), Ok(Err(Error::Timeout)), Ok(Ok(2))]);
}

// 6
#[test]
fn map_timeout_is_one_deadline_then_the_end() {
    let executor = ThreadPerTask::default();
    let mut results = Vec::new();
    let mut iter = executor
        .map(
            |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
            [0, 0, 5_000],
        )
        .chunksize(1)
        .timeout(Duration::from_millis(500));
    let timeout = loop {
        match iter.next() {
            Some(Ok(())) => results.push(()),
            Some(Err(error)) => break error,
            None => panic!("ended without a time-out"),
        }
    };
    assert_eq!(timeout, Error::Timeout);
    assert_eq!(results.len(), 2);
    assert!(iter.next().is_none());
    assert!(iter.next().is_none());
}

// 7: after one `next`, dropping the iterator cancels the tasks not started.
#[test]
fn dropping_after_one_item_runs_nothing_more() {
    let executor = InlineExecutor::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let mut iter = executor
        .map(
            move |x: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
                x
            },
            0..1000,
        )
        .chunksize(1)
        .buffersize(3);
    assert_eq!(iter.next(), Some(Ok(0)));
    drop(iter);
    // The inline executor runs a task at submit: exactly the window was run.
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

// 9
#[test]
#[should_panic(expected = "buffersize must be at least 1")]
fn buffersize_zero_is_refused() {
    let _ = InlineExecutor::new().map(|x: u8| x, [1]).buffersize(0);
}

#[test]
#[should_panic(expected = "chunksize must be at least 1")]
fn chunksize_zero_is_refused() {
    let _ = InlineExecutor::new().map(|x: u8| x, [1]).chunksize(0);
}

// Cases 10 to 14 check what CPython checks (the results), and also the window itself: with a
// no-op `buffersize` every result would still be right. CPython's thread pool submits one task
// per item, hence `chunksize(1)` here; then after the consumer has taken `yielded` items the map
// has pulled exactly `yielded - 1 + buffersize` of the input (the window was filled before the
// last item was handed out), or all of it if the input is shorter.

/// `input`, counting the items the map pulls from it.
fn counted<I: Iterator>(input: I) -> (impl Iterator<Item = I::Item>, Rc<Cell<usize>>) {
    let pulled = Rc::new(Cell::new(0));
    let counter = pulled.clone();
    (
        input.inspect(move |_| counter.set(counter.get() + 1)),
        pulled,
    )
}

/// Takes up to `n` values from `map` (a map of chunks of one item over an input of `len`
/// items, `None` if endless), asserting after each that the map pulled exactly a window ahead.
fn take_checking_window<T: std::fmt::Debug>(
    map: impl Iterator<Item = Result<T, Error>>,
    pulled: &Cell<usize>,
    buffersize: usize,
    len: Option<usize>,
    n: usize,
) -> Vec<T> {
    let mut values = Vec::new();
    assert_eq!(
        pulled.get(),
        0,
        "the map pulled input before the first next()"
    );
    for value in map.take(n) {
        values.push(value.unwrap());
        let window = values.len() - 1 + buffersize;
        assert_eq!(
            pulled.get(),
            len.map_or(window, |len| len.min(window)),
            "pulled after {} values with buffersize {buffersize}",
            values.len()
        );
    }
    values
}

// 10
#[test]
fn buffersize() {
    let executor = ThreadPerTask::default();
    for buffersize in [1, 2, 4, 8] {
        let (ints, pulled) = counted(0..4);
        let map = executor
            .map(|x: u32| x.to_string(), ints)
            .chunksize(1)
            .buffersize(buffersize);
        let got = take_checking_window(map, &pulled, buffersize, Some(4), usize::MAX);
        assert_eq!(got, ["0", "1", "2", "3"]);
    }
}

// 11
#[test]
fn buffersize_on_multiple_iterables() {
    let executor = ThreadPerTask::default();
    for buffersize in [1, 2, 4, 8] {
        let (pairs, pulled) = counted((0..4).zip(0..4));
        let map = executor
            .map(|(a, b): (u32, u32)| a + b, pairs)
            .chunksize(1)
            .buffersize(buffersize);
        let got = take_checking_window(map, &pulled, buffersize, Some(4), usize::MAX);
        assert_eq!(got, [0, 2, 4, 6]);
    }
}

// 12
#[test]
fn buffersize_on_infinite_iterable() {
    let executor = ThreadPerTask::default();
    let (ints, pulled) = counted(0..);
    let map = executor
        .map(|x: u64| x.to_string(), ints)
        .chunksize(1)
        .buffersize(2);
    let got = take_checking_window(map, &pulled, 2, None, 3);
    assert_eq!(got, ["0", "1", "2"]);
}

// 13
#[test]
fn buffersize_on_multiple_infinite_iterables() {
    let executor = ThreadPerTask::default();
    let (pairs, pulled) = counted((0..).zip(0..));
    let map = executor
        .map(|(a, b): (u64, u64)| a + b, pairs)
        .chunksize(1)
        .buffersize(2);
    let got = take_checking_window(map, &pulled, 2, None, 3);
    assert_eq!(got, [0, 2, 4]);
}

// 14, and an input that runs dry inside the window: an empty input has nothing for the window
// to hold back, so that part alone would pass with any `buffersize`.
#[test]
fn buffersize_on_empty_iterable() {
    let executor = ThreadPerTask::default();
    assert_eq!(
        executor
            .map(|x: u8| x, std::iter::empty())
            .buffersize(2)
            .next(),
        None
    );
    assert_eq!(
        executor.map_unordered(|x: u8| x, std::iter::empty()).next(),
        None
    );
    let (ints, pulled) = counted(0..3);
    let mut map = executor.map(|x: u8| x, ints).chunksize(1).buffersize(2);
    let got = take_checking_window(map.by_ref(), &pulled, 2, Some(3), usize::MAX);
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(map.next(), None);
}

// 16, adapted: nothing is pulled before the first `next()`, then exactly the window.
#[test]
fn buffersize_when_buffer_is_full() {
    let executor = ThreadPerTask::default();
    let mut ints = 0..4;
    {
        let iter = executor
            .map(|x: u32| x.to_string(), ints.by_ref())
            .buffersize(2)
            .chunksize(1);
        drop(iter);
    }
    assert_eq!(ints.next(), Some(0), "an unstarted map pulls nothing");
    let mut ints = 0..4;
    {
        let mut iter = executor
            .map(|x: u32| x.to_string(), ints.by_ref())
            .buffersize(2)
            .chunksize(1);
        assert_eq!(iter.next(), Some(Ok("0".into())));
    }
    assert_eq!(ints.next(), Some(2));
}

// --- What this crate adds -------------------------------------------------------------

#[test]
fn the_input_need_not_be_send() {
    let executor = ThreadPerTask::default();
    let pulled = Rc::new(Cell::new(0));
    let counter = pulled.clone();
    let input = (0..100_u32).inspect(move |_| counter.set(counter.get() + 1));
    let sum: u32 = input
        .par_map(&executor, |x| x * 2)
        .map(Result::unwrap)
        .sum();
    assert_eq!(sum, 9900);
    assert_eq!(pulled.get(), 100);
}

#[test]
fn unordered_yields_every_result_once() {
    let executor = ThreadPerTask::default();
    let mut got: Vec<u32> = (0..500_u32)
        .par_map_unordered(&executor, |x| {
            if x % 7 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            x
        })
        .chunksize(4)
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[test]
fn unordered_timeout_yields_once_then_ends() {
    let executor = ThreadPerTask::default();
    let mut iter = executor
        .map_unordered(
            |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
            [0, 5_000],
        )
        .chunksize(1)
        .timeout(Duration::from_millis(300));
    let mut items = vec![iter.next(), iter.next()];
    items.sort_by_key(|item| format!("{item:?}"));
    assert_eq!(items, [Some(Err(Error::Timeout)), Some(Ok(()))]);
    assert_eq!(iter.next(), None);
}

#[test]
fn after_shutdown_every_item_says_so() {
    let executor = ThreadPerTask::default();
    executor.shutdown(true, false);
    let got: Vec<_> = executor.map(|x: u8| x, [1, 2, 3]).chunksize(2).collect();
    assert_eq!(
        got,
        [
            Err(Error::Shutdown),
            Err(Error::Shutdown),
            Err(Error::Shutdown)
        ]
    );
}

#[test]
fn adaptive_chunking_keeps_order_and_errors_per_item() {
    let executor = ThreadPerTask::default();
    let got: Vec<_> = (0..20_000_u32)
        .par_map(&executor, |x| {
            if x % 1000 == 999 {
                panic!("item {x}")
            } else {
                x
            }
        })
        .collect();
    assert_eq!(got.len(), 20_000);
    for (i, item) in got.iter().enumerate() {
        match item {
            Ok(x) => assert_eq!(*x as usize, i),
            Err(Error::Panicked { message }) => assert_eq!(*message, format!("item {i}")),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got.iter().filter(|r| r.is_err()).count(), 20);
}

// 84 (gh-95166): on a busy one-worker pool, a map that times out cancels the future it was
// waiting on as well as the rest, so neither item ever starts.
#[test]
fn map_timeout_cancels_the_waited_future_and_the_rest() {
    use concurrent_futures::IoPool;
    let pool = IoPool::new(1).unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let busy = pool.submit(move || released.recv_timeout(LONG).is_ok());
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let mut iter = pool
        .map(move |_: u8| counter.fetch_add(1, Ordering::SeqCst), [1, 2])
        .chunksize(1)
        .timeout(Duration::ZERO);
    assert_eq!(iter.next(), Some(Err(Error::Timeout)));
    assert_eq!(iter.next(), None);
    release.send(()).unwrap();
    assert_eq!(busy.result_timeout(LONG), Ok(&true));
    pool.shutdown(true, false);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn nested_par_map_on_a_one_thread_cpu_pool_finishes() {
    use concurrent_futures::CpuPool;
    let pool = Arc::new(CpuPool::new(1).unwrap());
    let inner = pool.clone();
    let sums: Vec<u64> = (0..4_u64)
        .par_map(&*pool, move |row| {
            (0..100_u64)
                .par_map(&*inner, move |x| row * x)
                .map(Result::unwrap)
                .sum()
        })
        .map(Result::unwrap)
        .collect();
    assert_eq!(sums, [0, 4950, 9900, 14850]);
}

#[test]
fn shutting_the_pool_down_mid_map_fails_the_rest_and_loses_nothing() {
    use concurrent_futures::CpuPool;
    let pool = CpuPool::new(2).unwrap();
    let mut iter = pool.map(|x: u32| x, 0..1000).chunksize(10).buffersize(2);
    let mut results: Vec<_> = iter.by_ref().take(5).collect();
    pool.shutdown(true, false);
    results.extend(iter);
    assert_eq!(results.len(), 1000);
    let ok = results.iter().take_while(|r| r.is_ok()).count();
    assert!(ok >= 5);
    assert!(
        results[..ok]
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Ok(i as u32))
    );
    assert!(results[ok..].iter().all(|r| *r == Err(Error::Shutdown)));
}
