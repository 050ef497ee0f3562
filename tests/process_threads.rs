//! The rayon pool of each worker (issue 11, item 9): by default about cores / workers threads
//! (at least one), so that a pool of N workers on N cores runs N threads, not N²;
//! `worker_threads` sets it.
#![cfg(target_os = "linux")]

mod process_common;

use concurrent_futures::{FnExecutor, ProcessPool};
use process_common::BOUND;

fn threads(_: ()) -> usize {
    rayon::current_num_threads()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn threads_in_a_worker(pool: &ProcessPool) -> usize {
    *pool.submit_fn(threads, ()).result_timeout(BOUND).unwrap()
}

#[test]
fn a_pool_with_a_worker_per_core_gives_each_worker_one_rayon_thread() {
    let pool = ProcessPool::new(cores()).unwrap();
    assert_eq!(threads_in_a_worker(&pool), 1);
}

#[test]
fn a_worker_gets_its_share_of_the_cores() {
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(threads_in_a_worker(&pool), cores());
    let workers = 2;
    let pool = ProcessPool::new(workers).unwrap();
    assert_eq!(threads_in_a_worker(&pool), (cores() / workers).max(1));
}

#[test]
fn worker_threads_sets_the_rayon_pool_of_each_worker() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .worker_threads(3)
        .build()
        .unwrap();
    assert_eq!(threads_in_a_worker(&pool), 3);
}
