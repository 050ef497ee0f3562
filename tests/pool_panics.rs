//! One rule for a task's panic on every pool: by default it also goes through the panic hook,
//! which prints it on standard error (Rust's way), and `print_panics(false)` on any pool's
//! builder keeps it to the future's `Error::Panicked` (CPython's way).
//!
//! What a pool prints is only visible from outside the process (and a process worker prints
//! on its own standard error, the program's), so each case runs this test binary again with
//! [`CHILD`] naming the pool and the choice, and reads the child's standard error.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{CpuPool, Error, FnExecutor, IoPool, ProcessPool};

/// Set in the child to `<pool> <choice>`: what [`child`] builds.
const CHILD: &str = "POOL_PANICS_TEST_CHILD";

/// What every child's task panics with, and so what its standard error shows when it prints.
const MESSAGE: &str = "pool_panics: the task's own panic";

/// Bound on each child: building, one task, shutting down.
const BOUND: Duration = Duration::from_secs(60);

const POOLS: [&str; 3] = ["CpuPool", "IoPool", "ProcessPool"];

fn explode(_: u32) -> u32 {
    panic!("{MESSAGE}")
}

/// The child's side: one pool, built with the choice (`default` leaves the builder alone), one
/// panicking task, whose future must hold the panic whatever was printed.
fn child(spec: &str) {
    let (pool, choice) = spec.split_once(' ').expect("`<pool> <choice>`");
    let print = match choice {
        "default" => None,
        "print" => Some(true),
        "silent" => Some(false),
        other => panic!("unknown choice {other}"),
    };
    let outcome = match pool {
        "CpuPool" => {
            let mut builder = CpuPool::builder().num_threads(1);
            if let Some(print) = print {
                builder = builder.print_panics(print);
            }
            FnExecutor::submit_fn(&builder.build().unwrap(), explode, 1).into_result()
        }
        "IoPool" => {
            let mut builder = IoPool::builder().max_workers(1);
            if let Some(print) = print {
                builder = builder.print_panics(print);
            }
            FnExecutor::submit_fn(&builder.build().unwrap(), explode, 1).into_result()
        }
        "ProcessPool" => {
            let mut builder = ProcessPool::builder().max_workers(1);
            if let Some(print) = print {
                builder = builder.print_panics(print);
            }
            FnExecutor::submit_fn(&builder.build().unwrap(), explode, 1).into_result()
        }
        other => panic!("unknown pool {other}"),
    };
    match outcome {
        Err(Error::Panicked { message }) if message.starts_with(MESSAGE) => {}
        other => panic!("expected the task's panic, got {other:?}"),
    }
    println!("child done");
}

/// Runs the child for `pool` and `choice`; returns its standard error once it has exited and
/// every process holding that stream (a fork server, its workers) has closed it.
fn stderr_of(pool: &str, choice: &str) -> String {
    let mut running = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "every_pool_follows_one_rule", "--nocapture"])
        .env(CHILD, format!("{pool} {choice}"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = sender.send(text);
        });
        receiver
    };
    let stdout = read(Box::new(running.stdout.take().unwrap()));
    let stderr = read(Box::new(running.stderr.take().unwrap()));
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = running.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = running.kill();
            let _ = running.wait();
            panic!("{pool} {choice}: the child still runs after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let stdout = stdout
        .recv_timeout(left)
        .expect("the child's stdout closes");
    let stderr = stderr
        .recv_timeout(left)
        .expect("the child's stderr closes");
    assert!(
        status.success() && stdout.contains("child done"),
        "{pool} {choice}: the child failed with {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stderr
}

#[test]
fn every_pool_follows_one_rule() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    for pool in POOLS {
        for (choice, prints) in [("default", true), ("print", true), ("silent", false)] {
            let stderr = stderr_of(pool, choice);
            assert_eq!(
                stderr.contains(MESSAGE),
                prints,
                "{pool} with print_panics {choice}: standard error was\n{stderr}"
            );
            if prints {
                // Printed once, by the hook, and not by anything else as well.
                assert_eq!(
                    stderr.matches(MESSAGE).count(),
                    1,
                    "{pool} {choice}:\n{stderr}"
                );
            }
        }
    }
}
