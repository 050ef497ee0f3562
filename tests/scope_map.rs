//! Scoped maps (`Scope::map`, `Scope::map_unordered`, `par_map` on a scope): closures, items
//! and results that borrow, a leaked map whose tasks are still joined, per-item errors and the
//! deadline. The map rules themselves run over scoped maps in `map_properties.rs`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::{CpuPool, Error, Executor, IoPool, ParMapExt};

#[test]
fn a_map_leaked_midway_still_has_its_tasks_joined() {
    let pool = IoPool::new(4).unwrap();
    let started = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    pool.scope(|s| {
        let mut map = (0..1000)
            .par_map(s, |x: u32| {
                started.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
                x
            })
            .chunksize(1)
            .buffersize(8);
        assert_eq!(map.next(), Some(Ok(0)));
        assert_eq!(map.next(), Some(Ok(1)));
        std::mem::forget(map);
    });
    let (started, finished) = (
        started.load(Ordering::SeqCst),
        finished.load(Ordering::SeqCst),
    );
    assert!(started >= 2);
    assert_eq!(
        started, finished,
        "a task of the leaked map outlived the scope"
    );
}

#[test]
fn par_map_over_a_slice_iter_with_a_borrowed_table() {
    let pool = CpuPool::new(2).unwrap();
    let table: HashMap<&str, u32> = [("one", 1), ("two", 2), ("three", 3)].into();
    let words: Vec<&str> = "one two four three one".split(' ').collect();
    let found: Vec<Option<&u32>> = pool.scope(|s| {
        words
            .iter()
            .par_map(s, |w| table.get(w))
            .collect::<Result<_, _>>()
            .unwrap()
    });
    // The results borrow the table, which outlives the scope.
    assert_eq!(found, [Some(&1), Some(&2), None, Some(&3), Some(&1)]);
}

#[test]
fn par_map_unordered_over_str_lines_yields_borrowed_lines() {
    let pool = IoPool::new(3).unwrap();
    let text = "alpha\nbeta\ngamma\ndelta\n".repeat(50);
    let mut lines: Vec<&str> = pool.scope(|s| {
        text.lines()
            .par_map_unordered(s, |line| line.trim())
            .collect::<Result<_, _>>()
            .unwrap()
    });
    assert!(lines.iter().all(|line| text.contains(line)));
    lines.sort();
    let mut expected: Vec<&str> = text.lines().collect();
    expected.sort();
    assert_eq!(lines, expected);
}

#[test]
fn scoped_maps_keep_per_item_errors_and_the_deadline() {
    let pool = CpuPool::builder()
        .num_threads(2)
        .print_panics(false)
        .build()
        .unwrap();
    let divisors = [1_u32, 0, 4];
    let quotients: Vec<Result<u32, Error>> =
        pool.scope(|s| s.map(|d: &u32| 100 / d, &divisors).collect());
    assert_eq!(quotients[0], Ok(100));
    assert!(matches!(quotients[1], Err(Error::Panicked { .. })));
    assert_eq!(quotients[2], Ok(25));

    let delay = Duration::from_millis(300);
    let results: Vec<Result<(), Error>> = pool.scope(|s| {
        s.map_unordered(|_: u32| std::thread::sleep(delay), 0..100)
            .chunksize(1)
            .timeout(Duration::from_millis(100))
            .collect()
    });
    assert_eq!(results.last(), Some(&Err(Error::Timeout)));
    assert!(results.len() < 100);
}

#[cfg(feature = "progress")]
#[test]
fn a_scoped_map_takes_a_progress_bar() {
    let pool = concurrent_futures::InlineExecutor::new();
    let data = [1, 2, 3];
    let doubled: Vec<i32> = pool
        .scope(|s| {
            data.iter()
                .par_map(s, |x| x * 2)
                .progress()
                .collect::<Result<_, _>>()
        })
        .unwrap();
    assert_eq!(doubled, [2, 4, 6]);
}
