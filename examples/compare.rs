//! The backend comparison: every workload on every backend, in one run, as one table.
//!
//! ```sh
//! cargo run --release --example compare            # the table
//! cargo run --release --example compare -- --json  # the same figures as JSON on stdout
//! cargo run --release --example compare -- --quick # tiny sizes: checks it runs (tests do)
//! ```
//!
//! Workloads: a round trip (submit one trivial task, wait for it), submitting 10 000 trivial
//! tasks then gathering them, an ordered parallel map over 10⁶ trivial items, 32 CPU-bound
//! tasks of about 10 ms, and 200 sleeps of 10 ms on 50 workers; below the table, a scoped
//! `par_map` over `vec.iter()` reading a borrowed lookup table beside rayon's `par_iter()`.
//! Backends: ours (`CpuPool`,
//! `IoPool`, `ProcessPool`; two workers unless the workload says otherwise), and the peers a
//! user would otherwise pick: a plain loop, rayon, `std::thread::scope`, and CPython's
//! `concurrent.futures` (`benches/peers/cpython.py`, when `python3` is on the PATH). A plain
//! loop has no task to submit, so it has no round trip or gather: those cells show "—".
//!
//! The table has a row per backend and a column per workload, and fits 100 columns
//! (`tests/examples_run.rs` checks it).
//!
//! Each cell is the median of several repetitions (fewer for slow cells, so that the whole
//! run stays under a minute on two cores); ours carry their ratio to the best peer in the row.

use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use concurrent_futures::ProcessPool;
use concurrent_futures::{CpuPool, Executor, FnExecutor, IoPool, ParMapExt};
use rayon::prelude::*;

/// Columns, in table order: first this crate's (`OURS` of them), then the sequential
/// baseline, then the peers a ratio is taken against.
const BACKENDS: [&str; 7] = [
    "CpuPool",
    "IoPool",
    "ProcessPool",
    "sequential",
    "rayon",
    "thread::scope",
    "CPython",
];
const OURS: usize = 3;
const PEERS: usize = OURS + 1;

/// A workload: its name, its column's head in the table, how its cells are shown, and how many
/// items it runs.
struct Workload {
    name: &'static str,
    head: &'static str,
    /// Show the time per item (true) or for the whole workload (false).
    per_item: bool,
    items: u64,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "round trip",
        head: "round trip",
        per_item: true,
        items: 1,
    },
    Workload {
        name: "gather 10k",
        head: "gather 10k",
        per_item: true,
        items: 10_000,
    },
    Workload {
        name: "par_map 1M trivial",
        head: "par_map 1M",
        per_item: true,
        items: 1_000_000,
    },
    Workload {
        name: "cpu 32x10ms",
        head: "cpu 32x10ms",
        per_item: false,
        items: 32,
    },
    Workload {
        name: "io 200x10ms",
        head: "io 200x10ms",
        per_item: false,
        items: 200,
    },
];

/// One measured cell.
struct Cell {
    workload: &'static str,
    backend: &'static str,
    median_seconds: f64,
    items: u64,
}

fn trivial(x: u64) -> u64 {
    black_box(x)
}

