//! Every fault of CPython's `test_deadlock.py`, translated, and a few of our own: each one must
//! end in an error on the right futures, never in a hang. Every wait is bounded by
//! `process_common::BOUND`; a hang would show as `Err(Timeout)` and fail the assertion.
#![cfg(target_os = "linux")]

mod process_common;

use std::time::Duration;

use concurrent_futures::process::OnWorkerDeath;
use concurrent_futures::{Error, FnExecutor, Payload, ProcessPool, State};
use process_common::{BOUND, gone};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn double(x: u64) -> u64 {
    x * 2
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn panics(_: ()) -> u8 {
    panic!("boom in the worker")
}

fn exits(_: ()) -> u8 {
    std::process::exit(3)
}

fn aborts(_: ()) -> u8 {
    std::process::abort()
}

fn segfaults(_: ()) -> u8 {
    // SAFETY: raise has no preconditions; SIGSEGV's default action ends this worker, which is
    // the point of the test.
    unsafe { libc::raise(libc::SIGSEGV) };
    0
}

fn aborts_later(ms: u64) -> u8 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::abort()
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// Serializes to an error; deserializes fine.
#[derive(Debug)]
struct FailSer;

impl Serialize for FailSer {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("FailSer refuses to serialize"))
    }
}

impl<'de> Deserialize<'de> for FailSer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| FailSer)
    }
}

/// Serializes fine; deserializes to an error.
#[derive(Debug)]
struct FailDe;

impl Serialize for FailDe {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for FailDe {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom("FailDe refuses to deserialize"))
    }
}

fn takes_fail_ser(_: FailSer) -> u8 {
    1
}

fn takes_fail_de(_: FailDe) -> u8 {
    1
}

fn makes_fail_ser(_: ()) -> FailSer {
    FailSer
}

fn makes_fail_de(_: ()) -> FailDe {
    FailDe
}

fn serialization_message<T: std::fmt::Debug>(outcome: Result<&T, Error>) -> String {
    match outcome {
        Err(Error::Serialization { message }) => message,
        other => panic!("expected a serialization error, got {other:?}"),
    }
}

