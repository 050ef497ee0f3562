//! CpuPool and IoPool beside what a user would pick instead: raw `rayon::spawn` with a
//! channel, the `threadpool` crate with a channel, tokio's `spawn_blocking`, and
//! `std::thread::spawn`, all with 2 workers.
//!
//! * `round_trip`: submit one trivial task, wait for its result, repeat.
//! * `gather`: submit 10 000 trivial tasks, then collect every result (throughput is per task).
//!
//! Run: `cargo bench --bench pools`.

use std::hint::black_box;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use concurrent_futures::{CpuPool, Executor, IoPool};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const WORKERS: usize = 2;
const BATCH: u64 = 10_000;

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("rayon pool")
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(WORKERS)
        .build()
        .expect("tokio runtime")
}

fn one_task<E: Executor>(pool: &E) -> Result<u64, concurrent_futures::Error> {
    pool.submit(|| black_box(1_u64)).into_result()
}

/// Submits the batch, then gathers every result in submission order.
fn batch<E: Executor>(pool: &E) -> Result<u64, concurrent_futures::Error> {
    let futures: Vec<_> = (0..BATCH)
        .map(|i| pool.submit(move || black_box(i)))
        .collect();
    futures.into_iter().map(|f| f.into_result()).sum()
}

/// The peers' batch: `spawn(i, sender)` starts task `i`; one channel gathers the whole batch,
/// their cheapest way to collect results.
fn batch_over_channel(spawn: impl Fn(u64, Sender<u64>)) -> u64 {
    let (sender, receiver) = channel();
    for i in 0..BATCH {
        spawn(i, sender.clone());
    }
    drop(sender);
    receiver.iter().sum()
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");

    let pool = CpuPool::new(WORKERS).unwrap();
    group.bench_function("CpuPool", |b| b.iter(|| one_task(&pool)));
    drop(pool);

    let pool = IoPool::new(WORKERS).unwrap();
    group.bench_function("IoPool", |b| b.iter(|| one_task(&pool)));
    drop(pool);

    let pool = rayon_pool();
    group.bench_function("rayon_spawn_channel", |b| {
        b.iter(|| {
            let (sender, receiver) = channel();
            pool.spawn(move || sender.send(black_box(1_u64)).expect("send"));
            receiver.recv()
        })
    });
    drop(pool);

    let pool = threadpool::ThreadPool::new(WORKERS);
    group.bench_function("threadpool_channel", |b| {
        b.iter(|| {
            let (sender, receiver) = channel();
            pool.execute(move || sender.send(black_box(1_u64)).expect("send"));
            receiver.recv()
        })
    });
    drop(pool);

    let runtime = tokio_runtime();
    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| runtime.block_on(runtime.spawn_blocking(|| black_box(1_u64))))
    });
    drop(runtime);

    group.bench_function("thread_spawn", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1_u64)).join())
    });
    group.finish();
}

fn gather(c: &mut Criterion) {
    let mut group = c.benchmark_group("gather");
    group.throughput(Throughput::Elements(BATCH));

    let pool = CpuPool::new(WORKERS).unwrap();
    group.bench_function("CpuPool", |b| b.iter(|| batch(&pool)));
    drop(pool);

    let pool = IoPool::new(WORKERS).unwrap();
    group.bench_function("IoPool", |b| b.iter(|| batch(&pool)));
    drop(pool);

    let pool = rayon_pool();
    group.bench_function("rayon_spawn_channel", |b| {
        b.iter(|| {
            batch_over_channel(|i, sender| {
                pool.spawn(move || sender.send(black_box(i)).expect("send"))
            })
        })
    });
    drop(pool);

    let pool = threadpool::ThreadPool::new(WORKERS);
    group.bench_function("threadpool_channel", |b| {
        b.iter(|| {
            batch_over_channel(|i, sender| {
                pool.execute(move || sender.send(black_box(i)).expect("send"))
            })
        })
    });
    drop(pool);

    let runtime = tokio_runtime();
    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| tokio::task::spawn_blocking(move || black_box(i)))
                    .collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await.expect("join");
                }
                sum
            })
        })
    });
    drop(runtime);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = pools;
    config = config();
    targets = round_trip, gather
}
criterion_main!(pools);
