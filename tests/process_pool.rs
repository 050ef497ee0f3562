//! The process pool's normal behaviour: results, worker reuse and replacement, the initializer,
//! `fork`, shutdown and cleanup. Faults are in `process_faults.rs`, rayon in `process_rayon.rs`.
#![cfg(target_os = "linux")]

mod process_common;

use std::collections::BTreeSet;
use std::time::Duration;

use concurrent_futures::{Error, FnExecutor, ProcessPool, State};
use process_common::{BOUND, gone};

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Submits `n` tasks that report their worker's pid, all at once, and collects the pids in
/// submission order.
fn pids_of(pool: &ProcessPool, n: usize) -> Vec<u32> {
    let futures: Vec<_> = (0..n).map(|_| pool.submit_fn(pid, ())).collect();
    futures
        .iter()
        .map(|future| *future.result_timeout(BOUND).unwrap())
        .collect()
}

fn concat(parts: (String, Vec<u8>)) -> String {
    format!("{}{}", parts.0, String::from_utf8_lossy(&parts.1))
}

#[test]
fn results_come_back() {
    let pool = ProcessPool::new(2).unwrap();
    let futures: Vec<_> = (0..100).map(|x| pool.submit_fn(square, x)).collect();
    for (x, future) in futures.iter().enumerate() {
        assert_eq!(future.result_timeout(BOUND), Ok(&(x as u64 * x as u64)));
    }
    let text = pool.submit_fn(concat, ("ab".to_string(), b"cd".to_vec()));
    assert_eq!(text.result_timeout(BOUND).map(String::as_str), Ok("abcd"));
}

#[test]
fn runs_in_other_processes_and_reuses_them() {
    let pool = ProcessPool::new(2).unwrap();
    let pids: BTreeSet<u32> = pids_of(&pool, 20).into_iter().collect();
    assert!(!pids.contains(&std::process::id()));
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
}

#[test]
fn works_through_fn_executor() {
    fn total<E: FnExecutor>(executor: &E) -> u64 {
        (1..=4)
            .map(|x| executor.submit_fn(square, x).into_result().unwrap())
            .sum()
    }
    assert_eq!(total(&ProcessPool::new(1).unwrap()), 30);
}

#[test]
fn large_arguments_and_results_travel() {
    fn reverse(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.reverse();
        bytes
    }
    let pool = ProcessPool::new(2).unwrap();
    let data: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let mut expected = data.clone();
    expected.reverse();
    let future = pool.submit_fn(reverse, data);
    assert_eq!(future.result_timeout(BOUND), Ok(&expected));
}

#[test]
fn the_same_pid_runs_max_tasks_per_child_tasks_then_a_new_one_takes_over() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let pids = pids_of(&pool, 7);
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[1], pids[2]);
    assert_ne!(pids[2], pids[3]);
    assert_eq!(pids[3], pids[5]);
    assert_ne!(pids[5], pids[6]);
    drop(pool);
    assert!(pids.iter().all(|&pid| gone(pid)), "{pids:?}");
}

static INITIALIZED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn the_initializer_runs_in_each_worker_before_its_tasks() {
    fn init() {
        INITIALIZED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn initialized(_: ()) -> bool {
        INITIALIZED.load(std::sync::atomic::Ordering::SeqCst)
    }
    let pool = ProcessPool::builder()
        .max_workers(2)
        .initializer(init)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..6).map(|_| pool.submit_fn(initialized, ())).collect();
    for future in futures {
        assert_eq!(future.result_timeout(BOUND), Ok(&true));
    }
    // It ran in the workers, not here.
    assert!(!INITIALIZED.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn fork_runs_a_capturing_closure_in_a_fresh_child() {
    let pool = ProcessPool::new(1).unwrap();
    let words = vec!["a".to_string(), "b".to_string()];
    let borrowed = &words;
    let future = pool.fork(|| (borrowed.join("+"), std::process::id()));
    let (joined, child) = future.result_timeout(BOUND).unwrap().clone();
    assert_eq!(joined, "a+b");
    assert_ne!(child, std::process::id());
    let other = pool.fork(std::process::id);
    assert_ne!(*other.result_timeout(BOUND).unwrap(), child);
    drop(pool);
    assert!(gone(child));
}

#[test]
fn shutdown_refuses_new_work_and_drop_leaves_no_process_behind() {
    let pool = ProcessPool::new(2).unwrap();
    let pids = pids_of(&pool, 10);
    pool.shutdown(true, false);
    assert_eq!(
        pool.submit_fn(square, 2).into_result(),
        Err(Error::Shutdown)
    );
    assert_eq!(pool.fork(|| 1).into_result(), Err(Error::Shutdown));
    drop(pool);
    assert!(pids.iter().all(|&pid| gone(pid)), "{pids:?}");
}

#[test]
fn shutdown_with_cancel_futures_cancels_what_was_not_sent() {
    fn nap(ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
    let pool = ProcessPool::builder()
        .max_workers(1)
        .pipeline_depth(1)
        .build()
        .unwrap();
    let first = pool.submit_fn(nap, 300);
    let later: Vec<_> = (0..5).map(|_| pool.submit_fn(nap, 1)).collect();
    // Wait until the first task is running, so that the rest is surely still queued.
    while first.state() == State::Pending {
        std::thread::sleep(Duration::from_millis(1));
    }
    pool.shutdown(true, true);
    assert_eq!(first.result_timeout(BOUND), Ok(&300));
    // At most one more was sent (pipeline depth 1 and the first was running): the rest are
    // cancelled.
    let cancelled = later.iter().filter(|f| f.cancelled()).count();
    assert!(cancelled >= 4, "{cancelled}");
}

fn checked_div(x: u32) -> u32 {
    100 / (x % 7)
}

#[test]
fn map_fn_keeps_input_order_and_fails_only_the_panicking_items() {
    let pool = ProcessPool::new(2).unwrap();
    for chunksize in [1, 5, 64] {
        let got: Vec<_> = pool
            .map_fn(checked_div, 0..200_u32)
            .chunksize(chunksize)
            .timeout(BOUND)
            .collect();
        assert_eq!(got.len(), 200);
        for (x, result) in (0..200_u32).zip(&got) {
            match 100_u32.checked_div(x % 7) {
                Some(quotient) => assert_eq!(*result, Ok(quotient), "{x}"),
                None => assert!(
                    matches!(result, Err(Error::Panicked { message }) if message.contains("divide by zero")),
                    "{x}: {result:?}"
                ),
            }
        }
    }
    let mut unordered: Vec<u32> = pool
        .map_fn_unordered(checked_div, (1..200_u32).filter(|x| x % 7 != 0))
        .timeout(BOUND)
        .map(Result::unwrap)
        .collect();
    unordered.sort();
    let mut expected: Vec<u32> = (1..200_u32)
        .filter_map(|x| 100_u32.checked_div(x % 7))
        .collect();
    expected.sort();
    assert_eq!(unordered, expected);
}

#[test]
fn map_fn_runs_in_worker_processes() {
    let pool = ProcessPool::new(2).unwrap();
    let pids: std::collections::HashSet<u32> = pool
        .map_fn(|_: u8| std::process::id(), 0..64)
        .chunksize(4)
        .timeout(BOUND)
        .map(Result::unwrap)
        .collect();
    assert!(!pids.contains(&std::process::id()));
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
}
