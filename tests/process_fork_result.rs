//! `ProcessPool::fork` with a result larger than a pipe's buffer (issue 11, item 2): the
//! manager must read the child's result while the child runs, or the child blocks writing it
//! and never exits, and neither the future nor the pool's drop ever ends.
#![cfg(target_os = "linux")]

mod process_common;

use concurrent_futures::ProcessPool;
use process_common::BOUND;

const RESULT_BYTES: usize = 64 << 20;

#[test]
fn a_fork_child_with_a_64_mb_result_completes() {
    let pool = ProcessPool::new(1).unwrap();
    let future = pool.fork(|| vec![7_u8; RESULT_BYTES]);
    let outcome = future
        .result_timeout(BOUND)
        .map(|bytes| (bytes.len(), bytes.iter().all(|&b| b == 7)));
    if outcome.is_err() {
        // Ends the child, so that the pool's drop does not hang as well.
        pool.kill_workers();
    }
    assert_eq!(outcome, Ok((RESULT_BYTES, true)));
    // Several at once, each larger than the pipe buffer, while a worker task runs too.
    let futures: Vec<_> = (0..3_u8)
        .map(|i| pool.fork(move || vec![i; 1 << 20]))
        .collect();
    for (i, future) in futures.iter().enumerate() {
        let bytes = future.result_timeout(BOUND).unwrap();
        assert!(bytes.len() == 1 << 20 && bytes.iter().all(|&b| usize::from(b) == i));
    }
}
