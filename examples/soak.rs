//! A soak: a mixed workload with faults on every pool for a while, then a check that nothing
//! was lost and nothing leaked. Linux only (it reads `/proc`).
//!
//! `cargo run --release --example soak -- --seconds 60 [--seed N] [--skip KIND,KIND]
//! [--stall-seconds 60]`
//!
//! Three driver threads run at once, one per pool type, each in rounds chosen by its own
//! xorshift generator (seeded from `--seed`, printed at the start, so a failing run can be
//! replayed as far as the scheduling allows):
//!
//! * `cpu` and `io`: batches on a [`CpuPool`] and an [`IoPool`] with panics, random cancels,
//!   `wait` and `as_completed` with short timeouts, tasks waiting on another pool's future,
//!   maps dropped midway (some with a deadline), and pools shut down with futures pending,
//!   dropped and rebuilt;
//! * `process`: the same on a [`ProcessPool`] (half of them with a `task_timeout`), plus
//!   workers that kill themselves, tasks that outrun the timeout, `kill_workers` and
//!   `terminate_workers` with tasks queued, and now and then `max_tasks_per_child`;
//! * `fork`: [`ProcessPool::fork`] children that return, panic or abort;
//! * `fork-large`: `fork` children returning 1 MiB (more than a pipe holds);
//! * `fork-exit`: `fork` children that call `std::process::exit(3)`.
//!
//! `--skip` leaves out any of these kinds (comma-separated).
//!
//! Every future is settled with a bound ([`LOST_AFTER`]); one that is not done by then is
//! *lost*. An outcome the round could not have produced (a wrong value, or an error its
//! faults do not explain, such as `Broken` on a healthy pool) is *wrong*. A watchdog thread
//! ends the program with status 2 if no future settles for `--stall-seconds`, so a hang fails
//! instead of hanging.
//!
//! RSS, threads, open fds and descendant processes are measured after a warm-up round (which
//! starts what stays started: the fork server, the global rayon pool) with every pool
//! dropped, once the counts hold still, and again at the end once every pool is dropped and the counts have had up to
//! [`SETTLE`] to come back (rayon's threads exit after their pool is dropped). Threads, fds and
//! descendants must be back to their start; RSS may grow by [`RSS_SLACK_KIB`] (the allocator keeps
//! freed memory). The exit status is 0 only if nothing was lost, wrong or leaked; the last line
//! says `soak: PASS` or `soak: FAIL` and why.

use std::collections::HashMap;
use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

// The process pool is Linux only; elsewhere the soak builds and drives the thread pools alone.
#[cfg(target_os = "linux")]
use concurrent_futures::ProcessPool;
#[cfg(target_os = "linux")]
use concurrent_futures::process::{self, OnWorkerDeath};
use concurrent_futures::{
    CpuPool, Error, Executor, FnExecutor, Future, IoPool, ReturnWhen, as_completed, wait,
};

/// A future not done this long after the round started settling it is lost. Far above any
/// task of the soak (the longest sleeps [`OUTRUN`] under a [`TASK_TIMEOUT`] of 2 s).
const LOST_AFTER: Duration = Duration::from_secs(30);
/// How long the end's counts may take to come back to the start's.
const SETTLE: Duration = Duration::from_secs(20);
/// How much RSS may grow over the run: the allocator keeps some freed memory, and the 1 MiB
/// results of `fork-large` pass through it.
const RSS_SLACK_KIB: u64 = 64 * 1024;
/// The process pools' task timeout, and how long a task that outruns it sleeps.
const TASK_TIMEOUT: Duration = Duration::from_secs(2);
const OUTRUN: Duration = Duration::from_secs(10);
/// The message of every panic the soak plans, which its panic hook keeps quiet.
const PLANNED: &str = "soak: planned panic";

const KINDS: [&str; 6] = ["cpu", "io", "process", "fork", "fork-large", "fork-exit"];