/// About 10 ms of CPU work with the calibrated iteration count.
fn spin(iterations: u64) -> u64 {
    let mut x = 0_u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

fn sleep_10ms(_: u64) {
    std::thread::sleep(Duration::from_millis(10));
}

fn spin_iterations_for_10ms() -> u64 {
    let probe = 5_000_000;
    let start = Instant::now();
    black_box(spin(probe));
    (probe as f64 * 0.010 / start.elapsed().as_secs_f64()) as u64
}

/// `--quick`: every size a hundredth, one repetition. For the test suite, which checks that
/// this program runs, not what it measures.
static QUICK: AtomicBool = AtomicBool::new(false);

/// A workload size, shrunk in `--quick` mode.
fn size(full: u64) -> u64 {
    if QUICK.load(Ordering::Relaxed) {
        (full / 100).max(full.min(2))
    } else {
        full
    }
}

/// The median duration of `run`, repeated up to five times but for at most about 1.5 s.
fn median(mut run: impl FnMut()) -> f64 {
    let reps = if QUICK.load(Ordering::Relaxed) { 1 } else { 5 };
    let mut times = Vec::new();
    let budget = Instant::now();
    while times.len() < reps && (times.is_empty() || budget.elapsed() < Duration::from_millis(1500))
    {
        let start = Instant::now();
        run();
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Each workload on one of our pools, through the interface all three share.
fn on_pool<E: FnExecutor>(pool: &E, workload: &Workload, spin_iterations: u64) -> f64 {
    match workload.name {
        "round trip" => {
            let ops = size(1_000);
            median(|| {
                for i in 0..ops {
                    black_box(pool.submit_fn(trivial, i).into_result().ok());
                }
            }) / ops as f64
        }
        "gather 10k" => median(|| {
            let futures: Vec<_> = (0..size(workload.items))
                .map(|i| pool.submit_fn(trivial, i))
                .collect();
            for future in futures {
                black_box(future.into_result().ok());
            }
        }),
        "par_map 1M trivial" => median(|| {
            black_box(
                pool.map_fn(trivial, 0..size(workload.items))
                    .filter(Result::is_ok)
                    .count(),
            );
        }),
        "cpu 32x10ms" => median(|| {
            let items = std::iter::repeat_n(spin_iterations, size(32) as usize);
            black_box(
                pool.map_fn(spin, items)
                    .chunksize(1)
                    .filter(Result::is_ok)
                    .count(),
            );
        }),
        _ => median(|| {
            black_box(
                pool.map_fn(sleep_10ms, 0..size(200))
                    .chunksize(1)
                    .filter(Result::is_ok)
                    .count(),
            );
        }),
    }
}

/// A plain loop, for the workloads where one means something ([`meaningful`]).
fn sequential(workload: &Workload, spin_iterations: u64) -> f64 {
    match workload.name {
        "par_map 1M trivial" => median(|| {
            black_box((0..size(workload.items)).map(trivial).collect::<Vec<_>>());
        }),
        "cpu 32x10ms" => median(|| {
            (0..size(32)).for_each(|_| {
                black_box(spin(spin_iterations));
            })
        }),
        _ => median(|| (0..size(200)).for_each(sleep_10ms)),
    }
}

fn rayon_peer(workload: &Workload, spin_iterations: u64, io_pool: &rayon::ThreadPool) -> f64 {
    match workload.name {
        "round trip" => {
            let ops = size(1_000);
            median(|| {
                for i in 0..ops {
                    let (tx, rx) = mpsc::channel();
                    rayon::spawn(move || tx.send(trivial(i)).unwrap_or_default());
                    black_box(rx.recv().ok());
                }
            }) / ops as f64
        }
        "gather 10k" => median(|| {
            let (tx, rx) = mpsc::channel();
            for i in 0..size(workload.items) {
                let tx = tx.clone();
                rayon::spawn(move || tx.send(trivial(i)).unwrap_or_default());
            }
            drop(tx);
            black_box(rx.iter().count());
        }),
        "par_map 1M trivial" => median(|| {
            black_box(
                (0..size(workload.items))
                    .into_par_iter()
                    .map(trivial)
                    .collect::<Vec<_>>(),
            );
        }),
        "cpu 32x10ms" => median(|| {
            black_box(
                (0..size(32))
                    .into_par_iter()
                    .map(|_| spin(spin_iterations))
                    .collect::<Vec<_>>(),
            );
        }),
        _ => median(|| io_pool.install(|| (0..size(200)).into_par_iter().for_each(sleep_10ms))),
    }
}

/// Splits `items` over `threads` scoped threads.
fn scoped(items: u64, threads: u64, each: impl Fn(u64) + Sync) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let each = &each;
            scope.spawn(move || (t..items).step_by(threads as usize).for_each(each));
        }
    });
}

fn scope_peer(workload: &Workload, spin_iterations: u64) -> f64 {
    match workload.name {
        "round trip" => {
            let ops = size(200);
            median(|| {
                for i in 0..ops {
                    std::thread::scope(|scope| {
                        black_box(scope.spawn(move || trivial(i)).join().ok())
                    });
                }
            }) / ops as f64
        }
        // A thread per task: what `thread::scope` offers for independent tasks.
        "gather 10k" => median(|| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..size(workload.items))
                    .map(|i| scope.spawn(move || trivial(i)))
                    .collect();
                handles.into_iter().for_each(|h| {
                    black_box(h.join().ok());
                });
            })
        }),
        "par_map 1M trivial" => median(|| {
            scoped(size(workload.items), 2, |i| {
                black_box(trivial(i));
            })
        }),
        "cpu 32x10ms" => median(|| {
            scoped(size(32), 2, |_| {
                black_box(spin(spin_iterations));
            })
        }),
        _ => median(|| scoped(size(200), 50, sleep_10ms)),
    }
}

/// The borrowed map: a scoped `par_map` over `vec.iter()` whose closure reads a lookup table
/// by reference, and rayon's `par_iter()` over the same data. Not a table column (the table
/// fills 100 columns): a line of its own below it.
const BORROWED: &str = "borrowed map 1M";

