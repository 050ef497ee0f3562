//! `Executor::scope` and `Scope::submit`: tasks that borrow, joined by the scope itself
//! (leaked futures, a panicking body), panics kept per task, nested scopes, a scope inside a
//! one-thread `CpuPool` task, `as_completed` over scoped futures, borrowed results, and pools
//! that are shut down.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::LONG;
use concurrent_futures::{CpuPool, Error, Executor, InlineExecutor, IoPool, as_completed};

fn slow() {
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn leaked_futures_are_still_joined_before_the_scope_returns() {
    let cpu = CpuPool::new(2).unwrap();
    let io = IoPool::new(2).unwrap();
    fn check<E: Executor>(pool: &E) {
        let finished = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..6 {
                std::mem::forget(s.submit(|| {
                    slow();
                    finished.fetch_add(1, Ordering::SeqCst);
                }));
            }
        });
        assert_eq!(finished.load(Ordering::SeqCst), 6);
    }
    check(&cpu);
    check(&io);
    check(&InlineExecutor::new());
}

#[test]
fn a_panicking_body_joins_its_tasks_then_resumes_the_panic() {
    let pool = IoPool::new(2).unwrap();
    let finished = AtomicUsize::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            for _ in 0..4 {
                s.submit(|| {
                    slow();
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
            panic!("the body fails");
        })
    }));
    assert_eq!(finished.load(Ordering::SeqCst), 4);
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the body fails"));
}

#[test]
fn a_panicking_task_fails_only_its_own_future() {
    let pool = CpuPool::builder()
        .num_threads(2)
        .print_panics(false)
        .build()
        .unwrap();
    let data = [1, 2, 3];
    let (bad, good) = pool.scope(|s| {
        let bad = s.submit(|| -> i32 { panic!("task {} fails", data[0]) });
        let good = s.submit(|| data.iter().sum::<i32>());
        (bad.into_result(), good.into_result())
    });
    assert_eq!(
        bad,
        Err(Error::Panicked {
            message: "task 1 fails".into()
        })
    );
    assert_eq!(good, Ok(6));
}

#[test]
fn nested_scopes_borrow_from_each_level() {
    let pool = CpuPool::new(2).unwrap();
    let outer_data = [10_u64, 20, 30];
    let total = pool.scope(|s| {
        let futures: Vec<_> = outer_data
            .iter()
            .map(|&n| {
                let pool = &pool;
                s.submit(move || {
                    let inner_data = [n, n + 1];
                    pool.scope(|inner| {
                        let parts: Vec<_> = inner_data
                            .iter()
                            .map(|x| inner.submit(move || x * 2))
                            .collect();
                        parts
                            .into_iter()
                            .map(|f| f.into_result().unwrap())
                            .sum::<u64>()
                    })
                })
            })
            .collect();
        futures
            .into_iter()
            .map(|f| f.into_result().unwrap())
            .sum::<u64>()
    });
    assert_eq!(total, 2 * (10 + 11 + 20 + 21 + 30 + 31));
}

#[test]
fn a_scope_inside_a_one_thread_cpu_pool_task_helps_instead_of_deadlocking() {
    let pool = Arc::new(CpuPool::new(1).unwrap());
    let inner = Arc::clone(&pool);
    let outer = pool.submit(move || {
        let values = vec![1_usize, 2, 3, 4];
        let sum = AtomicUsize::new(0);
        // No wait inside the body: the join alone must run the scope's tasks, on this very
        // thread, since the pool has no other.
        inner.scope(|s| {
            for value in &values {
                std::mem::forget(s.submit(|| sum.fetch_add(*value, Ordering::SeqCst)));
            }
        });
        sum.into_inner()
    });
    assert_eq!(outer.result_timeout(LONG), Ok(&10));
}

#[test]
fn as_completed_over_scoped_futures_with_a_timeout() {
    let pool = IoPool::new(4).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let words = ["a", "bb", "ccc"];
    let (lengths, timed_out) = pool.scope(|s| {
        let mut futures: Vec<_> = words.iter().map(|w| s.submit(move || w.len())).collect();
        // Borrows the gate; does not finish before the time-out.
        futures.push(s.submit(|| {
            let _ = gate.lock().unwrap().recv_timeout(LONG);
            0
        }));
        let mut lengths = Vec::new();
        let mut timed_out = false;
        for item in as_completed(futures, Some(Duration::from_millis(500))) {
            match item {
                Ok(future) => lengths.push(*future.result().unwrap()),
                Err(error) => {
                    assert_eq!(error, Error::Timeout);
                    timed_out = true;
                }
            }
        }
        release.send(()).unwrap();
        (lengths, timed_out)
    });
    let mut lengths = lengths;
    lengths.sort();
    assert_eq!(lengths, [1, 2, 3]);
    assert!(timed_out);
}

#[test]
fn results_may_borrow_what_outlives_the_scope() {
    let pool = CpuPool::new(2).unwrap();
    let text = String::from("alpha be gam");
    let longest: concurrent_futures::Future<&str> =
        pool.scope(|s| s.submit(|| text.split(' ').max_by_key(|w| w.len()).unwrap()));
    // The future left the scope: its result borrows `text`, which outlives both.
    assert_eq!(longest.result(), Ok(&"alpha"));
    assert_eq!(longest.result().unwrap().as_ptr(), text.as_ptr());
    let callback_saw = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&callback_saw);
    longest.add_done_callback(move |f| {
        seen.store(f.result().map_or(0, |w| w.len()), Ordering::SeqCst);
    });
    assert_eq!(callback_saw.load(Ordering::SeqCst), 5);
}

#[test]
fn a_shut_down_pool_fails_scoped_futures_without_hanging() {
    let cpu = CpuPool::new(1).unwrap();
    let io = IoPool::new(1).unwrap();
    let inline = InlineExecutor::new();
    fn check<E: Executor>(pool: &E) {
        pool.shutdown(true, false);
        let local = 3;
        let outcome = pool.scope(|s| s.submit(|| local + 1).into_result());
        assert_eq!(outcome, Err(Error::Shutdown));
    }
    check(&cpu);
    check(&io);
    check(&inline);
}

#[test]
fn tasks_cancelled_by_shutdown_count_as_finished() {
    let pool = IoPool::new(1).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let ran = AtomicUsize::new(0);
    let outcomes = pool.scope(|s| {
        let blocker = s.submit(|| {
            let _ = gate.lock().unwrap().recv_timeout(LONG);
        });
        let queued: Vec<_> = (0..3)
            .map(|_| s.submit(|| ran.fetch_add(1, Ordering::SeqCst)))
            .collect();
        while !blocker.running() {
            std::thread::yield_now();
        }
        pool.shutdown(false, true);
        release.send(()).unwrap();
        queued
            .into_iter()
            .map(|f| f.into_result())
            .collect::<Vec<_>>()
    });
    assert_eq!(outcomes, vec![Err(Error::Cancelled); 3]);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}