fn main() -> ExitCode {
    // Planned panics are counted, not printed. Process workers are fresh programs that do not
    // run this: their pools are built with `print_panics(false)` instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info.payload().downcast_ref::<&str>() == Some(&PLANNED);
        if !planned {
            default_hook(info);
        }
    }));
    #[cfg(target_os = "linux")]
    if let Err(error) = process::init() {
        eprintln!("soak: could not start the fork server: {error}");
        return ExitCode::from(2);
    }
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "soak: {} s, seed {} (replay with --seed {}), kinds: {}",
        options.seconds,
        options.seed,
        options.seed,
        KINDS
            .iter()
            .filter(|kind| options.runs(kind))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let tally = Arc::new(Tally::default());
    watchdog(
        tally.clone(),
        Duration::from_secs(options.stall_seconds),
        options.seed,
    );

    // Warm-up: one short round of each driver, then every pool is dropped; and what stays for
    // the program's life once made: the global rayon pool, and the lifeline pipe of `fork`
    // children (made at the first `fork`, which a short round may not reach).
    let _ = CpuPool::global().submit(|| ()).result_timeout(LOST_AFTER);
    #[cfg(target_os = "linux")]
    if let Ok(pool) = ProcessPool::new(1) {
        let _ = pool.fork(|| 0_u8).result_timeout(LOST_AFTER);
    }
    let warm_up = Instant::now() + Duration::from_millis(1);
    run_drivers(&options, &tally, warm_up, 0);
    let start = still_usage();
    let after_warm_up = tally.snapshot();
    println!("start: {start}");

    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    run_drivers(&options, &tally, deadline, 1);

    let end = settled_usage(&start);
    println!("end:   {end}");
    let counts = tally.snapshot();
    println!("{counts}");
    println!(
        "(of which the warm-up: {} submitted)",
        after_warm_up.submitted
    );

    let mut failures = Vec::new();
    if counts.lost > 0 {
        failures.push(format!("{} lost futures", counts.lost));
    }
    if counts.wrong > 0 {
        failures.push(format!("{} wrong outcomes", counts.wrong));
    }
    if counts.submitted != counts.values + counts.errors() + counts.lost {
        failures.push("the counts do not add up".to_owned());
    }
    failures.extend(start.leaks(&end));
    if failures.is_empty() {
        println!(
            "soak: PASS: {} futures in {} s, 0 lost, 0 wrong, no leak (seed {})",
            counts.submitted, options.seconds, options.seed
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "soak: FAIL: {} (seed {})",
            failures.join("; "),
            options.seed
        );
        ExitCode::FAILURE
    }
}

const USAGE: &str = "usage: soak [--seconds N] [--seed N] [--skip KIND,KIND] [--stall-seconds N]
kinds: cpu, io, process, fork, fork-large, fork-exit";

struct Options {
    seconds: u64,
    seed: u64,
    skip: Vec<String>,
    stall_seconds: u64,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut options = Options {
            seconds: 10,
            seed: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |t| t.as_nanos() as u64),
            skip: Vec::new(),
            stall_seconds: 60,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
            match flag.as_str() {
                "--seconds" => options.seconds = number()?,
                "--seed" => options.seed = number()?,
                "--stall-seconds" => options.stall_seconds = number()?,
                "--skip" => {
                    for kind in value.split(',').filter(|k| !k.is_empty()) {
                        if !KINDS.contains(&kind) {
                            return Err(format!("no kind {kind:?}"));
                        }
                        options.skip.push(kind.to_owned());
                    }
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(options)
    }

    fn runs(&self, kind: &str) -> bool {
        !self.skip.iter().any(|k| k == kind)
    }
}

/// Runs the three drivers until `deadline` (each finishes the round it is in), then joins
/// them: every pool they built is dropped by then.
fn run_drivers(options: &Options, tally: &Arc<Tally>, deadline: Instant, phase: u64) {
    let runs = |kind| options.runs(kind);
    let drivers = [
        ("cpu", Driver::cpu_rounds as fn(&mut Driver)),
        ("io", Driver::io_rounds),
        #[cfg(target_os = "linux")]
        ("process", Driver::process_rounds),
    ];
    let kinds = ProcessKinds {
        tasks: runs("process"),
        small: runs("fork"),
        large: runs("fork-large"),
        exit: runs("fork-exit"),
    };
    let handles: Vec<_> = (0_u64..)
        .zip(drivers)
        .map(|(i, (name, body))| {
            let mut driver = Driver {
                rng: Rng::new(options.seed ^ (phase << 32 | i)),
                tally: tally.clone(),
                deadline,
                enabled: match name {
                    "process" => kinds.any(),
                    kind => runs(kind),
                },
                kinds,
            };
            thread::Builder::new()
                .name(format!("soak-{name}"))
                .spawn(move || body(&mut driver))
                .expect("a driver thread")
        })
        .collect();
    for handle in handles {
        if handle.join().is_err() {
            // A driver's own assertion failed: that is a bug of the soak or an impossible
            // outcome, already printed by the panic hook.
            tally.wrong.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// xorshift64* (Vigna): small, seedable, good enough to choose what to do next.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that seeds 0, 1, 2 give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `range` (half-open).
    fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.range(0..100) < percent
    }
}

/// The kinds of error a future may end with, counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Panicked,
    WorkerDied,
    TaskTimeout,
    Cancelled,
    Shutdown,
    Broken,
    Other,
}

impl Kind {
    fn of(error: &Error) -> Kind {
        match error {
            Error::Panicked { .. } => Kind::Panicked,
            Error::WorkerDied { .. } => Kind::WorkerDied,
            Error::TaskTimeout => Kind::TaskTimeout,
            Error::Cancelled => Kind::Cancelled,
            Error::Shutdown => Kind::Shutdown,
            Error::Broken { .. } => Kind::Broken,
            _ => Kind::Other,
        }
    }
}

/// What a future may end with: its value (if it may succeed) and the errors its faults explain.
struct Expect<T> {
    value: Option<T>,
    errors: Vec<Kind>,
}

impl<T> Expect<T> {
    fn value(value: T) -> Self {
        Expect {
            value: Some(value),
            errors: Vec::new(),
        }
    }