/// Seconds for the borrowed map on `pool` (a scope) and on rayon's global pool.
fn borrowed_map(pool: &CpuPool) -> (f64, f64) {
    let input: Vec<u64> = (0..size(1_000_000)).collect();
    let table: Vec<u64> = (0..4096_u64).map(|i| i.wrapping_mul(2654435761)).collect();
    let lookup = |x: &u64| table[(*x as usize) % table.len()] ^ x;
    let ours = median(|| {
        pool.scope(|s| {
            black_box(
                input
                    .iter()
                    .par_map(s, lookup)
                    .filter(Result::is_ok)
                    .count(),
            )
        });
    });
    let rayon = median(|| {
        black_box(input.par_iter().map(lookup).collect::<Vec<_>>());
    });
    (ours, rayon)
}

/// The borrowed map's line: ours per item and its ratio to rayon, then rayon's.
fn print_borrowed(cells: &[Cell]) {
    let per_item = |backend: &str| {
        cells
            .iter()
            .find(|c| c.workload == BORROWED && c.backend == backend)
            .map(|c| c.median_seconds / c.items as f64)
    };
    if let (Some(ours), Some(rayon)) = (per_item("CpuPool"), per_item("rayon")) {
        println!(
            "{BORROWED}, a table read by reference over vec.iter(), per item:\n  CpuPool \
             scope par_map {} {}, rayon par_iter {}",
            format_seconds(ours),
            format_ratio(ours / rayon),
            format_seconds(rayon)
        );
    }
}

/// CPython's figures from `benches/peers/cpython.py`, or none without a working `python3`.
fn cpython() -> Vec<(String, f64, u64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/cpython.py");
    let Ok(output) = Command::new("python3").arg(script).output() else {
        return Vec::new();
    };
    if !output.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.to_owned();
            let seconds = fields.next()?.parse().ok()?;
            let items = fields.next()?.parse().ok()?;
            Some((name, seconds, items))
        })
        .collect()
}

/// A duration in at most 8 characters (below 100 s).
fn format_seconds(seconds: f64) -> String {
    match seconds {
        s if s < 1e-6 => format!("{:.1} ns", s * 1e9),
        s if s < 1e-4 => format!("{:.2} µs", s * 1e6),
        s if s < 1e-3 => format!("{:.1} µs", s * 1e6),
        s if s < 1.0 => format!("{:.1} ms", s * 1e3),
        s => format!("{s:.2} s"),
    }
}

/// A ratio in at most 7 characters, parentheses included.
fn format_ratio(ratio: f64) -> String {
    match ratio {
        r if r < 10.0 => format!("({r:.2}x)"),
        r if r < 999.5 => format!("({r:.0}x)"),
        _ => "(>999x)".to_owned(),
    }
}

/// The figure a cell shows: per item or for the whole workload.
fn shown(cell: &Cell, workload: &Workload) -> f64 {
    if workload.per_item {
        cell.median_seconds / cell.items as f64
    } else {
        cell.median_seconds
    }
}

/// Whether `backend` has a figure for `workload` that means something: a plain loop has no
/// task to submit, so its round trip and gather would time an empty loop.
fn meaningful(workload: &Workload, backend: &str) -> bool {
    !(backend == "sequential" && matches!(workload.name, "round trip" | "gather 10k"))
}

/// The widths that keep the table within 100 columns: a backend's name, then one column per
/// workload, each wide enough for a time and a ratio ("25.53 µs (1.60x)").
const LABEL_WIDTH: usize = 14;
const CELL_WIDTH: usize = 17;

/// One row per backend, one column per workload (the transpose fits 100 columns where seven
/// backends side by side did not); "—" where a cell has no meaning or was not measured.
fn print_table(cells: &[Cell]) {
    let (label, cell) = (LABEL_WIDTH, CELL_WIDTH);
    print!("{:<label$}", "");
    WORKLOADS.iter().for_each(|w| print!("{:>cell$}", w.head));
    println!();
    print!("{:<label$}", "");
    WORKLOADS
        .iter()
        .for_each(|w| print!("{:>cell$}", if w.per_item { "per item" } else { "total" }));
    println!();
    for (column, backend) in BACKENDS.iter().enumerate() {
        print!("{backend:<label$}");
        for workload in &WORKLOADS {
            let found = cells
                .iter()
                .find(|c| c.workload == workload.name && c.backend == *backend);
            let best_peer = cells
                .iter()
                .filter(|c| c.workload == workload.name)
                .filter(|c| BACKENDS[PEERS..].contains(&c.backend))
                .map(|c| shown(c, workload))
                .min_by(f64::total_cmp);
            let text = match (found, best_peer) {
                (None, _) => "—".to_owned(),
                (Some(found), Some(best)) if column < OURS => {
                    let time = shown(found, workload);
                    format!("{} {}", format_seconds(time), format_ratio(time / best))
                }
                (Some(found), _) => format_seconds(shown(found, workload)),
            };
            print!("{text:>cell$}");
        }
        println!();
    }
    println!("(ours: time, then its ratio to the best of rayon, thread::scope and CPython for the");
    println!(" same workload; below 1 is faster. —: no meaning for that backend, or not run)");
}

