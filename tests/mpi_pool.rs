//! MpiPool under a real `mpirun`: this test is its own MPI program. Run by `cargo test`
//! (feature `mpi`), it starts `mpirun -n 3` of itself once per scenario and checks what each
//! job printed and how it ended; run by mpirun with `--scenario=NAME`, it is that job.
//!
//! Scenarios check results, order, panics, serialization failures, shutdown and cancellation
//! on rank 0; the faults are checked from outside: a worker rank that dies ends the job with
//! a failure and no result, ranks that run different executables all refuse to start, a job
//! of one rank is refused, and MPI cannot be initialized twice. The example
//! `examples/mpi_pool.rs` is run the same way. Every job is bounded by [`BOUND`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::mpi::InitError;
use concurrent_futures::{Error, FnExecutor, MpiPool, ReturnWhen, State, as_completed, wait};
use serde::{Deserialize, Serialize, Serializer};

/// How long one job may take, start-up included, before the test kills it and fails.
const BOUND: Duration = Duration::from_secs(120);

// ---- tasks (functions of this executable, called on the worker ranks) ----

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn double(x: u64) -> u64 {
    x * 2
}

fn panics_on_odd(x: u64) -> u64 {
    assert!(x.is_multiple_of(2), "odd input {x}");
    x
}

fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

/// A value that refuses to be serialized (on rank 0, before anything is sent).
struct Unsendable;

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

impl<'de> Deserialize<'de> for Unsendable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unsendable)
    }
}

fn takes_unsendable(_: Unsendable) -> u8 {
    1
}

/// A result that cannot be serialized, on the worker rank.
fn returns_unsendable(_: ()) -> Unsendable {
    Unsendable
}

fn dies(_: ()) -> u8 {
    std::process::abort()
}

// ---- the scenarios, run on every rank of a job ----