    fn error(kind: Kind) -> Self {
        Expect {
            value: None,
            errors: vec![kind],
        }
    }

    fn or(mut self, kind: Kind) -> Self {
        self.errors.push(kind);
        self
    }
}

/// How many lost and wrong outcomes are described on standard error; the rest are only
/// counted, so that a broken pool does not bury the summary.
const MESSAGES: u64 = 20;
static MESSAGES_PRINTED: AtomicU64 = AtomicU64::new(0);

/// Prints one message about a lost or wrong outcome, up to [`MESSAGES`] of them.
fn complain(what: fmt::Arguments<'_>) {
    match MESSAGES_PRINTED.fetch_add(1, Ordering::SeqCst) {
        n if n < MESSAGES => eprintln!("soak: {what}"),
        MESSAGES => eprintln!("soak: (further lost or wrong outcomes are only counted)"),
        _ => {}
    }
}

/// Every count of the run, shared by the drivers and read by the watchdog.
#[derive(Default)]
struct Tally {
    submitted: AtomicU64,
    values: AtomicU64,
    errors: Mutex<HashMap<Kind, u64>>,
    lost: AtomicU64,
    wrong: AtomicU64,
    /// Items handed out by maps that were dropped midway or ended by their deadline.
    map_items: AtomicU64,
    maps: AtomicU64,
    pools_built: AtomicU64,
    /// `fork` children started, and how many of them had a 1 MiB result.
    forks: AtomicU64,
    large_forks: AtomicU64,
}

impl Tally {
    /// Waits for `future` until `deadline` and counts its outcome against `expect`.
    fn settle<T: PartialEq + fmt::Debug>(
        &self,
        future: Future<T>,
        expect: &Expect<T>,
        deadline: Instant,
        what: &str,
    ) {
        let left = deadline.saturating_duration_since(Instant::now());
        match future.result_timeout(left) {
            Err(Error::Timeout) if !future.done() => {
                self.lost.fetch_add(1, Ordering::SeqCst);
                complain(format_args!("lost a future: {what} ({future:?})"));
            }
            Ok(value) => {
                self.values.fetch_add(1, Ordering::SeqCst);
                if expect.value.as_ref() != Some(value) {
                    self.wrong.fetch_add(1, Ordering::SeqCst);
                    let mut text = format!("{value:?}");
                    text.truncate(200);
                    complain(format_args!("wrong value for {what}: {text}"));
                }
            }
            Err(error) => {
                let kind = Kind::of(&error);
                *self.errors.lock().unwrap().entry(kind).or_default() += 1;
                if !expect.errors.contains(&kind) {
                    self.wrong.fetch_add(1, Ordering::SeqCst);
                    complain(format_args!("unexpected error for {what}: {error}"));
                }
            }
        }
    }

    /// Settles a round's futures with one bound for all of them.
    fn settle_all<T: PartialEq + fmt::Debug>(
        &self,
        futures: Vec<(Future<T>, Expect<T>)>,
        what: &str,
    ) {
        let deadline = Instant::now() + LOST_AFTER;
        for (future, expect) in futures {
            self.settle(future, &expect, deadline, what);
        }
    }

    fn wrong(&self, what: fmt::Arguments<'_>) {
        self.wrong.fetch_add(1, Ordering::SeqCst);
        complain(format_args!("wrong: {what}"));
    }

