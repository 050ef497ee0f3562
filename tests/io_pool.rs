//! IoPool's own cases from CPython's `test_thread_pool.py`, `test_shutdown.py` and
//! `test_init.py`: how many threads it starts, their names, initializers. The executor cases
//! it shares with CpuPool are in `pool_executor.rs`; thread counts seen by the operating system
//! are in `pool_threads.rs`.
//!
//! Not ported: 82 and 83 (forking from a busy pool) belong to the process pool's issue; 84
//! (map's current-future cancel) to map's.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Executor, Future, IoPool};

const LONG: Duration = Duration::from_secs(30);

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

fn names(futures: Vec<Future<String>>) -> HashSet<String> {
    futures
        .into_iter()
        .map(|future| future.result_timeout(LONG).unwrap().clone())
        .collect()
}

/// Runs `n` tasks that can only finish together, so `n` threads must run at once, and
/// returns the names of the threads they ran on.
fn names_of_concurrent_tasks(pool: &IoPool, n: usize) -> HashSet<String> {
    let barrier = Arc::new(Barrier::new(n));
    let futures = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                thread_name()
            })
        })
        .collect();
    names(futures)
}

// 79. test_default_workers
#[test]
fn default_max_workers_is_cpythons() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let pool = IoPool::builder().build().unwrap();
    assert_eq!(pool.max_workers(), (cores + 4).min(32));
}

// 80. test_saturation: 60 tasks blocked at once on a pool of 4 use exactly 4 threads.
#[test]
fn saturation_starts_exactly_max_workers_threads() {
    let pool = IoPool::new(4).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<()>();
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    let entered = Arc::new(AtomicUsize::new(0));
    let futures = (0..60)
        .map(|_| {
            let (receiver, entered) = (Arc::clone(&receiver), Arc::clone(&entered));
            pool.submit(move || {
                entered.fetch_add(1, Ordering::SeqCst);
                // Every task blocks until the test hangs up.
                let _ = receiver.lock().unwrap().recv_timeout(LONG);
                thread_name()
            })
        })
        .collect();
    // Four tasks blocked at once: four threads exist. Only then let them all go.
    let deadline = Instant::now() + LONG;
    while entered.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "fewer than 4 threads started");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(sender);
    assert_eq!(names(futures).len(), 4);
}

// 81. test_idle_thread_reuse: sequential submit-and-wait uses one thread.
#[test]
fn idle_thread_is_reused() {
    let pool = IoPool::new(5).unwrap();
    let used: HashSet<_> = (0..3)
        .map(|_| {
            pool.submit(thread_name)
                .result_timeout(LONG)
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
}

// 69. test_thread_names_assigned
#[test]
fn thread_names_assigned() {
    let pool = IoPool::builder()
        .max_workers(5)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    let expected: HashSet<_> = (0..5).map(|i| format!("SpecialPool_{i}")).collect();
    assert_eq!(names_of_concurrent_tasks(&pool, 5), expected);
}

// 70. test_thread_names_default
#[test]
fn thread_names_default() {
    let pool = IoPool::new(5).unwrap();
    let names = names_of_concurrent_tasks(&pool, 5);
    let prefixes: HashSet<_> = names
        .iter()
        .map(|name| name.rsplit_once('_').unwrap().0.to_owned())
        .collect();
    assert_eq!(prefixes.len(), 1);
    let prefix = prefixes.into_iter().next().unwrap();
    let number = prefix.strip_prefix("IoPool-").unwrap();
    assert!(number.parse::<usize>().is_ok(), "{prefix}");
    let expected: HashSet<_> = (0..5).map(|i| format!("{prefix}_{i}")).collect();
    assert_eq!(names, expected);
}

std::thread_local! {
    static INITIALIZED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

// 128. InitializerMixin.test_initializer: every thread ran it before its first task.
#[test]
fn initializer_runs_in_each_thread_before_its_tasks() {
    let pool = IoPool::builder()
        .max_workers(5)
        .initializer(|| {
            INITIALIZED.set(Some("initialized"));
            Ok::<(), String>(())
        })
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(5));
    let futures: Vec<_> = (0..5)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            pool.submit(move || {
                barrier.wait();
                INITIALIZED.get()
            })
        })
        .collect();
    for future in futures {
        assert_eq!(future.result_timeout(LONG), Ok(&Some("initialized")));
    }
}

// 129. FailingInitializerMixin.test_initializer: queued and later work gets Broken.
#[test]
fn failing_initializer_breaks_the_pool() {
    let pool = IoPool::builder()
        .max_workers(2)
        .initializer(|| {
            // Slow, so that tasks are queued by the time it fails.
            std::thread::sleep(Duration::from_millis(20));
            Err("error in initializer")
        })
        .build()
        .unwrap();
    let queued: Vec<_> = (0..10).map(|i| pool.submit(move || i)).collect();
    for future in queued {
        let Err(Error::Broken { reason }) = future.result_timeout(LONG) else {
            panic!("a queued task ran or hung: {future:?}");
        };
        assert!(reason.contains("error in initializer"), "{reason}");
    }
    // From now on every submit is refused at once.
    let later = pool.submit(|| 0);
    assert!(later.done());
    assert!(matches!(later.into_result(), Err(Error::Broken { .. })));
}

#[test]
fn panicking_initializer_breaks_the_pool() {
    let pool = IoPool::builder()
        .initializer(|| -> Result<(), String> { panic!("no config") })
        .build()
        .unwrap();
    let Err(Error::Broken { reason }) = pool.submit(|| 0).result_timeout(LONG).cloned() else {
        panic!("the pool is not broken");
    };
    assert!(reason.contains("no config"), "{reason}");
}

/// A burst of tiny tasks leaves threads idle with submits' claims on them; those claims must
/// not keep a sleeping thread from being woken later, or the pool runs on fewer threads than
/// it has (it did: after one 10 000-task gather, a 2-worker pool ran on one thread until
/// keep-alive woke the other).
#[test]
fn every_thread_still_takes_work_after_a_burst_of_tiny_tasks() {
    let pool = IoPool::builder()
        .max_workers(2)
        .keep_alive(Duration::from_secs(120))
        .build()
        .unwrap();
    // The stranding is a race: about half the bursts hit it before the fix (release build).
    for _ in 0..20 {
        let burst: Vec<_> = (0..10_000_u32).map(|i| pool.submit(move || i)).collect();
        for future in burst {
            future.result_timeout(LONG).unwrap();
        }
        // Two tasks that each wait (bounded) for the other to start: both finish together
        // only if two threads take them.
        let started = Arc::new(AtomicUsize::new(0));
        let rendezvous: Vec<_> = (0..2)
            .map(|_| {
                let started = Arc::clone(&started);
                pool.submit(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + LONG;
                    while started.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    started.load(Ordering::SeqCst) == 2
                })
            })
            .collect();
        for future in rendezvous {
            assert_eq!(future.result_timeout(LONG * 2), Ok(&true));
        }
    }
}
