//! The cost of the core itself: one future's whole life, and waiting on many done futures.
//!
//! Run with `cargo bench --bench future`. Targets (issue 2): create + complete + read under
//! 100 ns uncontended; `as_completed` over 10k done futures under 2 ms.

use std::hint::black_box;
use std::time::Duration;

use concurrent_futures::{Future, Promise, ReturnWhen, as_completed, wait};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("future");
    group.bench_function("create+complete+read", |b| {
        b.iter(|| {
            let (mut promise, future) = Promise::new();
            promise.set_result(black_box(42_u64)).unwrap();
            *future.result().unwrap()
        })
    });
    group.bench_function("create+run+into_result", |b| {
        b.iter(|| {
            let (promise, future) = Promise::new();
            promise.run(|| black_box(42_u64));
            future.into_result().unwrap()
        })
    });
    // The baseline a user could write by hand: a std channel carrying one value.
    group.bench_function("baseline: std mpsc send+recv", |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            tx.send(black_box(42_u64)).unwrap();
            rx.recv().unwrap()
        })
    });
    group.finish();
}

fn done_futures(n: usize) -> Vec<Future<usize>> {
    (0..n)
        .map(|i| {
            let (promise, future) = Promise::new();
            promise.run(move || i);
            future
        })
        .collect()
}

fn many(c: &mut Criterion) {
    let mut group = c.benchmark_group("10k done futures");
    let futures = done_futures(10_000);
    group.bench_function("wait all", |b| {
        b.iter(|| wait(&futures, None, ReturnWhen::AllCompleted).done.len())
    });
    group.bench_function("as_completed", |b| {
        b.iter_batched(
            || futures.clone(),
            |futures| as_completed(futures, Some(Duration::from_secs(60))).count(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    targets = lifecycle, many
}
criterion_main!(benches);