    fn snapshot(&self) -> Counts {
        Counts {
            submitted: self.submitted.load(Ordering::SeqCst),
            values: self.values.load(Ordering::SeqCst),
            errors: self.errors.lock().unwrap().clone(),
            lost: self.lost.load(Ordering::SeqCst),
            wrong: self.wrong.load(Ordering::SeqCst),
            map_items: self.map_items.load(Ordering::SeqCst),
            maps: self.maps.load(Ordering::SeqCst),
            pools_built: self.pools_built.load(Ordering::SeqCst),
            forks: self.forks.load(Ordering::SeqCst),
            large_forks: self.large_forks.load(Ordering::SeqCst),
        }
    }

    /// What the watchdog watches: any settled future or handed-out map item.
    fn progress(&self) -> u64 {
        self.values.load(Ordering::SeqCst)
            + self.errors.lock().unwrap().values().sum::<u64>()
            + self.lost.load(Ordering::SeqCst)
            + self.map_items.load(Ordering::SeqCst)
    }
}

struct Counts {
    submitted: u64,
    values: u64,
    errors: HashMap<Kind, u64>,
    lost: u64,
    wrong: u64,
    map_items: u64,
    maps: u64,
    pools_built: u64,
    forks: u64,
    large_forks: u64,
}

impl Counts {
    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut errors: Vec<_> = self.errors.iter().collect();
        errors.sort_by_key(|(kind, _)| format!("{kind:?}"));
        let errors: Vec<String> = errors
            .iter()
            .map(|(kind, n)| format!("{kind:?} {n}"))
            .collect();
        write!(
            f,
            "submitted {} = values {} + errors {} ({}) + lost {}; wrong {}; \
             {} map items from {} maps dropped midway; {} pools built; {} fork children ({} with 1 MiB)",
            self.submitted,
            self.values,
            self.errors(),
            errors.join(", "),
            self.lost,
            self.wrong,
            self.map_items,
            self.maps,
            self.pools_built,
            self.forks,
            self.large_forks
        )
    }
}

/// Ends the program if nothing settles for `stall`: a hang must fail the soak, not hang it.
fn watchdog(tally: Arc<Tally>, stall: Duration, seed: u64) {
    thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(move || {
            let mut last = (tally.progress(), Instant::now());
            loop {
                thread::sleep(Duration::from_secs(1));
                let now = tally.progress();
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > stall {
                    println!("{}", tally.snapshot());
                    println!("soak: FAIL: no future settled for {stall:?}: a hang (seed {seed})");
                    std::process::exit(2);
                }
            }
        })
        .expect("the watchdog thread");
}

/// What the process driver runs: tasks (`process`), and which `fork` kinds.
#[derive(Clone, Copy)]
struct ProcessKinds {
    tasks: bool,
    small: bool,
    large: bool,
    exit: bool,
}

impl ProcessKinds {
    fn any(&self) -> bool {
        self.tasks || self.small || self.large || self.exit
    }
}

/// One driver thread's state.
struct Driver {
    rng: Rng,
    tally: Arc<Tally>,
    /// Rounds start until then; the first round always runs (the warm-up).
    deadline: Instant,
    /// Whether this driver's kind was not skipped.
    enabled: bool,
    kinds: ProcessKinds,
}