fn died<T: std::fmt::Debug>(outcome: Result<&T, Error>) -> (i32, String) {
    match outcome {
        Err(Error::WorkerDied { pid, status }) => (pid, status),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

fn is_broken<T>(outcome: Result<&T, Error>) -> bool {
    matches!(outcome, Err(Error::Broken { .. }))
}

/// A one-worker pool that breaks when its worker dies, as CPython's does.
fn breaking_pool() -> ProcessPool {
    let builder = ProcessPool::builder().max_workers(1);
    builder
        .on_worker_death(OnWorkerDeath::BreakPool)
        .build()
        .unwrap()
}

/// A one-worker pool that kills tasks (and `fork` children) after 300 ms.
fn timed_pool() -> ProcessPool {
    let builder = ProcessPool::builder().max_workers(1);
    builder
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// The worker's pid on a one-worker pool, checking on the way that the pool works.
fn worker_pid(pool: &ProcessPool) -> u32 {
    *pool.submit_fn(pid, ()).result_timeout(BOUND).unwrap()
}

/// Runs a task whose argument or result cannot cross, and checks that only its future fails,
/// with a message saying what went wrong, and that the same worker goes on.
fn serialization_fails_only_its_future<A: Payload, R: Payload + std::fmt::Debug>(
    f: fn(A) -> R,
    arg: A,
    expected: &str,
) {
    let pool = ProcessPool::new(1).unwrap();
    let before = worker_pid(&pool);
    let message = serialization_message(pool.submit_fn(f, arg).result_timeout(BOUND));
    assert!(message.contains(expected), "{message}");
    assert_eq!(worker_pid(&pool), before);
}

#[test]
fn argument_that_fails_to_serialize_in_the_parent_fails_only_its_future() {
    serialization_fails_only_its_future(takes_fail_ser, FailSer, "serialize the argument");
}

#[test]
fn argument_that_fails_to_deserialize_in_the_child_fails_only_its_future() {
    // Better than CPython, which breaks the pool here.
    let expected = "worker could not deserialize the argument";
    serialization_fails_only_its_future(takes_fail_de, FailDe, expected);
}

#[test]
fn result_that_fails_to_serialize_in_the_child_fails_only_its_future() {
    let expected = "worker could not serialize the result";
    serialization_fails_only_its_future(makes_fail_ser, (), expected);
}

#[test]
fn result_that_fails_to_deserialize_in_the_parent_fails_only_its_future() {
    serialization_fails_only_its_future(makes_fail_de, (), "could not deserialize the result");
}

#[test]
fn a_panicking_task_gives_its_message_and_the_worker_goes_on() {
    let pool = ProcessPool::new(1).unwrap();
    let before = worker_pid(&pool);
    match pool.submit_fn(panics, ()).result_timeout(BOUND) {
        Err(Error::Panicked { message }) => {
            assert!(message.starts_with("boom in the worker"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(worker_pid(&pool), before);
}

#[test]
fn exit_abort_and_segfault_fail_their_task_and_a_new_worker_takes_over() {
    let pool = ProcessPool::new(2).unwrap();
    type Crash = fn(()) -> u8;
    let crashes: [(Crash, &str); 3] = [
        (exits, "exited with code 3"),
        (aborts, "signal 6"),
        (segfaults, "signal 11"),
    ];
    for (crash, expected) in crashes {
        let (pid, status) = died(pool.submit_fn(crash, ()).result_timeout(BOUND));
        assert!(status.contains(expected), "{status}");
        assert!(pid > 0);
        assert!(gone(pid as u32));
        // Later tasks run, on live workers.
        let futures: Vec<_> = (0..4).map(|x| pool.submit_fn(double, x)).collect();
        for (x, future) in futures.iter().enumerate() {
            assert_eq!(future.result_timeout(BOUND), Ok(&(2 * x as u64)));
        }
    }
}

#[test]
fn with_break_pool_a_crash_breaks_every_pending_future_and_later_submits() {
    let pool = breaking_pool();
    let crash = pool.submit_fn(aborts_later, 100);
    let pending: Vec<_> = (0..5).map(|x| pool.submit_fn(double, x)).collect();
    let (_, status) = died(crash.result_timeout(BOUND));
    assert!(status.contains("signal 6"), "{status}");
    for future in &pending {
        assert!(is_broken(future.result_timeout(BOUND)), "{future:?}");
    }
    assert!(is_broken(pool.submit_fn(double, 1).result_timeout(BOUND)));
}

#[test]
fn an_idle_worker_killed_from_outside_is_replaced() {
    let pool = ProcessPool::new(1).unwrap();
    let victim = worker_pid(&pool);
    // SAFETY: kill has no memory preconditions; the pid is our pool's idle worker.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until_gone(victim);
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        // A submit racing with the death report may be sent to the dead worker; it then fails
        // with WorkerDied for that pid, and nothing else is acceptable.
        match pool.submit_fn(pid, ()).result_timeout(BOUND) {
            Ok(&new) => {
                assert_ne!(new, victim);
                break;
            }
            Err(Error::WorkerDied { pid, .. }) => assert_eq!(pid, victim as i32),
            other => panic!("unexpected {other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never replaced");
    }
}

#[test]
fn with_break_pool_an_idle_worker_killed_from_outside_breaks_the_pool() {
    let pool = breaking_pool();
    let victim = worker_pid(&pool);
    // SAFETY: as above.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until_gone(victim);
    match pool.submit_fn(double, 1).result_timeout(BOUND) {
        Err(Error::Broken { .. }) => {}
        Err(Error::WorkerDied { pid, .. }) => assert_eq!(pid, victim as i32),
        other => panic!("unexpected {other:?}"),
    }
    assert!(is_broken(pool.submit_fn(double, 1).result_timeout(BOUND)));
}

fn wait_until_gone(pid: u32) {
    let deadline = std::time::Instant::now() + BOUND;
    while !gone(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never went away"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_worker_dying_with_16_mb_in_flight_does_not_deadlock() {
    for policy in [OnWorkerDeath::Respawn, OnWorkerDeath::BreakPool] {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .pipeline_depth(2)
            .on_worker_death(policy)
            .build()
            .unwrap();
        let crash = pool.submit_fn(aborts_later, 50);
        // Sent while the worker runs the crash: far more than a pipe holds, so the manager is
        // mid-write when the worker dies.
        let big = pool.submit_fn(length, vec![7_u8; 16 << 20]);
        died(crash.result_timeout(BOUND));
        match policy {
            // It never started, so it runs on the replacement.
            OnWorkerDeath::Respawn => assert_eq!(big.result_timeout(BOUND), Ok(&(16 << 20))),
            OnWorkerDeath::BreakPool => assert!(is_broken(big.result_timeout(BOUND))),
        }
    }
}

#[test]
fn a_task_past_its_time_limit_is_killed_and_the_pool_goes_on() {
    let pool = timed_pool();
    let before = worker_pid(&pool);
    let slow = pool.submit_fn(nap, 60_000);
    let next = pool.submit_fn(double, 21);
    assert_eq!(slow.result_timeout(BOUND), Err(Error::TaskTimeout));
    assert_eq!(next.result_timeout(BOUND), Ok(&42));
    assert_ne!(worker_pid(&pool), before);
    assert!(gone(before));
}

#[test]
fn shutdown_while_a_task_crashes_returns_and_fails_that_task() {
    for policy in [OnWorkerDeath::Respawn, OnWorkerDeath::BreakPool] {
        let pool = ProcessPool::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .build()
            .unwrap();
        let crash = pool.submit_fn(aborts_later, 100);
        let queued: Vec<_> = (0..5).map(|x| pool.submit_fn(double, x)).collect();
        // `shutdown(wait)` has no timeout of its own: bound it from another thread, which a
        // hang leaves behind (detached) while the test fails.
        let pool = std::sync::Arc::new(pool);
        let (done, finished) = std::sync::mpsc::channel();
        let shutting = std::sync::Arc::clone(&pool);
        std::thread::spawn(move || {
            shutting.shutdown(true, false);
            let _ = done.send(());
        });
        assert!(finished.recv_timeout(BOUND).is_ok(), "shutdown hung");
        died(crash.result_timeout(BOUND));
        for (x, future) in queued.iter().enumerate() {
            match policy {
                // Queued work still runs after shutdown, on a replacement worker.
                OnWorkerDeath::Respawn => {
                    assert_eq!(future.result_timeout(BOUND), Ok(&(2 * x as u64)))
                }
                OnWorkerDeath::BreakPool => assert!(is_broken(future.result_timeout(BOUND))),
            }
        }
    }
}

#[test]
fn max_tasks_per_child_one_with_failing_tasks_settles_everything() {
    let pool = ProcessPool::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..12)
        .map(|i| match i % 3 {
            0 => pool.submit_fn(|x: u64| x as u8, i),
            1 => pool.submit_fn(|_: u64| -> u8 { panic!("task panics") }, i),
            _ => pool.submit_fn(|_: u64| -> u8 { std::process::abort() }, i),
        })
        .collect();
    for (i, future) in futures.iter().enumerate() {
        match (i % 3, future.result_timeout(BOUND)) {
            (0, Ok(&x)) => assert_eq!(x as usize, i),
            (1, Err(Error::Panicked { .. })) => {}
            (2, Err(Error::WorkerDied { .. })) => {}
            (_, other) => panic!("task {i}: unexpected {other:?}"),
        }
    }
}

#[test]
fn a_failing_initializer_breaks_the_pool() {
    fn init() {
        panic!("initializer says no");
    }
    let builder = ProcessPool::builder().max_workers(2);
    let pool = builder.initializer(init).build().unwrap();
    let future = pool.submit_fn(double, 1);
    match future.result_timeout(BOUND) {
        Err(Error::Broken { reason }) => {
            assert!(reason.contains("initializer says no"), "{reason}")
        }
        other => panic!("expected Broken, got {other:?}"),
    }
    assert!(is_broken(pool.submit_fn(double, 1).result_timeout(BOUND)));
}

#[test]
fn terminate_and_kill_workers_stop_running_tasks() {
    for (signal, expected) in [(libc::SIGTERM, "signal 15"), (libc::SIGKILL, "signal 9")] {
        let pool = ProcessPool::new(1).unwrap();
        let pid = worker_pid(&pool);
        let running = pool.submit_fn(nap, 60_000);
        let queued: Vec<_> = (0..3).map(|_| pool.submit_fn(nap, 60_000)).collect();
        while running.state() != State::Running {
            std::thread::sleep(Duration::from_millis(1));
        }
        if signal == libc::SIGTERM {
            pool.terminate_workers();
        } else {
            pool.kill_workers();
        }
        let (dead, status) = died(running.result_timeout(BOUND));
        assert_eq!(dead, pid as i32);
        assert!(status.contains(expected), "{status}");
        for future in &queued {
            // Sent to the worker (pipelined) or still queued: it never ran either way.
            assert!(matches!(
                future.result_timeout(BOUND),
                Err(Error::Cancelled | Error::WorkerDied { .. })
            ));
        }
        assert_eq!(
            pool.submit_fn(double, 1).into_result(),
            Err(Error::Shutdown)
        );
        drop(pool);
        assert!(gone(pid));
    }
}

#[test]
fn terminate_and_kill_workers_on_idle_dead_and_never_started_pools_do_not_hang() {
    // Never started: the workers may not even have been forked yet.
    let pool = ProcessPool::new(2).unwrap();
    pool.kill_workers();
    pool.terminate_workers();
    drop(pool);
    // Idle, then again after shutdown.
    let pool = ProcessPool::new(2).unwrap();
    let pid = worker_pid(&pool);
    pool.terminate_workers();
    pool.shutdown(true, false);
    assert!(gone(pid));
    pool.kill_workers();
    pool.terminate_workers();
    // Broken.
    let pool = breaking_pool();
    died(pool.submit_fn(aborts, ()).result_timeout(BOUND));
    pool.kill_workers();
    assert!(is_broken(pool.submit_fn(double, 1).result_timeout(BOUND)));
}

#[test]
fn fork_children_fail_like_workers() {
    // No time limit here: with RUST_BACKTRACE set, a panicking child symbolizes its backtrace,
    // which can take longer than a short limit on a loaded machine.
    let pool = ProcessPool::new(1).unwrap();
    match pool
        .fork(|| -> u8 { panic!("closure panics") })
        .result_timeout(BOUND)
    {
        Err(Error::Panicked { message }) => assert!(message.starts_with("closure panics")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let (_, status) = died(
        pool.fork(|| -> u8 { std::process::abort() })
            .result_timeout(BOUND),
    );
    assert!(status.contains("signal 6"), "{status}");
    let message = serialization_message(pool.fork(|| FailSer).result_timeout(BOUND));
    assert!(
        message.contains("could not serialize the result"),
        "{message}"
    );
    let slow = timed_pool().fork(|| nap(60_000));
    assert_eq!(slow.result_timeout(BOUND), Err(Error::TaskTimeout));
}
