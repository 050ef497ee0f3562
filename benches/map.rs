//! `par_map` throughput by task size, beside the sequential map and rayon, in one run.
//!
//! `cargo bench --bench map`. Items of 0, 100 ns, 1 µs and 10 µs of work, and a scoped
//! `par_map` over `vec.iter()` reading a borrowed lookup table beside rayon's `par_iter()`;
//! all on two threads.
//! Before the timed groups it prints the peak resident memory of an ordered `par_map` over
//! 10⁷ lazily produced items (target ≤ 20 MB).

use std::hint::black_box;
use std::time::{Duration, Instant};

use concurrent_futures::{CpuPool, Executor, ParMapExt};
use criterion::{BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;

/// Busy work of about `ns` nanoseconds, calibrated once.
fn burn(iterations: u64) -> u64 {
    let mut x = 0_u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

fn iterations_per_ns() -> f64 {
    let n = 20_000_000;
    let start = Instant::now();
    black_box(burn(n));
    n as f64 / start.elapsed().as_nanos() as f64
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn memory(pool: &CpuPool) {
    let before = peak_rss_kib();
    let count = (0..10_000_000_u64)
        .map(|i| i.wrapping_mul(3))
        .par_map(pool, |x| x ^ 1)
        .filter(|r| r.is_ok())
        .count();
    assert_eq!(count, 10_000_000);
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        println!(
            "peak RSS: {:.1} MB before, {:.1} MB after an ordered par_map over 10^7 lazy items",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
}

fn throughput(c: &mut Criterion, pool: &CpuPool) {
    let per_ns = iterations_per_ns();
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .ok();
    for (label, ns, items) in [
        ("0ns", 0, 1_000_000),
        ("100ns", 100, 1_000_000),
        ("1us", 1_000, 100_000),
        ("10us", 10_000, 10_000),
    ] {
        let iterations = (ns as f64 * per_ns) as u64;
        let input: Vec<u64> = (0..items).collect();
        let work = move |x: u64| x ^ burn(iterations);
        let mut group = c.benchmark_group(format!("map_{label}"));
        group.throughput(Throughput::Elements(items));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        group.bench_function(BenchmarkId::new("sequential", items), |b| {
            b.iter(|| input.iter().copied().map(work).collect::<Vec<_>>())
        });
        group.bench_function(BenchmarkId::new("par_map_ordered", items), |b| {
            b.iter(|| {
                input
                    .iter()
                    .copied()
                    .par_map(pool, work)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("par_map_unordered", items), |b| {
            b.iter(|| {
                input
                    .iter()
                    .copied()
                    .par_map_unordered(pool, work)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("rayon_par_iter", items), |b| {
            b.iter(|| input.par_iter().copied().map(work).collect::<Vec<_>>())
        });
        group.bench_function(BenchmarkId::new("rayon_par_bridge", items), |b| {
            b.iter(|| {
                input
                    .iter()
                    .copied()
                    .par_bridge()
                    .map(work)
                    .collect::<Vec<_>>()
            })
        });
        group.finish();
    }
}

/// A scoped `par_map` over `vec.iter()` whose closure reads a borrowed lookup table, beside
/// rayon's `par_iter()` over the same data: what borrowing costs against rayon's own
/// borrowing map.
fn borrowed(c: &mut Criterion, pool: &CpuPool) {
    let items = 1_000_000_u64;
    let input: Vec<u64> = (0..items).collect();
    let table: Vec<u64> = (0..4096_u64).map(|i| i.wrapping_mul(2654435761)).collect();
    let lookup = |x: &u64| table[(*x as usize) % table.len()] ^ x;
    let mut group = c.benchmark_group("borrowed_lookup");
    group.throughput(Throughput::Elements(items));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function(BenchmarkId::new("sequential", items), |b| {
        b.iter(|| input.iter().map(lookup).collect::<Vec<_>>())
    });
    group.bench_function(BenchmarkId::new("scoped_par_map", items), |b| {
        b.iter(|| {
            pool.scope(|s| {
                input
                    .iter()
                    .par_map(s, lookup)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
            })
        })
    });
    group.bench_function(BenchmarkId::new("rayon_par_iter", items), |b| {
        b.iter(|| input.par_iter().map(lookup).collect::<Vec<_>>())
    });
    group.finish();
}

fn main() {
    let pool = CpuPool::new(2).unwrap();
    memory(&pool);
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion, &pool);
    borrowed(&mut criterion, &pool);
    criterion.final_summary();
}