/// What every task computes from `x` (a little arithmetic, so that tasks overlap), or a
/// planned panic.
fn cpu_task(x: u64, panic: bool) -> u64 {
    if panic {
        std::panic::panic_any(PLANNED);
    }
    (0..x % 1000).fold(x, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// [`cpu_task`] after a sleep of `sleep_us` microseconds (a task waiting on I/O).
fn io_task(x: u64, panic: bool, sleep_us: u64) -> u64 {
    thread::sleep(Duration::from_micros(sleep_us));
    cpu_task(x, panic)
}

impl Driver {
    /// Runs `round` until the deadline, at least once.
    fn rounds(&mut self, mut round: impl FnMut(&mut Self)) {
        if !self.enabled {
            return;
        }
        loop {
            round(self);
            if Instant::now() >= self.deadline {
                break;
            }
        }
    }

    fn cpu_rounds(&mut self) {
        let helper = IoPool::new(2).expect("a pool of 1 to 8 threads");
        let mut pool: Option<CpuPool> = None;
        self.rounds(|d| {
            let cpu = pool.get_or_insert_with(|| {
                d.tally.pools_built.fetch_add(1, Ordering::SeqCst);
                CpuPool::new(d.rng.range(1..4) as usize).expect("a pool of 1 to 8 threads")
            });
            d.executor_round(cpu, 0, Some(&helper));
            if d.rng.percent(5) {
                d.executor_round(&CpuPool::global(), 0, None);
            }
            d.map_round(cpu, 0);
            if d.rng.percent(25) {
                d.drop_pool(pool.take().expect("built above"));
            }
        });
    }

    fn io_rounds(&mut self) {
        let mut pool: Option<IoPool> = None;
        self.rounds(|d| {
            let io = pool.get_or_insert_with(|| {
                d.tally.pools_built.fetch_add(1, Ordering::SeqCst);
                IoPool::new(d.rng.range(1..9) as usize).expect("a pool of 1 to 8 threads")
            });
            d.executor_round(io, 2000, None);
            d.map_round(io, 500);
            if d.rng.percent(25) {
                d.drop_pool(pool.take().expect("built above"));
            }
        });
    }

    /// A batch of tasks on `pool` (sleeping up to `sleep_us` each) with panics, cancels, a
    /// `wait` and an `as_completed` with short timeouts, and some tasks that wait on a future
    /// of `helper`; then every future is settled.
    fn executor_round<E: Executor>(&mut self, pool: &E, sleep_us: u64, helper: Option<&IoPool>) {
        let n = self.rng.range(1..150);
        let mut futures = Vec::new();
        for _ in 0..n {
            let x = self.rng.next() % 10_000;
            let panic = self.rng.percent(5);
            let sleep = if sleep_us > 0 {
                self.rng.range(0..sleep_us)
            } else {
                0
            };
            let expect = if panic {
                Expect::error(Kind::Panicked)
            } else {
                Expect::value(cpu_task(x, false))
            };
            let future = match helper {
                Some(helper) if self.rng.percent(10) => {
                    // A task blocked on another pool's future (a helping wait on a CpuPool).
                    let inner = helper.submit(move || io_task(x, false, sleep));
                    pool.submit(move || match inner.into_result() {
                        Ok(value) if value == cpu_task(x, false) => cpu_task(x, panic),
                        // Counted as a wrong value.
                        _ => u64::MAX,
                    })
                }
                _ => pool.submit(move || io_task(x, panic, sleep)),
            };
            self.enlist(&mut futures, future, expect);
        }
        self.observe(&futures);
        self.tally.settle_all(futures, "a thread-pool task");
    }

    /// Counts a submitted future, cancels one in ten, and adds it to the round with what it
    /// may end as.
    fn enlist<T>(
        &mut self,
        futures: &mut Vec<(Future<T>, Expect<T>)>,
        future: Future<T>,
        expect: Expect<T>,
    ) {
        self.tally.submitted.fetch_add(1, Ordering::SeqCst);
        let expect = if self.rng.percent(10) {
            future.cancel();
            expect.or(Kind::Cancelled)
        } else {
            expect
        };
        futures.push((future, expect));
    }

    /// `wait` or `as_completed` with a short timeout on a round's futures, checking what they
    /// report (the futures are settled afterwards either way).
    fn observe<T: Send + Sync + 'static>(&mut self, futures: &[(Future<T>, Expect<T>)]) {
        let handles: Vec<Future<T>> = futures.iter().map(|(f, _)| f.clone()).collect();
        let timeout = Duration::from_millis(self.rng.range(0..50));
        match self.rng.range(0..4) {
            0 => {
                let when = [
                    ReturnWhen::FirstCompleted,
                    ReturnWhen::FirstException,
                    ReturnWhen::AllCompleted,
                ][self.rng.range(0..3) as usize];
                let split = wait(&handles, Some(timeout), when);
                if split.done.len() + split.not_done.len() != handles.len()
                    || !split.done.iter().all(Future::done)
                {
                    self.tally
                        .wrong(format_args!("wait({when:?}) split {split:?}"));
                }
            }
            1 => {
                let mut yielded = 0;
                let mut timed_out = false;
                for item in as_completed(handles.clone(), Some(timeout)) {
                    match item {
                        Ok(future) if future.done() && !timed_out => yielded += 1,
                        Err(Error::Timeout) if !timed_out => timed_out = true,
                        other => self.tally.wrong(format_args!(
                            "as_completed gave {other:?} (timed out: {timed_out})"
                        )),
                    }
                }
                if yielded > handles.len() || (!timed_out && yielded != handles.len()) {
                    self.tally.wrong(format_args!(
                        "as_completed yielded {yielded} of {} (timed out: {timed_out})",
                        handles.len()
                    ));
                }
            }
            _ => {}
        }
    }

    /// A map (ordered or not, with a random chunk size, window and sometimes a deadline)
    /// dropped after a few items; then a task on the same pool must still run.
    fn map_round<E: Executor>(&mut self, pool: &E, sleep_us: u64) {
        let len = self.rng.range(1..2000);
        let take = self.rng.range(0..len) as usize;
        let chunk = self.rng.range(1..20) as usize;
        let window = self.rng.range(1..10) as usize;
        let deadline = self
            .rng
            .percent(20)
            .then(|| Duration::from_millis(self.rng.range(0..200)));
        let sleep = if sleep_us > 0 {
            self.rng.range(0..sleep_us)
        } else {
            0
        };
        let ordered = self.rng.percent(50);
        let f = move |x: u64| io_task(x, x.is_multiple_of(97), sleep);
        let tally = &self.tally;
        let check = |index: u64, item: Result<u64, Error>, timed_out: &mut bool| match item {
            Ok(v) if v == cpu_task(index, false) && !index.is_multiple_of(97) => {}
            Err(Error::Panicked { .. }) if index.is_multiple_of(97) => {}
            Err(Error::Timeout) if deadline.is_some() && !*timed_out => *timed_out = true,
            other => tally.wrong(format_args!("map item {index}: {other:?}")),
        };
        let mut timed_out = false;
        let mut taken = 0;
        if ordered {
            let mut map = pool.map(f, 0..len).chunksize(chunk).buffersize(window);
            if let Some(deadline) = deadline {
                map = map.timeout(deadline);
            }
            for (index, item) in (0..).zip(map.take(take)) {
                check(index, item, &mut timed_out);
                taken += 1;
            }
        } else {
            let mut map = pool
                .map_unordered(move |x: u64| (x, f(x)), 0..len)
                .chunksize(chunk)
                .buffersize(window);
            if let Some(deadline) = deadline {
                map = map.timeout(deadline);
            }
            for item in map.take(take) {
                match item {
                    Ok((index, value)) => check(index, Ok(value), &mut timed_out),
                    // An unordered item's panic does not say its index.
                    Err(Error::Panicked { .. }) => {}
                    Err(error) => check(u64::MAX, Err(error), &mut timed_out),
                }
                taken += 1;
            }
        }
        self.tally.map_items.fetch_add(taken, Ordering::SeqCst);
        self.tally.maps.fetch_add(1, Ordering::SeqCst);
        let after = pool.submit(|| cpu_task(7, false));
        self.tally.submitted.fetch_add(1, Ordering::SeqCst);
        self.tally.settle_all(
            vec![(after, Expect::value(cpu_task(7, false)))],
            "a task after a map",
        );
    }

    /// Drops `pool` in one of the ways a program does: as is, after `shutdown(wait = false)`
    /// with or without cancelling, with tasks still queued; those tasks must settle.
    fn drop_pool<P: Executor>(&mut self, pool: P) {
        let pending: Vec<_> = (0..self.rng.range(0..20))
            .map(|x| {
                self.tally.submitted.fetch_add(1, Ordering::SeqCst);
                (
                    pool.submit(move || io_task(x, false, 1000)),
                    Expect::value(cpu_task(x, false)).or(Kind::Cancelled),
                )
            })
            .collect();
        match self.rng.range(0..3) {
            0 => pool.shutdown(false, true),
            1 => pool.shutdown(false, false),
            _ => {}
        }
        drop(pool);
        self.tally
            .settle_all(pending, "a task pending when its pool was dropped");
    }
}

/// The process pool's driver: Linux only, as the pool.
#[cfg(target_os = "linux")]
impl Driver {
    fn process_rounds(&mut self) {
        // The pool, and whether it has a task timeout (half of them do not, so that a child
        // that never completes is lost rather than timed out).
        let mut pool: Option<(ProcessPool, bool)> = None;
        self.rounds(|d| {
            if pool.is_none() {
                let timed = d.rng.percent(50);
                let mut builder = ProcessPool::builder()
                    .max_workers(d.rng.range(1..4) as usize)
                    .print_panics(false)
                    .on_worker_death(OnWorkerDeath::Respawn);
                if timed {
                    builder = builder.task_timeout(TASK_TIMEOUT);
                }
                if d.rng.percent(25) {
                    builder = builder.max_tasks_per_child(d.rng.range(5..50) as usize);
                }
                d.tally.pools_built.fetch_add(1, Ordering::SeqCst);
                match builder.build() {
                    Ok(built) => pool = Some((built, timed)),
                    Err(error) => {
                        d.tally
                            .wrong(format_args!("ProcessPool build failed: {error}"));
                        // Not a hang: back off; the watchdog fails a run that only does this.
                        thread::sleep(Duration::from_millis(100));
                        return;
                    }
                }
            }
            let (process, timed) = pool.as_ref().expect("built above");
            if d.kinds.tasks {
                d.process_round(process, *timed);
                d.process_map_round(process);
            }
            d.fork_round(process);
            if d.rng.percent(20) {
                d.drop_process_pool(pool.take().expect("built above").0);
            }
        });
    }

    /// Tasks on a process pool: values, panics, workers that kill themselves, tasks that
    /// outrun the timeout (if the pool is `timed`), cancels, a wait or `as_completed`; then
    /// every future is settled.
    fn process_round(&mut self, pool: &ProcessPool, timed: bool) {
        let n = self.rng.range(1..80);
        let mut futures = Vec::new();
        for _ in 0..n {
            let x = self.rng.next() % 10_000;
            let fault = match self.rng.range(0..1000) {
                0..50 => Fault::Panic,
                50..80 => Fault::Kill,
                80..83 if timed => Fault::Outrun,
                _ => Fault::None,
            };
            let expect = match fault {
                Fault::None => Expect::value(cpu_task(x, false)),
                Fault::Panic => Expect::error(Kind::Panicked),
                Fault::Kill => Expect::error(Kind::WorkerDied),
                Fault::Outrun => Expect::error(Kind::TaskTimeout),
            };
            let future = pool.submit_fn(process_task, (x, fault));
            self.enlist(&mut futures, future, expect);
        }
        self.observe(&futures);
        self.tally.settle_all(futures, "a process task");
    }

    /// `fork` children of the kinds enabled: small values, panics, aborts, 1 MiB results,
    /// `exit(3)`.
    fn fork_round(&mut self, pool: &ProcessPool) {
        let mut small = Vec::new();
        let mut large = Vec::new();
        for _ in 0..self.rng.range(0..6) {
            let x = self.rng.next() % 10_000;
            let kind = self.rng.range(0..10);
            if kind < 6 && self.kinds.small {
                small.push((
                    pool.fork(move || cpu_task(x, false)),
                    Expect::value(cpu_task(x, false)),
                ));
            } else if kind == 6 && self.kinds.small {
                small.push((
                    pool.fork(move || cpu_task(x, true)),
                    Expect::error(Kind::Panicked),
                ));
            } else if kind == 7 && self.kinds.small {
                small.push((
                    pool.fork(|| -> u64 { std::process::abort() }),
                    Expect::error(Kind::WorkerDied),
                ));
            } else if kind == 8 && self.kinds.exit {
                small.push((
                    pool.fork(|| -> u64 { std::process::exit(3) }),
                    Expect::error(Kind::WorkerDied),
                ));
            } else if kind == 9 && self.kinds.large {
                let byte = x as u8;
                large.push((
                    pool.fork(move || vec![byte; 1 << 20]),
                    Expect::value(vec![byte; 1 << 20]),
                ));
                self.tally.large_forks.fetch_add(1, Ordering::SeqCst);
            } else {
                continue;
            }
            self.tally.submitted.fetch_add(1, Ordering::SeqCst);
            self.tally.forks.fetch_add(1, Ordering::SeqCst);
        }
        self.tally.settle_all(small, "a fork child");
        self.tally
            .settle_all(large, "a fork child with a 1 MiB result");
    }

    /// `map_fn` on the process pool, dropped after a few items.
    fn process_map_round(&mut self, pool: &ProcessPool) {
        let len = self.rng.range(1..500);
        let take = self.rng.range(0..len) as usize;
        let chunk = self.rng.range(1..20) as usize;
        let mut taken = 0;
        let map = pool.map_fn(plain_task, 0..len).chunksize(chunk);
        for (index, item) in (0..).zip(map.take(take)) {
            if item != Ok(cpu_task(index, false)) {
                self.tally
                    .wrong(format_args!("process map item {index}: {item:?}"));
            }
            taken += 1;
        }
        self.tally.map_items.fetch_add(taken, Ordering::SeqCst);
        self.tally.maps.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops a process pool with tasks queued: as is, after `shutdown(wait = false)`, or
    /// after `kill_workers`.
    fn drop_process_pool(&mut self, pool: ProcessPool) {
        let pending: Vec<_> = (0..self.rng.range(0..20))
            .map(|x| {
                self.tally.submitted.fetch_add(1, Ordering::SeqCst);
                (
                    pool.submit_fn(process_task, (x, Fault::None)),
                    Expect::value(cpu_task(x, false))
                        .or(Kind::Cancelled)
                        .or(Kind::WorkerDied),
                )
            })
            .collect();
        match self.rng.range(0..4) {
            0 => pool.kill_workers(),
            1 => pool.terminate_workers(),
            2 => pool.shutdown(false, self.rng.percent(50)),
            _ => {}
        }
        drop(pool);
        self.tally
            .settle_all(pending, "a process task pending when its pool was dropped");
    }
}

/// What a process task does besides its work.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
enum Fault {
    None,
    Panic,
    /// The worker SIGKILLs itself.
    Kill,
    /// Sleeps past the pool's task timeout.
    Outrun,
}

#[cfg(target_os = "linux")]
fn process_task((x, fault): (u64, Fault)) -> u64 {
    match fault {
        Fault::None => {}
        Fault::Panic => std::panic::panic_any(PLANNED),
        // SAFETY: FFI; kill on our own pid has no memory effects.
        Fault::Kill => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
        Fault::Outrun => thread::sleep(OUTRUN),
    }
    cpu_task(x, false)
}

#[cfg(target_os = "linux")]
fn plain_task(x: u64) -> u64 {
    cpu_task(x, false)
}

/// What the process holds: resident memory, threads, open fds, descendant processes.
#[derive(Clone, Copy)]
struct Usage {
    rss_kib: u64,
    threads: usize,
    fds: usize,
    descendants: usize,
}

impl Usage {
    fn now() -> Usage {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let count = |dir: &str| std::fs::read_dir(dir).map_or(0, Iterator::count);
        Usage {
            rss_kib,
            threads: count("/proc/self/task"),
            fds: count("/proc/self/fd"),
            descendants: descendants(std::process::id()),
        }
    }

    /// What grew from `self` (the start) to `end` beyond the allowed slack.
    fn leaks(&self, end: &Usage) -> Vec<String> {
        let mut leaks = Vec::new();
        if end.threads > self.threads {
            leaks.push(format!("threads {} -> {}", self.threads, end.threads));
        }
        if end.fds > self.fds {
            leaks.push(format!("fds {} -> {}", self.fds, end.fds));
        }
        if end.descendants > self.descendants {
            leaks.push(format!(
                "descendants {} -> {}",
                self.descendants, end.descendants
            ));
        }
        if end.rss_kib > self.rss_kib + RSS_SLACK_KIB {
            leaks.push(format!(
                "RSS {} -> {} KiB (more than {} KiB of slack)",
                self.rss_kib, end.rss_kib, RSS_SLACK_KIB
            ));
        }
        leaks
    }

    fn within(&self, start: &Usage) -> bool {
        self.threads <= start.threads
            && self.fds <= start.fds
            && self.descendants <= start.descendants
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RSS {} KiB, {} threads, {} fds, {} descendant processes",
            self.rss_kib, self.threads, self.fds, self.descendants
        )
    }
}

/// The usage at the end: measured until threads, fds and descendants are back to `start`'s
/// or [`SETTLE`] has passed (threads of a dropped rayon pool and reaped processes take a
/// moment to go).
fn settled_usage(start: &Usage) -> Usage {
    let deadline = Instant::now() + SETTLE;
    loop {
        let usage = Usage::now();
        if usage.within(start) || Instant::now() > deadline {
            return usage;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The usage once threads, fds and descendants have held still for a second (the warm-up's
/// dropped rayon pools end their threads after the drop), or after [`SETTLE`].
fn still_usage() -> Usage {
    let deadline = Instant::now() + SETTLE;
    let mut last = Usage::now();
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(100));
        let usage = Usage::now();
        if !usage.within(&last) || !last.within(&usage) {
            since = Instant::now();
        }
        last = usage;
        if since.elapsed() >= Duration::from_secs(1) || Instant::now() > deadline {
            return last;
        }
    }
}

/// Processes whose parent chain leads to `root` (zombies included: they are leaks too), from
/// the parent pid in each `/proc/PID/stat`.
fn descendants(root: u32) -> usize {
    let mut parent = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after
        // the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    parent
        .keys()
        .filter(|&&pid| {
            let mut at = pid;
            // Bounded: pid reuse while reading could make a cycle.
            for _ in 0..64 {
                match parent.get(&at) {
                    Some(&p) if p == root => return true,
                    Some(&p) if p > 1 => at = p,
                    _ => return false,
                }
            }
            false
        })
        .count()
}
