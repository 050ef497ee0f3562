//! A fork server killed from outside (issue 11, item 7): the pool must break with a reason
//! that says so, fail what was unfinished and every later submit with `Error::Broken`, and its
//! manager thread must not spin on the dead channel while it still waits for a `fork` child.
//!
//! One test in this binary on purpose: it kills the fork server every pool here shares, and
//! it measures the CPU time of the one manager thread.
#![cfg(target_os = "linux")]

mod process_common;

use std::time::{Duration, Instant};

use concurrent_futures::{Error, FnExecutor, ProcessPool};
use process_common::BOUND;

/// The worker's parent: the fork server.
fn server_pid(_: ()) -> u32 {
    std::os::unix::process::parent_id()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// User plus system CPU time, in clock ticks, of this process's threads named like the pool's
/// manager (`comm` keeps 15 bytes of "process-pool-manager").
fn manager_ticks() -> Option<u64> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if !comm.trim_end().starts_with("process-pool-ma") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        *found.get_or_insert(0) += ticks;
    }
    found
}

#[test]
fn a_killed_fork_server_breaks_the_pool_and_the_manager_does_not_spin() {
    let pool = ProcessPool::new(1).unwrap();
    let server = *pool
        .submit_fn(server_pid, ())
        .result_timeout(BOUND)
        .unwrap();
    // A `fork` child keeps the manager busy after the pool breaks; it is this program's own
    // child, so the server's death does not end it.
    let child = pool.fork(|| {
        std::thread::sleep(Duration::from_secs(5));
        5_u8
    });
    let running = pool.submit_fn(nap, 60_000);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill has no memory-safety preconditions; the pid is the server's, alive.
    assert_eq!(unsafe { libc::kill(server as i32, libc::SIGKILL) }, 0);

    match running.result_timeout(BOUND) {
        Err(Error::Broken { reason }) => assert!(reason.contains("fork server"), "{reason}"),
        other => panic!("expected Broken, got {other:?}"),
    }
    match pool.submit_fn(nap, 1).result_timeout(BOUND) {
        Err(Error::Broken { reason }) => assert!(reason.contains("fork server"), "{reason}"),
        other => panic!("expected Broken, got {other:?}"),
    }

    // The fork child still runs for seconds: the manager waits for it, sleeping.
    let ticks_per_second = 100.0; // USER_HZ, the unit of /proc stat times on Linux
    let before = manager_ticks().expect("no manager thread found");
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let after = manager_ticks().expect("no manager thread found");
    let share = (after - before) as f64 / ticks_per_second / start.elapsed().as_secs_f64();
    assert!(
        share < 0.2,
        "the manager thread used {:.0} % of a core while it had nothing to do",
        share * 100.0
    );
    assert_eq!(child.result_timeout(BOUND), Ok(&5));
}
