//! `.progress()` on maps and `as_completed` (feature `progress`), without a terminal: the bar
//! counts every item it hands on, knows its total when the input does, leaves the final time-out
//! out of the count, and draws nothing when standard error is not a terminal.

#![cfg(feature = "progress")]

mod common;

use std::io::IsTerminal;
use std::time::Duration;

use common::{LONG, completed_after, pending, successful};
use concurrent_futures::{CpuPool, Error, Executor, IoPool, ParMapExt, as_completed};

#[test]
fn ordered_map_counts_up_to_its_exact_total() {
    let pool = CpuPool::new(2);
    let mut squares = (0..1000_u64)
        .par_map(&pool, |x| x * x)
        .timeout(LONG)
        .progress();
    assert_eq!(squares.total(), Some(1000));
    assert_eq!(squares.position(), 0);
    let results: Vec<u64> = squares.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!(squares.position(), 1000);
    // Ending the iteration does not move the count to the total: it stays the true count.
    assert_eq!(squares.next(), None);
    assert_eq!(squares.position(), 1000);
}

#[test]
fn unordered_map_counts_failed_items_too() {
    let pool = IoPool::new(4);
    let mut results = pool
        .map_unordered(
            |x: u32| {
                assert!(x != 7, "seven");
                x
            },
            vec![1, 7, 3, 4, 5],
        )
        .timeout(LONG)
        .progress();
    assert_eq!(results.total(), Some(5));
    let failures = results.by_ref().filter(Result::is_err).count();
    assert_eq!(failures, 1);
    assert_eq!(results.position(), 5);
}

#[test]
fn an_input_of_unknown_length_counts_without_a_total() {
    let pool = CpuPool::new(2);
    let evens = (0..100_u32).filter(|x| x % 2 == 0);
    let mut halves = evens.par_map(&pool, |x| x / 2).timeout(LONG).progress();
    assert_eq!(halves.total(), None);
    assert_eq!(halves.by_ref().count(), 50);
    assert_eq!(halves.position(), 50);
}

#[test]
fn a_map_started_before_progress_counts_what_is_left() {
    let pool = CpuPool::new(2);
    let mut map = (0..10_u32).par_map(&pool, |x| x).chunksize(3).timeout(LONG);
    // The first `next()` submits every chunk and hands out one item of the first.
    assert_eq!(map.next(), Some(Ok(0)));
    let mut rest = map.progress();
    assert_eq!(rest.total(), Some(9));
    assert_eq!(rest.by_ref().count(), 9);
    assert_eq!(rest.position(), 9);
}

#[test]
fn as_completed_counts_futures_and_not_the_timeout() {
    let (_never, stuck) = pending();
    let futures = vec![
        successful(),
        completed_after(Duration::from_millis(10), Ok(1)),
        stuck,
    ];
    let mut completed = as_completed(futures, Some(Duration::from_millis(200))).progress();
    assert_eq!(completed.total(), Some(3));
    let items: Vec<_> = completed.by_ref().collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].as_ref().err(), Some(&Error::Timeout));
    assert_eq!(completed.position(), 2);
}

#[test]
fn as_completed_reaches_its_total_when_all_finish() {
    let pool = IoPool::new(4);
    let futures: Vec<_> = (0..20_u32).map(|i| pool.submit(move || i)).collect();
    let mut completed = as_completed(futures, Some(LONG)).progress();
    let mut sum = 0;
    for future in completed.by_ref() {
        sum += future.unwrap().into_result().unwrap();
    }
    assert_eq!(sum, (0..20).sum());
    assert_eq!(completed.position(), completed.total().unwrap());
}

#[test]
fn the_bar_draws_only_on_a_terminal() {
    let pool = CpuPool::new(1);
    let map = [1, 2, 3].par_map(&pool, |x: i32| x + 1).progress();
    assert_eq!(map.bar().is_hidden(), !std::io::stderr().is_terminal());
}
