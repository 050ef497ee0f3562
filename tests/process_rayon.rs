//! rayon inside a worker task, in the worst case: the program's global rayon pool already
//! runs when the fork server starts, so every worker inherits a global pool whose threads do
//! not exist (a `par_iter` on it never returns). Tasks must still finish, because each runs in
//! a rayon pool built in its worker. A separate binary, since it starts threads before `main`.
#![cfg(target_os = "linux")]

use std::time::Duration;

use concurrent_futures::{FnExecutor, ProcessPool};
use rayon::prelude::*;

/// Starts rayon's global pool, then the fork server, before the harness starts.
#[used]
#[unsafe(link_section = ".init_array")]
static START_RAYON_THEN_FORK_SERVER: extern "C" fn() = {
    extern "C" fn start() {
        let warm: u64 = (0..1000_u64).into_par_iter().sum();
        assert_eq!(warm, 499_500);
        concurrent_futures::process::init().expect("could not start the fork server");
    }
    start
};

fn parallel_sum(n: u64) -> u64 {
    (0..n).into_par_iter().map(|x| x * 2).sum()
}

#[test]
fn par_iter_in_a_task_finishes_even_with_an_inherited_global_pool() {
    // The time limit only bounds the test if the task hangs; it would then fail with
    // `TaskTimeout` instead of hanging the pool's drop.
    let pool = ProcessPool::builder()
        .max_workers(2)
        .task_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let futures: Vec<_> = (0..4)
        .map(|_| pool.submit_fn(parallel_sum, 100_000))
        .collect();
    for future in futures {
        assert_eq!(future.into_result(), Ok(9_999_900_000));
    }
}