fn results_order_and_errors() -> Result<(), Box<dyn std::error::Error>> {
    let pool = MpiPool::init()?;
    assert_eq!(pool.max_workers(), 2);
    let me = std::process::id();
    let pids: Vec<u32> = (0..8)
        .map(|_| pool.submit_fn(pid, ()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|f| f.into_result())
        .collect::<Result<_, Error>>()?;
    assert!(pids.iter().all(|&p| p != me), "a task ran on rank 0");

    // map_fn: in order, every chunk size and window, panics per item.
    for (chunksize, buffersize) in [(1, 1), (3, 2), (64, 8)] {
        let out: Vec<Result<u64, Error>> = pool
            .map_fn(panics_on_odd, 0..200)
            .chunksize(chunksize)
            .buffersize(buffersize)
            .collect();
        assert_eq!(out.len(), 200);
        for (x, result) in (0..200).zip(out) {
            match result {
                Ok(value) => assert_eq!(value, x),
                Err(Error::Panicked { message }) => {
                    assert!(x % 2 == 1, "item {x} failed");
                    assert!(message.contains(&format!("odd input {x}")), "{message}");
                    assert!(message.contains("[on rank "), "{message}");
                }
                Err(other) => panic!("item {x}: {other}"),
            }
        }
    }
    let mut unordered: Vec<u64> = pool
        .map_fn_unordered(double, 0..1000)
        .collect::<Result<_, Error>>()?;
    unordered.sort_unstable();
    assert_eq!(unordered, (0..1000).map(double).collect::<Vec<_>>());

    // A single task's panic names the rank; the pool goes on.
    match pool.submit_fn(panics_on_odd, 3).into_result() {
        Err(Error::Panicked { message }) => {
            assert!(message.starts_with("odd input 3 [on rank "), "{message}");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    // Serialization fails the future alone, on either side.
    assert!(matches!(
        pool.submit_fn(takes_unsendable, Unsendable).into_result(),
        Err(Error::Serialization { .. })
    ));
    assert!(matches!(
        pool.submit_fn(returns_unsendable, ()).into_result(),
        Err(Error::Serialization { .. })
    ));
    assert_eq!(pool.submit_fn(double, 21).into_result(), Ok(42));

    // wait and as_completed see every future once.
    let futures: Vec<_> = (0..50).map(|x| pool.submit_fn(double, x)).collect();
    let done = wait(&futures, Some(BOUND), ReturnWhen::AllCompleted);
    assert_eq!((done.done.len(), done.not_done.len()), (50, 0));
    drop(done);
    let mut seen: Vec<u64> = as_completed(futures, Some(BOUND))
        .map(|f| f.and_then(|f| f.into_result()))
        .collect::<Result<_, Error>>()?;
    seen.sort_unstable();
    assert_eq!(seen, (0..50).map(double).collect::<Vec<_>>());
    println!("ok results_order_and_errors");
    Ok(())
}

fn shutdown_cancels_what_was_not_sent() -> Result<(), Box<dyn std::error::Error>> {
    let pool = MpiPool::builder().pipeline_depth(1).init()?;
    // Two ranks, one task each in flight: the first two start, the rest stay queued.
    let futures: Vec<_> = (0..10).map(|_| pool.submit_fn(sleep_ms, 300)).collect();
    let started = Instant::now();
    while futures.iter().filter(|f| f.running()).count() < 2 {
        assert!(started.elapsed() < BOUND, "the first tasks never started");
        thread::sleep(Duration::from_millis(5));
    }
    pool.shutdown(false, true);
    assert_eq!(
        pool.submit_fn(double, 1).into_result(),
        Err(Error::Shutdown)
    );
    let states: Vec<State> = futures
        .iter()
        .map(|f| {
            let _ = f.result_timeout(BOUND);
            f.state()
        })
        .collect();
    let finished = states.iter().filter(|&&s| s == State::Finished).count();
    let cancelled = states.iter().filter(|&&s| s == State::Cancelled).count();
    assert_eq!((finished, cancelled), (2, 8), "{states:?}");
    for future in futures.iter().filter(|f| f.state() == State::Finished) {
        assert_eq!(future.result().copied(), Ok(300));
    }
    // Shutting down again, now waiting, returns once the workers are gone.
    pool.shutdown(true, false);
    println!("ok shutdown_cancels_what_was_not_sent");
    Ok(())
}

fn a_second_init_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let pool = MpiPool::init()?;
    assert_eq!(pool.submit_fn(double, 2).into_result(), Ok(4));
    drop(pool);
    match MpiPool::init() {
        Err(InitError::AlreadyInitialized) => {}
        other => panic!("expected AlreadyInitialized, got {other:?}"),
    }
    println!("ok a_second_init_is_refused");
    Ok(())
}

fn a_rank_dies() -> Result<(), Box<dyn std::error::Error>> {
    let pool = MpiPool::init()?;
    let outcome = pool.submit_fn(dies, ()).into_result();
    // Never reached: the job ends while this waits.
    println!("a result came back after a rank died: {outcome:?}");
    Ok(())
}

fn only_init() -> Result<(), Box<dyn std::error::Error>> {
    match MpiPool::init() {
        Ok(_) => println!("init succeeded"),
        Err(error) => println!("init failed: {error}"),
    }
    Ok(())
}

// ---- the driver, run by cargo test ----

/// What a job printed and how it ended.
struct Job {
    success: bool,
    stdout: String,
    stderr: String,
}

/// `mpirun` with one program per group of ranks (`-n ranks program arg`, groups joined by
/// `:`), allowed to run as root and with more ranks than cores, as CI and small machines need.
fn mpirun(groups: &[(&str, &Path, &str)]) -> Command {
    let launcher = std::env::var("MPIRUN").unwrap_or_else(|_| "mpirun".into());
    let mut command = Command::new(launcher);
    for (i, (ranks, program, arg)) in groups.iter().enumerate() {
        if i > 0 {
            command.arg(":");
        }
        command.args(["-n", ranks]).arg(program).arg(arg);
    }
    command
}

/// Runs `command` to its end, killing it (and failing) after [`BOUND`].
fn finish(mut command: Command) -> Job {
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .expect("mpirun starts (is an MPI installed?)");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job {command:?} still ran after {BOUND:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Job {
        success: status.success(),
        stdout: stdout.join().expect("reader"),
        stderr: stderr.join().expect("reader"),
    }
}

fn run_scenario(me: &Path, name: &str) -> Job {
    finish(mpirun(&[("3", me, &format!("--scenario={name}"))]))
}

fn assert_passes(job: &Job, line: &str) {
    assert!(
        job.success && job.stdout.lines().any(|l| l == line),
        "expected success and {line:?}\n--- stdout\n{}\n--- stderr\n{}",
        job.stdout,
        job.stderr
    );
}

/// The example, built with the same profile and features as this test.
fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "--features",
            "mpi",
            "--example",
            "mpi_pool",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    let me = std::env::current_exe().expect("own path");
    // target/<profile>/deps/this-test → target/<profile>/examples/mpi_pool
    me.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("examples/mpi_pool")
}

/// A named check of the driver.
type Check = (&'static str, Box<dyn Fn()>);

fn drive() {
    let me = std::env::current_exe().expect("own path");
    let mut checks: Vec<Check> = Vec::new();
    for name in [
        "results_order_and_errors",
        "shutdown_cancels_what_was_not_sent",
        "a_second_init_is_refused",
    ] {
        let me = me.clone();
        checks.push((
            name,
            Box::new(move || assert_passes(&run_scenario(&me, name), &format!("ok {name}"))),
        ));
    }
    let me_dies = me.clone();
    checks.push((
        "a_rank_dies_ends_the_job",
        Box::new(move || {
            let job = run_scenario(&me_dies, "a_rank_dies");
            assert!(!job.success, "the job must fail\n{}", job.stdout);
            assert!(
                !job.stdout.contains("a result came back"),
                "no result after a death\n{}",
                job.stdout
            );
        }),
    ));
    let me_copy = me.clone();
    checks.push((
        "different_executables_are_refused_on_every_rank",
        Box::new(move || {
            // The same code with one more byte: a different executable to the hash.
            let dir = tempfile::tempdir().expect("temporary folder");
            let other = dir.path().join("other");
            let mut bytes = std::fs::read(&me_copy).expect("own bytes");
            bytes.push(0);
            std::fs::write(&other, bytes).expect("copy");
            let mut permissions = std::fs::metadata(&me_copy).expect("meta").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
            std::fs::set_permissions(&other, permissions).expect("chmod");
            let job = finish(mpirun(&[
                ("1", &me_copy, "--scenario=only_init"),
                ("2", &other, "--scenario=only_init"),
            ]));
            let refused = job
                .stdout
                .lines()
                .filter(|l| l.starts_with("init failed") && l.contains("ranks [1, 2]"))
                .count();
            assert_eq!(
                refused, 3,
                "every rank refuses\n{}\n{}",
                job.stdout, job.stderr
            );
        }),
    ));
    let me_single = me.clone();
    checks.push((
        "a_job_of_one_rank_is_refused",
        Box::new(move || {
            let mut single = Command::new(&me_single);
            single.arg("--scenario=only_init");
            let job = finish(single);
            assert!(
                job.stdout.contains("init failed: the MPI job has one rank"),
                "{}\n{}",
                job.stdout,
                job.stderr
            );
        }),
    ));
    checks.push((
        "the_example_runs_and_checks_its_results",
        Box::new(|| {
            let example = example_binary();
            let job = finish(mpirun(&[("3", &example, "--quick")]));
            assert_passes(&job, "all checks passed");
            assert!(job.stdout.contains("map_fn: 1000 results in order"));
        }),
    ));
    let mut failed = Vec::new();
    for (name, check) in &checks {
        print!("test {name} ... ");
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    println!("test result: ok. {} passed", checks.len());
}

fn main() {
    let scenario =
        std::env::args().find_map(|arg| arg.strip_prefix("--scenario=").map(String::from));
    let Some(scenario) = scenario else {
        return drive();
    };
    let outcome = match scenario.as_str() {
        "results_order_and_errors" => results_order_and_errors(),
        "shutdown_cancels_what_was_not_sent" => shutdown_cancels_what_was_not_sent(),
        "a_second_init_is_refused" => a_second_init_is_refused(),
        "a_rank_dies" => a_rank_dies(),
        "only_init" => only_init(),
        other => panic!("no scenario {other}"),
    };
    if let Err(error) = outcome {
        eprintln!("scenario {scenario} failed: {error}");
        std::process::exit(1);
    }
}
