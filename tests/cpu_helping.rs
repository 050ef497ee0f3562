//! CpuPool's helping waits: a task that waits runs other jobs of its pool, within bounds, and
//! sleeps without polling when there is nothing to run.
//!
//! The scenarios that used to abort the process or deadlock the only rayon thread run in a
//! child process (this test binary again, running just that test with `CHILD` set), so that
//! such a failure is reported as a failed test instead of killing or hanging the harness.

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{CpuPool, Executor, Promise};

const LONG: Duration = Duration::from_secs(30);

/// Set in the child process that runs one scenario.
const CHILD: &str = "CONCURRENT_FUTURES_HELPING_CHILD";

/// In the parent: runs test `name` of this binary in a child process with `env` and fails
/// unless it passes within a minute. In the child: returns true, and the caller runs the
/// scenario.
fn in_child(name: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "the scenario failed in its child: {status}"
            );
            return false;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the scenario hung in its child (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 11, item 12: every task waits on one outside promise, so each wait runs the next
/// task nested on the only thread's stack. The nesting must stop (the wait blocks for real)
/// before the stack overflows, and every task must return once the promise completes.
#[test]
fn thousands_of_tasks_waiting_on_one_outside_promise_do_not_overflow_the_stack() {
    if !in_child(
        "thousands_of_tasks_waiting_on_one_outside_promise_do_not_overflow_the_stack",
        &[],
    ) {
        return;
    }
    let pool = CpuPool::new(1).unwrap();
    let (promise, future) = Promise::<u32>::new();
    let tasks: Vec<_> = (0..4_000_u32)
        .map(|i| {
            let future = future.clone();
            pool.submit(move || *future.result_timeout(LONG).unwrap() + i)
        })
        .collect();
    // Let the pool thread nest as deep as it will.
    std::thread::sleep(Duration::from_millis(500));
    promise.run(|| 1);
    for (i, task) in (0..).zip(&tasks) {
        assert_eq!(task.result_timeout(LONG), Ok(&(i + 1)));
    }
}

/// The CPU time the calling thread has used.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Issue 11, item 13: a task blocked on a future that no job of its pool can complete (here a
/// promise of the test thread) sleeps until the future completes: its thread uses next to no
/// CPU meanwhile. A polling wait (a nap of 200 µs) burns several percent of a core.
#[cfg(unix)]
#[test]
fn a_task_blocked_on_an_outside_future_uses_no_cpu() {
    let pool = CpuPool::new(1).unwrap();
    let (promise, future) = Promise::<u8>::new();
    let blocked = pool.submit(move || {
        let before = thread_cpu_time();
        let value = *future.result_timeout(LONG).unwrap();
        (value, thread_cpu_time() - before)
    });
    std::thread::sleep(Duration::from_secs(2));
    promise.run(|| 7);
    let (value, cpu) = *blocked.result_timeout(LONG).unwrap();
    assert_eq!(value, 7);
    // A sleeping thread uses microseconds; 20 ms over 2 s is 1 % of a core.
    assert!(
        cpu < Duration::from_millis(20),
        "the blocked task's thread used {cpu:?} of CPU in 2 s"
    );
}

/// Issue 11, item 13: a task asleep in a helping wait wakes up for a task submitted later and
/// runs it, although what it waits for is still pending.
#[test]
fn a_blocked_task_runs_a_task_submitted_while_it_sleeps() {
    let pool = CpuPool::new(1).unwrap();
    let (promise, future) = Promise::<u8>::new();
    let (started, has_started) = mpsc::channel();
    let blocked = pool.submit(move || {
        started.send(()).unwrap();
        *future.result_timeout(LONG).unwrap()
    });
    has_started.recv_timeout(LONG).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let later = pool.submit(|| 5);
    assert_eq!(later.result_timeout(LONG), Ok(&5));
    assert!(!blocked.done());
    promise.run(|| 1);
    assert_eq!(blocked.result_timeout(LONG), Ok(&1));
}

/// Issue 11, item 14: on a global pool of one thread, a task that shuts down another
/// `CpuPool::global()` executor with `wait = true` runs that executor's queued tasks meanwhile
/// instead of waiting for them forever.
#[test]
fn shutdown_wait_of_a_global_executor_from_a_task_on_the_global_pool_completes() {
    if !in_child(
        "shutdown_wait_of_a_global_executor_from_a_task_on_the_global_pool_completes",
        &[("RAYON_NUM_THREADS", "1")],
    ) {
        return;
    }
    assert_eq!(rayon::current_num_threads(), 1);
    let outer = CpuPool::global();
    let other = Arc::new(CpuPool::global());
    let task = outer.submit(move || {
        let queued = other.submit(|| 5);
        other.shutdown(true, false);
        queued.done().then(|| *queued.result().unwrap())
    });
    assert_eq!(task.result_timeout(LONG), Ok(&Some(5)));
}
