//! Waiting on many futures: `wait` with each `ReturnWhen`, and `as_completed` with a timeout.
//!
//! `cargo run --release --example wait_and_as_completed`
//!
//! Every task sleeps for a number of milliseconds and returns it, so what comes back when is
//! easy to follow. A time-out is never an error of the work: the futures left over keep
//! running, and here the pool waits for them when it is dropped at the end.

use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, Future, IoPool, ReturnWhen, as_completed, wait};

fn main() -> Result<(), Box<dyn Error>> {
    // Enough threads that every task of a scene runs at once.
    let pool = IoPool::new(8)?;
    let submit = |millis: &[u64]| -> Vec<Future<u64>> {
        millis
            .iter()
            .map(|&ms| pool.submit(move || nap(ms)))
            .collect()
    };

    println!("wait(FirstCompleted) on tasks of 300, 100 and 200 ms:");
    let start = Instant::now();
    let split = wait(&submit(&[300, 100, 200]), None, ReturnWhen::FirstCompleted);
    print_split(start, &split.done, &split.not_done);

    println!("\nwait(FirstException) on 100 ms, a task that panics at 150 ms, and 600 ms:");
    let start = Instant::now();
    let futures = vec![
        pool.submit(|| nap(100)),
        pool.submit(|| -> u64 {
            thread::sleep(Duration::from_millis(150));
            // Rust's panic hook prints this to stderr; the pool catches it into the future.
            panic!("disk full")
        }),
        pool.submit(|| nap(600)),
    ];
    let split = wait(&futures, None, ReturnWhen::FirstException);
    print_split(start, &split.done, &split.not_done);

    println!("\nwait(AllCompleted) with a 400 ms timeout on 100, 200 and 900 ms:");
    let start = Instant::now();
    let futures = submit(&[100, 200, 900]);
    let split = wait(
        &futures,
        Some(Duration::from_millis(400)),
        ReturnWhen::AllCompleted,
    );
    print_split(start, &split.done, &split.not_done);
    // A running task cannot be cancelled: `cancel` only stops tasks that have not started.
    println!("  cancel the 900 ms task? {}", split.not_done[0].cancel());

    println!("\nas_completed with a 500 ms timeout on 300, 100, 200 and 900 ms:");
    let start = Instant::now();
    let mut completed = as_completed(
        submit(&[300, 100, 200, 900]),
        Some(Duration::from_millis(500)),
    );
    for next in completed.by_ref() {
        match next {
            Ok(future) => println!("  {:>4} ms: {}", millis(start), describe(&future)),
            // The iterator yields one `Err(Timeout)` when the time is up, then ends.
            Err(error) => println!("  {:>4} ms: {error}", millis(start)),
        }
    }
    println!(
        "  {} (of {}) futures unfinished",
        completed.unfinished(),
        completed.total()
    );
    Ok(())
}

/// A task: sleep `ms` milliseconds, then return `ms`.
fn nap(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

fn millis(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

fn print_split(start: Instant, done: &[Future<u64>], not_done: &[Future<u64>]) {
    println!("  returned after {} ms", millis(start));
    let list =
        |futures: &[Future<u64>]| futures.iter().map(describe).collect::<Vec<_>>().join(", ");
    println!("  done:     [{}]", list(done));
    println!("  not done: [{}]", list(not_done));
}

/// A future's state in a few words: its value, its error, or "running".
fn describe(future: &Future<u64>) -> String {
    if !future.done() {
        return "running".into();
    }
    match future.result() {
        Ok(ms) => format!("{ms} ms"),
        Err(error) => format!("error: {error}"),
    }
}