fn print_json(cells: &[Cell]) {
    let objects: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                r#"{{"workload":"{}","backend":"{}","median_seconds":{:e},"items":{}}}"#,
                c.workload, c.backend, c.median_seconds, c.items
            )
        })
        .collect();
    println!("[{}]", objects.join(","));
}

/// Two lines of advice from the figures just measured.
fn advise(cells: &[Cell]) {
    let time = |workload: &str, backend: &str| {
        cells
            .iter()
            .find(|c| c.workload == workload && c.backend == backend)
            .map(|c| c.median_seconds)
    };
    if let (Some(seq), Some(cpu), Some(process)) = (
        time("cpu 32x10ms", "sequential"),
        time("cpu 32x10ms", "CpuPool"),
        time("cpu 32x10ms", "ProcessPool"),
    ) {
        println!(
            "CPU-bound closures: CpuPool ({:.2}x the sequential speed here);\n  ProcessPool \
             ({:.2}x) when tasks must be isolated or may crash.",
            seq / cpu,
            seq / process
        );
    }
    if let (Some(seq), Some(io), Some(cpu_trip), Some(io_trip)) = (
        time("io 200x10ms", "sequential"),
        time("io 200x10ms", "IoPool"),
        time("round trip", "CpuPool"),
        time("round trip", "IoPool"),
    ) {
        println!(
            "Blocking I/O: IoPool ({:.0}x sequential with 50 workers);\n  for many tiny tasks \
             either thread pool (round trip {} on CpuPool,\n  {} on IoPool).",
            seq / io,
            format_seconds(cpu_trip),
            format_seconds(io_trip)
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json = std::env::args().any(|a| a == "--json");
    QUICK.store(std::env::args().any(|a| a == "--quick"), Ordering::Relaxed);
    let spin_iterations = size(spin_iterations_for_10ms());
    let cpu2 = CpuPool::new(2)?;
    let io2 = IoPool::new(2)?;
    // The process pool is Linux only; elsewhere its row is left out.
    #[cfg(target_os = "linux")]
    let process2 = ProcessPool::new(2)?;
    let rayon50 = rayon::ThreadPoolBuilder::new().num_threads(50).build()?;
    let mut cells = Vec::new();
    let mut record = |workload: &'static str, backend: &'static str, seconds: f64, items: u64| {
        cells.push(Cell {
            workload,
            backend,
            median_seconds: seconds,
            items,
        });
    };
    for (n, workload) in WORKLOADS.iter().enumerate() {
        eprintln!("[{}/{}] {} ...", n + 1, WORKLOADS.len() + 1, workload.name);
        let items = size(workload.items);
        // "With 50 workers" for the I/O workload, for every backend that has workers.
        let fifty;
        let (cpu, io) = if workload.name.starts_with("io") {
            fifty = (CpuPool::new(50)?, IoPool::new(50)?);
            (&fifty.0, &fifty.1)
        } else {
            (&cpu2, &io2)
        };
        record(
            workload.name,
            "CpuPool",
            on_pool(cpu, workload, spin_iterations),
            items,
        );
        record(
            workload.name,
            "IoPool",
            on_pool(io, workload, spin_iterations),
            items,
        );
        #[cfg(target_os = "linux")]
        {
            let fifty;
            let process = if workload.name.starts_with("io") {
                fifty = ProcessPool::new(50)?;
                &fifty
            } else {
                &process2
            };
            record(
                workload.name,
                "ProcessPool",
                on_pool(process, workload, spin_iterations),
                items,
            );
        }
        if meaningful(workload, "sequential") {
            record(
                workload.name,
                "sequential",
                sequential(workload, spin_iterations),
                items,
            );
        }
        record(
            workload.name,
            "rayon",
            rayon_peer(workload, spin_iterations, &rayon50),
            items,
        );
        record(
            workload.name,
            "thread::scope",
            scope_peer(workload, spin_iterations),
            items,
        );
    }
    let (ours, rayon) = borrowed_map(&cpu2);
    record(BORROWED, "CpuPool", ours, size(1_000_000));
    record(BORROWED, "rayon", rayon, size(1_000_000));
    eprintln!("[{0}/{0}] CPython ...", WORKLOADS.len() + 1);
    let cpython = if QUICK.load(Ordering::Relaxed) {
        Vec::new()
    } else {
        cpython()
    };
    for (name, seconds, items) in cpython {
        if let Some(workload) = WORKLOADS.iter().find(|w| w.name == name) {
            record(workload.name, "CPython", seconds, items);
        }
    }
    if json {
        print_json(&cells);
    } else {
        print_table(&cells);
        print_borrowed(&cells);
        advise(&cells);
    }
    std::io::stdout().flush()?;
    Ok(())
}
