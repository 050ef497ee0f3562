//! ProcessPool costs: one round trip, submit-then-gather throughput by pipeline depth, a `fork`
//! round trip, and the speedup of CPU-bound work on two workers over running it in sequence;
//! first, a one-off line on the parent's peak memory for a 64 MB argument.
//!
//! Run: `cargo bench --bench process`. `map` (chunked) is benched with the generic map.

use std::hint::black_box;
use std::time::{Duration, Instant};

use concurrent_futures::{FnExecutor, ProcessPool, process};
use criterion::{BenchmarkId, Criterion, Throughput};

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(1)
}

/// A CPU-bound loop; `iterations` is calibrated to about 10 ms.
fn burn(iterations: u64) -> u64 {
    let mut x = 1_u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

/// The number of `burn` iterations that take about `target` here: the fastest of three
/// probes, so that a probe slowed by another process does not shrink the tasks.
fn calibrate(target: Duration) -> u64 {
    let probe = 10_000_000;
    let fastest = (0..3)
        .map(|_| {
            let start = Instant::now();
            burn(black_box(probe));
            start.elapsed()
        })
        .min()
        .unwrap_or(target);
    (target.as_secs_f64() / fastest.as_secs_f64() * probe as f64) as u64
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn bytes(len: usize) -> Vec<u8> {
    vec![1; len]
}

/// A `/proc/self/status` figure in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// How much the parent's resident memory peaks above what it was with a 64 MB argument
/// already built, while that argument goes to a worker (as a multiple of the payload), and
/// what stays resident after 2,000 small tasks follow it; then the peak for a 64 MB result.
/// Printed once, not a criterion bench.
fn peak_memory_of_a_large_argument() {
    const PAYLOAD: usize = 64 << 20;
    const MB: f64 = (1 << 20) as f64;
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.submit_fn(length, Vec::new()).into_result(), Ok(0));
    let before = status_bytes("VmRSS");
    let arg = vec![1_u8; PAYLOAD];
    // Resets VmHWM to the current RSS (Linux 4.0 and later).
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("process/peak_rss_64_mb_argument: cannot reset VmHWM here; skipped");
        return;
    }
    let base = status_bytes("VmRSS");
    assert_eq!(pool.submit_fn(length, arg).into_result(), Ok(PAYLOAD));
    let peak = status_bytes("VmHWM");
    for x in 0..2000 {
        assert_eq!(pool.submit_fn(trivial, x).into_result(), Ok(trivial(x)));
    }
    let after = status_bytes("VmRSS");
    println!(
        "process/peak_rss_64_mb_argument: peak {:.2}x the payload above the RSS with the \
         argument built; {:.1} MB above the RSS before it after 2,000 small tasks",
        peak.saturating_sub(base) as f64 / PAYLOAD as f64,
        (after as f64 - before as f64) / MB
    );
    // The other way, for comparison: the reply's bytes and the value decoded from them
    // coexist while it is decoded, so about 2x is the floor there.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = status_bytes("VmRSS");
    let result = pool.submit_fn(bytes, PAYLOAD).into_result().unwrap();
    let peak = status_bytes("VmHWM");
    assert_eq!(result.len(), PAYLOAD);
    println!(
        "process/peak_rss_64_mb_result: peak {:.2}x the payload above the RSS before the call",
        peak.saturating_sub(base) as f64 / PAYLOAD as f64
    );
}

fn round_trip(c: &mut Criterion) {
    let pool = ProcessPool::new(2).unwrap();
    let mut group = c.benchmark_group("process/round_trip");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("submit_one_then_result", |b| {
        b.iter(|| pool.submit_fn(trivial, black_box(7)).into_result().unwrap())
    });
    group.bench_function("fork_closure", |b| {
        let captured = black_box(7_u64);
        b.iter(|| pool.fork(|| trivial(captured)).into_result().unwrap())
    });
    group.finish();
}

fn submit_then_gather(c: &mut Criterion) {
    const TASKS: u64 = 10_000;
    let mut group = c.benchmark_group("process/submit_10k_then_gather");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(TASKS));
    for depth in [1, 2, 4] {
        let pool = ProcessPool::builder()
            .max_workers(2)
            .pipeline_depth(depth)
            .build()
            .unwrap();
        group.bench_with_input(BenchmarkId::new("depth", depth), &depth, |b, _| {
            b.iter(|| {
                let futures: Vec<_> = (0..TASKS).map(|x| pool.submit_fn(trivial, x)).collect();
                futures
                    .into_iter()
                    .map(|f| f.into_result().unwrap())
                    .fold(0_u64, u64::wrapping_add)
            })
        });
    }
    group.finish();
}

/// `map_fn` over trivial items in chunks of 256: one round trip to a worker per chunk.
fn map_chunks(c: &mut Criterion) {
    const ITEMS: u64 = 100_000;
    let pool = ProcessPool::new(2).unwrap();
    let mut group = c.benchmark_group("process/map_100k_trivial");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(ITEMS));
    group.bench_function("chunksize_256", |b| {
        b.iter(|| {
            pool.map_fn(trivial, 0..ITEMS)
                .chunksize(256)
                .map(|r| r.unwrap())
                .fold(0_u64, u64::wrapping_add)
        })
    });
    group.finish();
}

fn cpu_bound(c: &mut Criterion) {
    const TASKS: usize = 32;
    let iterations = calibrate(Duration::from_millis(10));
    let pool = ProcessPool::new(2).unwrap();
    let mut group = c.benchmark_group("process/cpu_32_tasks_of_10ms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("sequential", |b| {
        b.iter(|| {
            (0..TASKS)
                .map(|_| burn(iterations))
                .fold(0, u64::wrapping_add)
        })
    });
    group.bench_function("pool_of_2", |b| {
        b.iter(|| {
            let futures: Vec<_> = (0..TASKS)
                .map(|_| pool.submit_fn(burn, iterations))
                .collect();
            futures
                .into_iter()
                .map(|f| f.into_result().unwrap())
                .fold(0, u64::wrapping_add)
        })
    });
    group.finish();
}

fn main() {
    // First, while this program is single-threaded: every worker is forked from this server.
    process::init().expect("could not start the fork server");
    peak_memory_of_a_large_argument();
    let mut criterion = Criterion::default().configure_from_args();
    round_trip(&mut criterion);
    submit_then_gather(&mut criterion);
    map_chunks(&mut criterion);
    cpu_bound(&mut criterion);
    criterion.final_summary();
}
