//! SIGPIPE (issue 11, item 6): no write of this crate may raise SIGPIPE in a host that runs
//! with SIGPIPE at its default action (a CLI that restores `SIG_DFL`, a C program embedding
//! the library), which would kill it with status 141. Each test re-runs this binary as a child
//! with a marker in its environment; the child sets `SIG_DFL` and does the calls, and the
//! parent checks that it exited with 0.
#![cfg(target_os = "linux")]

mod process_common;

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, FnExecutor, ProcessPool};
use process_common::{BOUND, worker_pipe};

/// Set in the child's environment to the name of the test it runs.
const MARKER: &str = "CONCURRENT_FUTURES_SIGPIPE_CHILD";

fn double(x: u64) -> u64 {
    x * 2
}

/// Closes the worker's end of its request pipe, so
/// that the parent's next write there fails with EPIPE while this worker still runs; then
/// answers. The worker ends when it next reads.
fn closes_its_request_pipe(ms: u64) -> u64 {
    // SAFETY: closing an fd this function does not otherwise use; the worker's loop then
    // fails to read it and exits, which is what the test wants.
    unsafe { libc::close(worker_pipe(libc::O_RDONLY)) };
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// True in the child; then SIGPIPE is at its default action.
fn in_child(test: &str) -> bool {
    if std::env::var(MARKER).as_deref() != Ok(test) {
        return false;
    }
    // SAFETY: SIG_DFL is not a function pointer; this only changes the disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    true
}

/// Runs `test` alone in a child copy of this binary, within the bound, and returns how it
/// ended.
fn run_child(test: &str) -> ExitStatus {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(MARKER, test)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BOUND * 2;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {:?}", BOUND * 2);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn calls_after_a_completed_shutdown_do_not_raise_sigpipe() {
    let test = "calls_after_a_completed_shutdown_do_not_raise_sigpipe";
    if in_child(test) {
        let pool = ProcessPool::new(1).unwrap();
        assert_eq!(pool.submit_fn(double, 21).result_timeout(BOUND), Ok(&42));
        pool.shutdown(true, false);
        pool.shutdown(false, false);
        pool.shutdown(true, true);
        pool.terminate_workers();
        pool.kill_workers();
        assert_eq!(
            pool.submit_fn(double, 1).result_timeout(BOUND),
            Err(Error::Shutdown)
        );
        drop(pool);
        return;
    }
    let status = run_child(test);
    assert!(status.success(), "the child ended with {status}");
}

#[test]
fn a_worker_dying_while_its_request_is_written_does_not_raise_sigpipe() {
    let test = "a_worker_dying_while_its_request_is_written_does_not_raise_sigpipe";
    if in_child(test) {
        let pool = ProcessPool::new(1).unwrap();
        // The worker's request pipe loses its reader while the manager still writes the next
        // task's 1 MB argument into it (the pipeline sends it ahead): EPIPE for the manager.
        let arg = vec![1_u8; 1 << 20];
        let closes = pool.submit_fn(closes_its_request_pipe, 2000);
        // Serializing 1 MB takes a moment in a debug build: the sleep above covers it.
        let big = pool.submit_fn(length, arg);
        assert_eq!(closes.result_timeout(BOUND), Ok(&2000));
        // The worker exits when it finds its pipe gone, with `big` as its head: that task
        // fails with the worker, or (had it not become the head) runs on the next worker.
        match big.result_timeout(BOUND) {
            Ok(&len) => assert_eq!(len, 1 << 20),
            Err(Error::WorkerDied { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.submit_fn(double, 4).result_timeout(BOUND), Ok(&8));
        drop(pool);
        return;
    }
    let status = run_child(test);
    assert!(status.success(), "the child ended with {status}");
}
