//! MpiPool against a bare rsmpi master/worker prototype (the one in the research notes), on
//! rank 0 ↔ the worker ranks: one round trip per trivial task, and 10 000 trivial tasks kept
//! in flight across two worker ranks.
//!
//! Run: `cargo bench --features mpi --bench mpi`. Needs `mpirun` on the PATH (or `MPIRUN`).
//! Run without mpirun, this program starts two jobs of three ranks (`mpirun -n 3` of itself),
//! one for the bare prototype and one for the pool, and prints each job's criterion report
//! followed by the ratios of the medians. Criterion runs on rank 0; the other ranks serve.

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use concurrent_futures::{FnExecutor, MpiPool};
use criterion::{Criterion, Throughput};
use mpi::traits::{Communicator, Destination, Source};

const TASKS: u64 = 10_000;
/// Tasks each worker rank of the bare prototype has been sent ahead of its replies, as in the
/// prototype that was measured.
const BARE_DEPTH: u64 = 4;
/// The environment variable that tells a rank which job it is in.
const JOB: &str = "CONCURRENT_FUTURES_MPI_BENCH_JOB";
const TASK: i32 = 1;
const STOP: i32 = 2;

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(1)
}

fn criterion() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

/// The pool's job: rank 0 benches, the others serve inside `init`.
fn pool_job() {
    let pool = MpiPool::builder()
        .pipeline_depth(BARE_DEPTH as usize)
        .init()
        .expect("MpiPool starts");
    let mut c = criterion();
    let mut group = c.benchmark_group("mpi/round_trip");
    group.bench_function("pool", |b| {
        b.iter(|| pool.submit_fn(trivial, black_box(7)).into_result().unwrap())
    });
    group.finish();
    let mut group = c.benchmark_group("mpi/pipelined_10k");
    group.throughput(Throughput::Elements(TASKS));
    group.bench_function("pool", |b| {
        b.iter(|| {
            let futures: Vec<_> = (0..TASKS).map(|i| pool.submit_fn(trivial, i)).collect();
            futures
                .into_iter()
                .map(|f| f.into_result().unwrap())
                .fold(0, u64::wrapping_add)
        })
    });
    group.finish();
    c.final_summary();
}

/// The bare prototype's job: postcard-encoded `(id, x)` to a worker, `(id, trivial(x))` back,
/// blocking rsmpi calls, no threads.
fn bare_job() {
    let universe = mpi::initialize().expect("MPI initializes");
    let world = universe.world();
    if world.rank() != 0 {
        let root = world.process_at_rank(0);
        loop {
            let (bytes, status) = root.receive_vec::<u8>();
            if status.tag() == STOP {
                return;
            }
            let (id, x): (u64, u64) = postcard::from_bytes(&bytes).unwrap();
            let reply = postcard::to_allocvec(&(id, trivial(x))).unwrap();
            root.send(&reply[..]);
        }
    }
    let workers = world.size() - 1;
    let call = |rank: i32, id: u64| {
        let bytes = postcard::to_allocvec(&(id, id)).unwrap();
        world.process_at_rank(rank).send_with_tag(&bytes[..], TASK);
    };
    let reply = || {
        let (bytes, status) = world.any_process().receive_vec::<u8>();
        let (_, value): (u64, u64) = postcard::from_bytes(&bytes).unwrap();
        (status.source_rank(), value)
    };
    let mut c = criterion();
    let mut group = c.benchmark_group("mpi/round_trip");
    group.bench_function("bare", |b| {
        b.iter(|| {
            call(1, black_box(7));
            reply().1
        })
    });
    group.finish();
    let mut group = c.benchmark_group("mpi/pipelined_10k");
    group.throughput(Throughput::Elements(TASKS));
    group.bench_function("bare", |b| {
        b.iter(|| {
            let mut sent = 0;
            let mut sum = 0_u64;
            for rank in 1..=workers {
                for _ in 0..BARE_DEPTH {
                    call(rank, sent);
                    sent += 1;
                }
            }
            for _ in 0..TASKS {
                let (rank, value) = reply();
                sum = sum.wrapping_add(value);
                if sent < TASKS {
                    call(rank, sent);
                    sent += 1;
                }
            }
            sum
        })
    });
    group.finish();
    c.final_summary();
    for rank in 1..=workers {
        world
            .process_at_rank(rank)
            .send_with_tag(&[0_u8; 0][..], STOP);
    }
}

/// The median of a criterion estimate that the job just saved.
fn median_ns(group: &str, name: &str) -> Option<f64> {
    // Criterion keeps a group "a/b" in the folder "a_b".
    let folder = group.replace('/', "_");
    let path = format!("target/criterion/{folder}/{name}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let start = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let end = rest[start..].find([',', '}'])?;
    rest[start..start + end].trim().parse().ok()
}

fn main() {
    // The job travels in the environment (which mpirun hands its local ranks), not in the
    // arguments, which belong to criterion.
    match std::env::var(JOB).as_deref() {
        Ok("pool") => return pool_job(),
        Ok("bare") => return bare_job(),
        _ => {}
    }
    let launcher = std::env::var("MPIRUN").unwrap_or_else(|_| "mpirun".into());
    let me = std::env::current_exe().expect("own path");
    for job in ["bare", "pool"] {
        let status = Command::new(&launcher)
            .args(["-n", "3"])
            .arg(&me)
            .args(std::env::args().skip(1))
            .env(JOB, job)
            // Open MPI: run as root and with more ranks than cores, as CI and this VM need.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
            .status()
            .expect("mpirun starts (is an MPI installed?)");
        assert!(status.success(), "the {job} job failed: {status}");
    }
    println!("\npool / bare, medians:");
    for (group, per) in [("mpi/round_trip", 1.0), ("mpi/pipelined_10k", TASKS as f64)] {
        if let (Some(pool), Some(bare)) = (median_ns(group, "pool"), median_ns(group, "bare")) {
            println!(
                "{group:<20} pool {:>8.2} µs/task  bare {:>8.2} µs/task  ratio {:.2}",
                pool / per / 1e3,
                bare / per / 1e3,
                pool / bare
            );
        }
    }
}
