//! Nothing of a ProcessPool outlives its program: after `kill -9` of a program whose pool was
//! built, and whose `fork` child was started, from threads that have since ended, the fork
//! server, the workers and the `fork` child all end within seconds.
#![cfg(target_os = "linux")]

mod process_common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{FnExecutor, ProcessPool};
use process_common::{BOUND, alone, ended, own_program};

const TEST: &str = "nothing_outlives_a_killed_program";

/// How long the pool's processes may take to end after the program's death: generous, for a
/// loaded machine; the time observed is printed.
const DEATH_BOUND: Duration = Duration::from_secs(10);

/// The worker's pid and its parent's: the fork server. Slow enough that two tasks sent
/// together run on two workers.
fn pid_and_parent(_: ()) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(300));
    (std::process::id(), std::os::unix::process::parent_id())
}

/// The program the test kills: prints the pids of its fork server, workers and `fork` child,
/// then waits to be killed.
fn doomed_program() {
    // Built, and forked from, by threads that end before the program dies: the parent-death
    // signal of anything they started would fire at their end, not the program's.
    let pool = std::thread::spawn(|| ProcessPool::new(2).unwrap())
        .join()
        .unwrap();
    let futures: Vec<_> = (0..2).map(|_| pool.submit_fn(pid_and_parent, ())).collect();
    let mut pids = Vec::new();
    for future in futures {
        let (worker, server) = *future.result_timeout(BOUND).unwrap();
        pids.extend([worker, server]);
    }
    let forked = std::thread::scope(|scope| {
        // The child prints its pid on stdout, one of the three fds it keeps, with a plain
        // write: another thread of this program may hold the stdout lock.
        scope
            .spawn(|| {
                pool.fork(|| {
                    let line = format!("child {}\n", std::process::id());
                    // SAFETY: writes the bytes of `line` to stdout.
                    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
                    std::thread::sleep(Duration::from_secs(120));
                })
            })
            .join()
            .unwrap()
    });
    // The forking thread has ended: give a parent-death signal tied to it time to act.
    std::thread::sleep(Duration::from_millis(500));
    pids.sort_unstable();
    pids.dedup();
    let line: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("pids {}", line.join(" "));
    std::thread::sleep(Duration::from_secs(120));
    std::mem::forget((forked, pool));
}

#[test]
fn nothing_outlives_a_killed_program() {
    if alone(TEST) {
        doomed_program();
        return;
    }
    let mut program = own_program(TEST)
        .stdout(Stdio::piped())
        .spawn()
        .expect("could not start the program to kill");
    let stdout = program.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let mut pids: Vec<u32> = Vec::new();
    let mut child: Option<u32> = None;
    while child.is_none() || pids.is_empty() {
        let line = match lines.recv_timeout(BOUND * 2) {
            Ok(line) => line,
            Err(error) => {
                let _ = program.kill();
                panic!("the program did not print its pids: {error}");
            }
        };
        if let Some(list) = line.strip_prefix("pids ") {
            pids = list.split(' ').map(|pid| pid.parse().unwrap()).collect();
        } else if let Some(pid) = line.strip_prefix("child ") {
            child = Some(pid.parse().unwrap());
        }
    }
    pids.extend(child);
    // 2 workers, the server, the fork child.
    assert_eq!(pids.len(), 4, "pids: {pids:?}");
    let running: Vec<u32> = pids.iter().copied().filter(|&pid| !ended(pid)).collect();
    assert_eq!(running, pids, "all were running before the kill");
    program.kill().unwrap();
    program.wait().unwrap();
    let killed = Instant::now();
    while killed.elapsed() < DEATH_BOUND && !pids.iter().all(|&pid| ended(pid)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&pid| !ended(pid)).collect();
    for &pid in &left {
        // SAFETY: kill has no memory-safety preconditions; cleaning up after a failure.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert!(
        left.is_empty(),
        "still running {DEATH_BOUND:?} after the program died: {left:?}"
    );
    eprintln!(
        "all of {pids:?} ended {:?} after the program was killed",
        killed.elapsed()
    );
}
