//! The first program to run: submit a slow greeting, do something else, read its result.
//!
//! `cargo run --example quickstart`

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Promise};

fn slow_greeting(name: &str) -> String {
    thread::sleep(Duration::from_millis(300));
    format!("Hello, {name}!")
}

fn main() -> Result<(), Error> {
    let start = Instant::now();
    // The executors of this crate do exactly this for you: a worker thread runs the job and
    // completes the future through its promise.
    let (promise, future) = Promise::new();
    thread::spawn(move || promise.run(|| slow_greeting("world")));

    println!("submitted; done yet? {}", future.done());
    match future.result_timeout(Duration::from_millis(10)) {
        Err(Error::Timeout) => println!("not ready after 10 ms, and that is fine"),
        other => println!("unexpectedly early: {other:?}"),
    }
    future.add_done_callback(|f| println!("callback: finished with {:?}", f.result()));

    let greeting = future.into_result()?;
    println!("{greeting} (after {:?})", start.elapsed());
    Ok(())
}
