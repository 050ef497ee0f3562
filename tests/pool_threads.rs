//! Thread counts as the operating system sees them (`/proc/self/task`): pools start the threads
//! they should and leave none behind (CPython's 65 `test_threads_terminate`, 67
//! `test_del_shutdown`, 68 `test_shutdown_no_wait`), and idle IoPool threads retire.
//!
//! One test function runs every case in turn: the test harness's own threads would otherwise
//! come and go between a case's two counts.
#![cfg(target_os = "linux")]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use concurrent_futures::{CpuPool, Executor, IoPool};

const LONG: Duration = Duration::from_secs(30);

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Waits (boundedly) until the process has `expected` threads. Even a joined thread can stay
/// listed for a moment: the kernel wakes the joiner before it removes the thread's entry.
fn settle_at(expected: usize, what: &str) {
    let deadline = Instant::now() + LONG;
    while threads() != expected {
        assert!(
            Instant::now() < deadline,
            "{what}: {} threads, expected {expected}",
            threads()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `n` tasks that must all run at once, then checks the thread count while they do.
fn run_together<E: Executor>(pool: &E, n: usize, expected: usize) {
    let barrier = Arc::new(Barrier::new(n + 1));
    let futures: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    assert_eq!(threads(), expected);
    barrier.wait();
    for future in futures {
        future.result_timeout(LONG).unwrap();
    }
}

#[test]
fn pools_start_the_threads_they_should_and_leave_none_behind() {
    let before = threads();

    let cpu = CpuPool::new(3).unwrap();
    assert_eq!(threads(), before + 3);
    run_together(&cpu, 2, before + 3);
    drop(cpu);
    settle_at(before, "dropping a CpuPool joins its threads");

    // 65: three blocked tasks start exactly three threads; shutdown joins them.
    let io = IoPool::new(5).unwrap();
    assert_eq!(threads(), before, "an IoPool starts threads on demand");
    run_together(&io, 3, before + 3);
    io.shutdown(true, false);
    settle_at(before, "shutdown(wait) joins an IoPool's threads");

    // 67: dropping the pool.
    let io = IoPool::new(5).unwrap();
    run_together(&io, 5, before + 5);
    drop(io);
    settle_at(before, "dropping an IoPool joins its threads");

    // 68: after shutdown(wait = false) the threads end by themselves.
    let io = IoPool::new(2).unwrap();
    run_together(&io, 2, before + 2);
    io.shutdown(false, false);
    settle_at(before, "after shutdown without wait");
    drop(io);

    // Keep-alive: idle threads retire, and the pool starts new ones when work comes again.
    let io = IoPool::builder()
        .max_workers(4)
        .keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    run_together(&io, 4, before + 4);
    settle_at(before, "idle threads past keep-alive");
    run_together(&io, 2, before + 2);
    assert_eq!(io.submit(|| 7).result_timeout(LONG), Ok(&7));
    drop(io);
    settle_at(before, "retired threads are joined too");
}
