//! The comparison workloads on the ranks of an MPI job, each result checked: the same
//! program as with a `ProcessPool`, with `MpiPool::init()` in place of the pool's line.
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_pool
//! mpirun -n 3 target/release/examples/mpi_pool            # rank 0 and two worker ranks
//! mpirun -n 3 target/release/examples/mpi_pool --quick    # tiny sizes (the tests run this)
//! ```
//!
//! (As root, Open MPI also wants `--allow-run-as-root`, and `--oversubscribe` for more ranks
//! than cores.) Rank 0 prints where the work ran, then one row per workload: its time on the
//! pool, the time of a plain loop on rank 0, and the speed-up.

use std::error::Error as StdError;
use std::hint::black_box;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, FnExecutor, MpiPool, ReturnWhen, as_completed, wait};

fn trivial(x: u64) -> u64 {
    black_box(x).wrapping_mul(31).wrapping_add(1)
}

/// About `iterations` steps of CPU work; returns something that depends on every step.
fn spin(iterations: u64) -> u64 {
    let mut x = 0_u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

/// Which process ran the task, after holding the rank for a moment so that every rank gets
/// some of the batch.
fn whereabouts(_: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(20));
    std::process::id()
}

fn fails_on_seven(x: u64) -> u64 {
    assert!(x != 7, "seven is not allowed");
    x
}

/// Prints one row of the table: times per item, and the speed-up of the pool.
fn row(name: &str, items: u64, pool: f64, sequential: f64) {
    let per = |seconds: f64| format!("{:.2} µs", seconds * 1e6 / items as f64);
    println!(
        "{name:<22} {:>12} {:>12} {:>8.2}x",
        per(pool),
        per(sequential),
        sequential / pool
    );
}

/// The median of `reps` timings of `run`, in seconds.
fn median(reps: usize, mut run: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn StdError>> {
    // Every rank runs the lines above this one; only rank 0 gets past it.
    let pool = MpiPool::init()?;
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = |full: u64| if quick { (full / 100).max(2) } else { full };
    let reps = if quick { 1 } else { 5 };
    println!(
        "rank 0 is pid {}; {} worker ranks",
        std::process::id(),
        pool.max_workers()
    );

    // Where the work runs: other processes than this one, every worker rank among them.
    let batch: Vec<_> = (0..4 * pool.max_workers() as u32)
        .map(|i| pool.submit_fn(whereabouts, i))
        .collect();
    let done = wait(&batch, None, ReturnWhen::AllCompleted);
    assert!(done.not_done.is_empty());
    let mut pids: Vec<u32> = batch
        .iter()
        .map(|future| future.result().copied())
        .collect::<Result<_, Error>>()?;
    pids.sort_unstable();
    pids.dedup();
    assert!(!pids.contains(&std::process::id()), "a task ran on rank 0");
    assert_eq!(
        pids.len(),
        pool.max_workers(),
        "every worker rank took work"
    );
    println!("tasks ran in pids {pids:?}");

    // Results, in order for map_fn, each item's panic its own.
    let items = scale(100_000);
    let mapped: Vec<Result<u64, Error>> = pool.map_fn(fails_on_seven, 0..items).collect();
    for (x, result) in (0..items).zip(&mapped) {
        match result {
            Ok(value) => assert_eq!(*value, x),
            Err(Error::Panicked { message }) => {
                assert_eq!(x, 7);
                assert!(message.contains("seven is not allowed") && message.contains("[on rank"));
            }
            Err(other) => return Err(other.clone().into()),
        }
    }
    println!("map_fn: {items} results in order, item 7 failed alone");
    let mut unordered: Vec<u64> = pool
        .map_fn_unordered(trivial, 0..items)
        .collect::<Result<_, Error>>()?;
    unordered.sort_unstable();
    assert!(
        unordered
            .iter()
            .eq((0..items).map(trivial).collect::<Vec<_>>().iter())
    );
    let futures: Vec<_> = (0..100).map(|x| pool.submit_fn(trivial, x)).collect();
    let total: u64 = as_completed(futures, None)
        .map(|future| future.and_then(|f| f.result().copied()))
        .sum::<Result<_, Error>>()?;
    assert_eq!(total, (0..100).map(trivial).sum::<u64>());
    println!("map_fn_unordered and as_completed: every result once");

    // The timings, against a plain loop on rank 0.
    let spin_steps = if quick { 10_000 } else { 2_000_000 };
    let round_trips = scale(10_000);
    let gather = scale(10_000);
    let spins = scale(3_200).min(32);
    println!(
        "\n{:<22} {:>12} {:>12} {:>9}",
        "workload", "MpiPool", "sequential", "speed-up"
    );
    let round_trip = median(reps, || {
        for i in 0..round_trips {
            assert_eq!(pool.submit_fn(trivial, i).into_result(), Ok(trivial(i)));
        }
    });
    let plain = median(reps, || {
        (0..round_trips).for_each(|i| {
            black_box(trivial(i));
        })
    });
    row("round trip", round_trips, round_trip, plain);

    let gathered = median(reps, || {
        let futures: Vec<_> = (0..gather).map(|i| pool.submit_fn(trivial, i)).collect();
        for (i, future) in (0..gather).zip(futures) {
            assert_eq!(future.into_result(), Ok(trivial(i)));
        }
    });
    let plain = median(reps, || {
        (0..gather).for_each(|i| {
            black_box(trivial(i));
        })
    });
    row("gather 10k", gather, gathered, plain);

    let n = scale(1_000_000);
    let expected = (0..n).map(trivial).fold(0, u64::wrapping_add);
    let mapped = median(reps, || {
        let sum = pool
            .map_fn(trivial, 0..n)
            .map(Result::unwrap)
            .fold(0, u64::wrapping_add);
        assert_eq!(sum, expected);
    });
    let plain = median(reps, || {
        black_box((0..n).map(trivial).fold(0, u64::wrapping_add));
    });
    row("map_fn 1M trivial", n, mapped, plain);

    let spun = median(reps, || {
        let steps = std::iter::repeat_n(spin_steps, spins as usize);
        let results: Vec<u64> = pool
            .map_fn(spin, steps)
            .chunksize(1)
            .map(Result::unwrap)
            .collect();
        assert!(results.iter().all(|&r| r == spin(spin_steps)));
    });
    let plain = median(reps, || {
        (0..spins).for_each(|_| {
            black_box(spin(spin_steps));
        })
    });
    row("cpu 32 spins (total)", 1, spun, plain);
    println!("\nall checks passed");
    Ok(())
}
