//! CpuPool's own cases: nested waits on the pool's own threads, the global pool, builder
//! errors and thread names. The executor cases it shares with IoPool are in `pool_executor.rs`.

use std::sync::Arc;
use std::time::Duration;

use concurrent_futures::{CpuPool, Error, Executor, ReturnWhen, as_completed, wait};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn nested_submit_and_wait_on_one_thread_completes() {
    let pool = Arc::new(CpuPool::new(1).unwrap());
    let inner = Arc::clone(&pool);
    let outer = pool.submit(move || {
        let child = inner.submit(|| 20);
        // Three levels deep: the grandchild runs on the same, only, thread.
        let nested = Arc::clone(&inner);
        let deep = inner.submit(move || *nested.submit(|| 1).result_timeout(LONG).unwrap());
        child.result_timeout(LONG).copied().unwrap() + deep.result_timeout(LONG).copied().unwrap()
    });
    assert_eq!(outer.result_timeout(LONG), Ok(&21));
}

#[test]
fn nested_wait_and_as_completed_on_one_thread_complete() {
    let pool = Arc::new(CpuPool::new(1).unwrap());
    let inner = Arc::clone(&pool);
    let outer = pool.submit(move || {
        let futures: Vec<_> = (1..=4_u32).map(|n| inner.submit(move || n * n)).collect();
        let split = wait(&futures, Some(LONG), ReturnWhen::AllCompleted);
        assert_eq!(split.done.len(), 4);
        drop(split);
        as_completed(futures, Some(LONG))
            .map(|future| *future.unwrap().result().unwrap())
            .sum::<u32>()
    });
    assert_eq!(outer.result_timeout(LONG), Ok(&30));
}

#[test]
fn a_task_waiting_on_a_task_of_another_pool_just_waits() {
    let io = Arc::new(concurrent_futures::IoPool::new(1).unwrap());
    let cpu = CpuPool::new(1).unwrap();
    let io_inner = Arc::clone(&io);
    let outer = cpu.submit(move || *io_inner.submit(|| 3).result_timeout(LONG).unwrap());
    assert_eq!(outer.result_timeout(LONG), Ok(&3));
}

#[test]
fn global_pool_runs_tasks_and_each_handle_shuts_down_alone() {
    let first = CpuPool::global();
    let second = CpuPool::global();
    assert_eq!(first.num_threads(), rayon::current_num_threads());
    first.shutdown(true, false);
    assert_eq!(first.submit(|| 1).into_result(), Err(Error::Shutdown));
    assert_eq!(second.submit(|| 2).result_timeout(LONG), Ok(&2));
    // rayon's global pool is still there for everyone else.
    assert_eq!(rayon::join(|| 1, || 2), (1, 2));
}

#[test]
fn thread_names() {
    let named = CpuPool::builder()
        .num_threads(2)
        .thread_name(|index| format!("crunch-{index}"))
        .build()
        .unwrap();
    let name = named.submit(|| std::thread::current().name().map(String::from));
    let name = name.result_timeout(LONG).unwrap().clone().unwrap();
    assert!(name == "crunch-0" || name == "crunch-1", "{name}");

    let default = CpuPool::new(1).unwrap();
    let name = default.submit(|| std::thread::current().name().map(String::from));
    let name = name.result_timeout(LONG).unwrap().clone().unwrap();
    let (prefix, index) = name.rsplit_once('_').unwrap();
    assert!(prefix.starts_with("CpuPool-"), "{name}");
    assert_eq!(index, "0");
}

#[test]
fn num_threads_is_what_was_asked() {
    assert_eq!(CpuPool::new(3).unwrap().num_threads(), 3);
}
