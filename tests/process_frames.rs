//! Frames that cannot be trusted (issue 11, item 8): a worker that sends garbage on its result
//! pipe is a dead worker (its task fails, a new worker takes over), a frame's size is bounded
//! by `max_frame_bytes` in both directions, and nothing hangs.
#![cfg(target_os = "linux")]

mod process_common;

use std::io::Write;
use std::os::fd::FromRawFd;

use concurrent_futures::{Error, FnExecutor, ProcessPool};
use process_common::{BOUND, worker_pipe};

fn double(x: u64) -> u64 {
    x * 2
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn bytes(len: usize) -> Vec<u8> {
    vec![3; len]
}

/// Writes a length prefix of 0x7fffffff on the worker's own result pipe, then returns: the
/// parent reads a frame that claims 2 GiB and never comes.
fn corrupts_its_result_pipe(_: ()) -> u8 {
    // SAFETY: the fd is the worker's result pipe, open for the worker's whole life; the
    // `File` is forgotten below so that it is not closed.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(worker_pipe(libc::O_WRONLY)) };
    pipe.write_all(&0x7fff_ffff_u32.to_le_bytes()).unwrap();
    std::mem::forget(pipe);
    1
}

#[test]
fn a_corrupt_length_prefix_fails_its_task_and_the_worker_is_replaced() {
    let pool = ProcessPool::new(1).unwrap();
    let corrupt = pool.submit_fn(corrupts_its_result_pipe, ());
    let after = pool.submit_fn(double, 21);
    let outcome = corrupt.result_timeout(BOUND);
    let next = after.result_timeout(BOUND);
    if matches!(outcome, Err(Error::Timeout)) {
        // The worker's pipe is stuck: kill it so that the pool's drop does not hang too.
        pool.kill_workers();
    }
    match outcome {
        Err(Error::WorkerDied { status, .. }) => {
            assert!(status.contains("max_frame_bytes"), "{status}")
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(next, Ok(&42));
}

#[test]
fn max_frame_bytes_bounds_arguments_and_results() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .max_frame_bytes(1 << 20)
        .build()
        .unwrap();
    match pool
        .submit_fn(length, vec![0; 2 << 20])
        .result_timeout(BOUND)
    {
        Err(Error::Serialization { message }) => {
            assert!(message.contains("max_frame_bytes"), "{message}")
        }
        other => panic!("expected Serialization, got {other:?}"),
    }
    match pool.submit_fn(bytes, 2 << 20).result_timeout(BOUND) {
        Err(Error::Serialization { message }) => {
            assert!(message.contains("max_frame_bytes"), "{message}")
        }
        other => panic!("expected Serialization, got {other:?}"),
    }
    // Just under the limit, both ways, on the same pool.
    assert_eq!(
        pool.submit_fn(length, vec![0; 1000 << 10])
            .result_timeout(BOUND),
        Ok(&(1000 << 10))
    );
    assert_eq!(
        pool.submit_fn(bytes, 1000 << 10)
            .result_timeout(BOUND)
            .map(Vec::len),
        Ok(1000 << 10)
    );
    match pool.fork(|| vec![1_u8; 2 << 20]).result_timeout(BOUND) {
        Err(Error::Serialization { message }) => {
            assert!(message.contains("max_frame_bytes"), "{message}")
        }
        other => panic!("expected Serialization, got {other:?}"),
    }
}
