//! `max_tasks_per_child` (issue 11, item 1): a retiring worker counts against `max_workers`
//! until its exit has been reported, so a batch never runs more worker processes than the pool
//! has slots, and a long batch of one-task workers finishes instead of flooding the fork
//! server's channel until both ends block.
//!
//! One test in this binary on purpose: it counts the fork server's children, which would
//! include the workers of any pool another test ran at the same time.
#![cfg(target_os = "linux")]

mod process_common;

use std::time::{Duration, Instant};

use concurrent_futures::{Error, FnExecutor, ProcessPool};
use process_common::BOUND;

/// The worker's parent: the fork server.
fn server_pid(_: ()) -> u32 {
    std::os::unix::process::parent_id()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn double(x: u64) -> u64 {
    x * 2
}

/// The processes whose parent is `parent`, zombies included (a worker that has exited but
/// was not reaped yet is still a process the pool made).
fn children_of(parent: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let pid: u32 = name.to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The fields after the command name, which is in parentheses and may hold spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
            (ppid == parent).then_some(())
        })
        .count()
}

/// Waits for every future with one overall bound; on a hang, leaks the pool (whose drop would
/// hang too) and fails.
fn all_within<T: std::fmt::Debug>(
    pool: ProcessPool,
    futures: &[concurrent_futures::Future<T>],
) -> Vec<Result<&T, Error>> {
    let deadline = Instant::now() + BOUND * 2;
    let outcomes: Vec<_> = futures
        .iter()
        .map(|f| f.result_timeout(deadline.saturating_duration_since(Instant::now())))
        .collect();
    if outcomes.iter().any(|o| matches!(o, Err(Error::Timeout))) {
        std::mem::forget(pool);
        panic!("the batch did not finish within {:?}", BOUND * 2);
    }
    drop(pool);
    outcomes
}

#[test]
fn one_task_per_child_never_runs_more_workers_than_max_workers_and_long_batches_finish() {
    let pool = ProcessPool::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let server = *pool
        .submit_fn(server_pid, ())
        .result_timeout(BOUND)
        .unwrap();

    // 16 tasks of 300 ms on two slots: ~2.4 s done right; all at once with one process per
    // task when a retiring worker is replaced at once.
    let futures: Vec<_> = (0..16).map(|_| pool.submit_fn(nap, 300)).collect();
    let mut most = 0;
    while !futures.iter().all(|f| f.done()) {
        most = most.max(children_of(server));
        std::thread::sleep(Duration::from_millis(10));
    }
    let outcomes = all_within(pool, &futures);
    assert!(outcomes.iter().all(|o| o == &Ok(&300)), "{outcomes:?}");
    assert!(
        most <= 2,
        "{most} worker processes were alive at once with max_workers(2)"
    );

    // 600 one-task workers: every spawn request and exit report must get through.
    let pool = ProcessPool::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..600).map(|x| pool.submit_fn(double, x)).collect();
    let outcomes = all_within(pool, &futures);
    for (x, outcome) in outcomes.into_iter().enumerate() {
        assert_eq!(outcome, Ok(&(x as u64 * 2)));
    }
}
